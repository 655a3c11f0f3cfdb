"""Saving and resuming training: everything needed to continue exactly where a run stopped.

A checkpoint holds the model, optimizer, scheduler and GradScaler states, the history so far,
every random-number generator's state and the loader's shuffling state. It is written
atomically (a crash mid-write leaves the previous checkpoint intact) and read back with
``torch.load(..., weights_only=True)``: plain tensors and containers, no pickled code.
Used by :func:`course_utils.train.train` (``checkpoint=``); taught in notebook 00.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = 1


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's generators, as checkpoint-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (global RNG)
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, **state: Any) -> None:
    """Write ``state`` (state dicts, history, epoch, ...) plus the RNG states, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"format": FORMAT, "rng": rng_state(), **state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, *, model: torch.nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint (``weights_only=True``) and load it into the objects given.

    Returns the whole checkpoint dictionary. RNG states are *not* restored here; call
    :func:`set_rng_state` with ``checkpoint["rng"]`` to continue a run exactly.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a course checkpoint, or does not fit the objects given.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError:
        raise
    except Exception as err:  # another kind of file: torch.load's error depends on its contents
        raise ValueError(f"{path} is not a course checkpoint (format {FORMAT}): torch.load("
                         f"weights_only=True) failed with {type(err).__name__}") from err
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path} is not a course checkpoint (format {FORMAT})")
    for name, target in (("model", model), ("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None:
            continue
        if checkpoint.get(name) is None:
            raise ValueError(f"{path} holds no {name} state, but a {name} was given to load into")
        try:
            target.load_state_dict(checkpoint[name])
        except (RuntimeError, KeyError, ValueError) as err:
            raise ValueError(f"the {name} state in {path} does not fit this {name}: {err}") from err
    return checkpoint
