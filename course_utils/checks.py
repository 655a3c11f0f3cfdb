"""Automatic feedback for the exercises: each ``check_*`` compares a student's function with
the course's reference and explains the first mismatch.

Checks never raise on a wrong answer: they return a :class:`CheckResult` whose text says what
is right or what to fix, so a notebook cell shows the feedback directly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from course_utils.train import train_step


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


def check_accuracy(fn: Callable[[torch.Tensor, torch.Tensor], object]) -> CheckResult:
    """Check ``fn(logits (N, C), y (N,)) -> fraction correct`` (a float in [0, 1]). Notebook 00."""
    generator = torch.Generator().manual_seed(0)
    cases = [(torch.randn(n, c, generator=generator), torch.randint(0, c, (n,), generator=generator))
             for n, c in ((8, 10), (37, 3), (1, 5))]
    perfect = torch.eye(4) * 5
    cases.append((perfect, torch.arange(4)))
    for k, (logits, y) in enumerate(cases):
        got, failure = _call(fn, logits.clone(), y.clone())
        if failure is not None:  # a CheckResult that failed is falsy
            return failure
        if got is None:
            return CheckResult(False, f"{fn.__name__} returned None: did you forget `return`?")
        if isinstance(got, torch.Tensor):
            if got.numel() != 1:
                return CheckResult(False, f"returned a tensor of shape {tuple(got.shape)}; "
                                          "average over the batch to get one number")
            got = got.item()
        expected = (logits.argmax(dim=1) == y).float().mean().item()
        if not isinstance(got, (int, float)) or abs(got - expected) > 1e-6:
            hint = (" (a percentage? return a fraction in [0, 1])" if isinstance(got, (int, float))
                    and got > 1 else " (compare logits.argmax(dim=1) with y, then average)")
            return CheckResult(False, f"case {k + 1} ({len(y)} examples, {logits.shape[1]} classes): "
                                      f"got {got!r}, expected {expected:.6f}{hint}")
    return CheckResult(True, f"{fn.__name__} agrees with the reference on {len(cases)} cases.")


def check_train_step(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(model, x, y, optimizer, loss_fn)`` against the course's ``train_step``.

    Runs two steps on identical copies of a tiny model and reports the first parameter that
    differs, with the usual cause (missing ``zero_grad``, ``step`` or ``backward``). Notebook 00.
    """
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 6, generator=generator), torch.randint(0, 3, (16,), generator=generator)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        reference = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    student = copy.deepcopy(reference)
    initial = copy.deepcopy(reference)
    opt_ref = torch.optim.SGD(reference.parameters(), lr=0.1)
    opt_student = torch.optim.SGD(student.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    for step in (1, 2):
        expected = train_step(reference, x, y, optimizer=opt_ref, loss_fn=loss_fn)
        got, failure = _call(fn, student, x, y, opt_student, loss_fn)
        if failure is not None:  # a CheckResult that failed is falsy
            return failure
        unchanged = all(torch.equal(a, b) for a, b in zip(student.parameters(),
                                                          initial.parameters(), strict=True))
        if unchanged:
            return CheckResult(False, "the parameters did not change: call loss.backward() "
                                      "and optimizer.step()")
        for (name, p_got), p_want in zip(student.named_parameters(), reference.parameters(),
                                         strict=True):
            if not torch.allclose(p_got, p_want, atol=1e-6):
                cause = ("gradients from step 1 leaked into step 2: call optimizer.zero_grad() "
                         "before backward()" if step == 2 else "the update differs from "
                         "loss.backward(); optimizer.step() on the loss of this batch")
                return CheckResult(False, f"after step {step}, parameter {name!r} differs: {cause}")
        if not isinstance(got, torch.Tensor) or not torch.allclose(got.detach(), expected):
            return CheckResult(False, f"step {step} returned {got!r}; return the batch's loss "
                                      f"(expected {expected.item():.4f})")
    return CheckResult(True, f"{fn.__name__} matches the reference step twice in a row.")


def check_mixup(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(x, y, lam, num_classes) -> (mixed_x, soft_targets)`` against the course's
    mixup (torchvision's convention: mix each example with ``x.roll(1, 0)``). Notebook 02.
    """
    from course_utils.augment import mix_images  # imported here: only this check needs it

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 5, 5, generator=generator)
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    lam, num_classes = 0.7, 4
    got, failure = _call(fn, x.clone(), y.clone(), lam, num_classes)
    if failure is not None:  # a CheckResult that failed is falsy
        return failure
    if not isinstance(got, tuple) or len(got) != 2:
        return CheckResult(False, "return a pair (mixed_x, soft_targets)")
    mixed, targets = got
    want_x, want_t = mix_images(x, y, lam, num_classes=num_classes)
    swapped_x, _ = mix_images(x, y, 1 - lam, num_classes=num_classes)
    if not isinstance(mixed, torch.Tensor) or mixed.shape != x.shape:
        return CheckResult(False, f"mixed_x must have the shape of x {tuple(x.shape)}")
    if not torch.allclose(mixed, want_x, atol=1e-6):
        if torch.allclose(mixed, swapped_x, atol=1e-6):
            return CheckResult(False, "images: lam and 1 - lam are swapped; the original image "
                                      "gets weight lam")
        if torch.allclose(mixed, lam * x + (1 - lam) * x.roll(-1, 0), atol=1e-6):
            return CheckResult(False, "images: pair each example with its predecessor, "
                                      "x.roll(1, 0), not x.roll(-1, 0)")
        return CheckResult(False, "mixed images differ: expected lam * x + (1 - lam) * x.roll(1, 0)")
    if not isinstance(targets, torch.Tensor) or targets.shape != (len(y), num_classes):
        shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        return CheckResult(False, f"targets must be soft labels of shape ({len(y)}, {num_classes}) "
                                  f"(one-hot, then mixed), got {shape}")
    if not torch.allclose(targets.float().sum(1), torch.ones(len(y)), atol=1e-6):
        return CheckResult(False, "each row of the targets must sum to 1: lam + (1 - lam)")
    if not torch.allclose(targets.float(), want_t, atol=1e-6):
        return CheckResult(False, "targets differ: mix F.one_hot(y) exactly as the images "
                                  "(same lam, same roll)")
    return CheckResult(True, f"{fn.__name__} matches the reference mixup (images and targets).")
