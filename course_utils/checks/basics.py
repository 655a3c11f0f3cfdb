"""Checks for notebook 00: accuracy and one training step."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from course_utils.checks._base import CheckResult, _call
from course_utils.train import train_step


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
