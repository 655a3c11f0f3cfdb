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



def _amp_steps(initial: nn.Module, x: torch.Tensor, y: torch.Tensor, case: tuple, steps: int,
               mistake: str | None = None) -> nn.Module:
    """``steps`` fp16 AMP steps on a copy of ``initial``: the course's ``train_step``, or a
    hand-written step with one ``mistake`` (a key of ``_AMP_MISTAKES``) built in."""
    _, loss_fn, max_norm, lr = case
    model = copy.deepcopy(initial)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler("cpu", enabled=mistake != "scale")
    for _ in range(steps):
        if mistake is None:
            train_step(model, x, y, optimizer=optimizer, loss_fn=loss_fn, amp="fp16", scaler=scaler,
                       grad_clip=max_norm)
            continue
        dtype = torch.bfloat16 if mistake == "bf16" else torch.float16
        with torch.autocast("cpu", dtype=dtype, enabled=mistake != "autocast"):
            loss = loss_fn(model(x), y)
        if mistake != "zero_grad":
            optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if mistake != "unscale":
            scaler.unscale_(optimizer)
        if mistake != "clip":
            nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.step(optimizer)
        scaler.update()
    return model


def _same_parameters(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.allclose(p, q, rtol=0.0, atol=1e-7) for p, q in
               zip(a.parameters(), b.parameters(), strict=True))


_AMP_MISTAKES = {
    "unscale": "the gradients were clipped while still scaled: call scaler.unscale_(optimizer) "
               "before clip_grad_norm_",
    "scale": "the fp16 gradients underflowed to zero: back-propagate scaler.scale(loss), not loss",
    "autocast": "the forward pass did not run in fp16: compute model(x) and the loss inside "
                "torch.autocast(x.device.type, dtype=torch.float16)",
    "bf16": "the forward pass ran in bfloat16; this exercise asks for dtype=torch.float16",
    "clip": "the gradients were not clipped: call nn.utils.clip_grad_norm_(model.parameters(), "
            "max_norm) after scaler.unscale_(optimizer)",
    "zero_grad": "gradients from step 1 leaked into step 2: call optimizer.zero_grad() before "
                 "backward",
}


def check_amp_step(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(model, x, y, optimizer, loss_fn, scaler, max_norm)``: one fp16 AMP step.

    The reference is the course's ``train_step(..., amp="fp16", scaler=scaler,
    grad_clip=max_norm)`` on the CPU: forward under ``torch.autocast``,
    ``scaler.scale(loss).backward()``, ``scaler.unscale_`` *before* clipping, ``scaler.step``,
    ``scaler.update``. Two cases, two steps each: an ordinary loss with active clipping (shows
    clipping of still-scaled gradients) and a loss multiplied by 1e-6 (its fp16 gradients
    underflow unless the loss is scaled). The first mismatch is named with its usual cause.
    Notebook 11.
    """
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 6, generator=generator), torch.randint(0, 3, (32,), generator=generator)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        initial = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    cases = [  # name, loss_fn, max_norm, lr (x 1e6 for the loss x 1e-6: the same updates)
        ("an ordinary loss and max_norm=0.05", nn.CrossEntropyLoss(), 0.05, 0.1),
        ("a loss multiplied by 1e-6", lambda logits, y: nn.functional.cross_entropy(logits, y) * 1e-6,
         1.0, 1e5),
    ]
    for case in cases:
        student = copy.deepcopy(initial)
        optimizer = torch.optim.SGD(student.parameters(), lr=case[3])
        scaler = torch.amp.GradScaler("cpu")
        for steps in (1, 2):
            got, failure = _call(fn, student, x, y, optimizer, case[1], scaler, case[2])
            if failure is not None:  # a CheckResult that failed is falsy
                return failure
            if _same_parameters(student, _amp_steps(initial, x, y, case, steps)):
                continue
            where = f"with {case[0]}, after step {steps}"
            if all(torch.equal(p, q) for p, q in zip(student.parameters(), initial.parameters(),
                                                      strict=True)):
                unscaled = _amp_steps(initial, x, y, case, steps, "scale")
                cause = (_AMP_MISTAKES["scale"] if _same_parameters(unscaled, initial) else
                         "call scaler.step(optimizer) (it calls optimizer.step())")
                return CheckResult(False, f"{where}: the parameters did not change; {cause}")
            for mistake, cause in _AMP_MISTAKES.items():
                if _same_parameters(student, _amp_steps(initial, x, y, case, steps, mistake)):
                    return CheckResult(False, f"{where}: {cause}")
            return CheckResult(False, f"{where}: the parameters differ from the reference; "
                                      "compare your step with train_step in course_utils/train.py")
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            return CheckResult(False, f"{fn.__name__} returned {got!r}; return the batch's loss "
                                      "(a 0-d tensor)")
    return CheckResult(True, f"{fn.__name__} matches the fp16 AMP reference step, with active "
                             "clipping and with gradients that underflow unless scaled.")
