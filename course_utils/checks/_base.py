"""The result type and the safe call every check uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check: ``passed`` and a message for the student."""

    passed: bool
    message: str

    def __repr__(self) -> str:
        return ("PASSED: " if self.passed else "NOT YET: ") + self.message

    def __bool__(self) -> bool:
        return self.passed


def _call(fn: Callable, *args: object) -> tuple[object, CheckResult | None]:
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, CheckResult(False, f"{fn.__name__} is not implemented yet.")
    except Exception as err:  # the student's code may fail in any way; report it plainly
        return None, CheckResult(False, f"{fn.__name__} raised {type(err).__name__}: {err}")


def _number(value: object) -> float | None:
    """A float from a number or a one-element tensor, else None."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
