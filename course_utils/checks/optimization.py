"""Checks for the optimization notebooks: Adam (04), warm-up + cosine schedule (05)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from course_utils.checks._base import CheckResult, _call, _number
from course_utils.schedules import warmup_cosine

_ADAM = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
_ADAM_STEPS = 5
# (correct m, correct v, sign) -> what the student probably did
_ADAM_MISTAKES = {
    (False, False, -1): "it matches Adam WITHOUT bias correction: use m_hat = m / (1 - beta1**t) "
                        "and v_hat = v / (1 - beta2**t) in the update",
    (True, False, -1): "it matches Adam with m bias-corrected but not v: also divide v by (1 - beta2**t)",
    (False, True, -1): "it matches Adam with v bias-corrected but not m: also divide m by (1 - beta1**t)",
    (True, True, 1): "it moves uphill: subtract lr * m_hat / (sqrt(v_hat) + eps) from the parameter",
}


def _adam_variant(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: int,
                  correct_m: bool, correct_v: bool, sign: int) -> tuple[torch.Tensor, ...]:
    lr, beta1, beta2, eps = _ADAM["lr"], _ADAM["beta1"], _ADAM["beta2"], _ADAM["eps"]
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1**t) if correct_m else m
    v_hat = v / (1 - beta2**t) if correct_v else v
    return p + sign * lr * m_hat / (v_hat.sqrt() + eps), m, v


def _adam_case() -> tuple[dict[str, torch.Tensor], list[list[torch.Tensor]]]:
    generator = torch.Generator().manual_seed(0)
    params = {"weight": torch.randn(3, 4, generator=generator),
              "bias": torch.randn(3, generator=generator)}
    grads = [[torch.randn(p.shape, generator=generator) * scale for p in params.values()]
             for scale in (1.0, 0.3, 2.0, 0.05, 1.0)[:_ADAM_STEPS]]
    return params, grads


def _adam_student_steps(student: Callable[..., object] | type, params: dict[str, torch.Tensor],
                        grads: list[list[torch.Tensor]]) -> tuple[list, list, CheckResult | None]:
    """Run the student's class or function; per step, the parameters (and (m, v) if known)."""
    name = getattr(student, "__name__", type(student).__name__)
    hyper = (_ADAM["lr"], _ADAM["beta1"], _ADAM["beta2"], _ADAM["eps"])
    history, moments = [], []
    if isinstance(student, type):
        tensors = [p.clone() for p in params.values()]
        try:
            optimizer = student(tensors, lr=hyper[0], betas=hyper[1:3], eps=hyper[3])
            for step_grads in grads:
                for p, g in zip(tensors, step_grads, strict=True):
                    p.grad = g.clone()
                optimizer.step()
                history.append([p.detach().clone() for p in tensors])
        except NotImplementedError:
            return [], [], CheckResult(False, f"{name} is not implemented yet.")
        except Exception as err:  # the student's code may fail in any way; report it plainly
            return [], [], CheckResult(False, f"{name} raised {type(err).__name__}: {err} "
                                              f"(it is built as {name}(params, lr=..., betas=(b1, b2), "
                                              "eps=...) and stepped with p.grad set)")
        return history, [], None
    state = [(p.clone(), torch.zeros_like(p), torch.zeros_like(p)) for p in params.values()]
    for t, step_grads in enumerate(grads, start=1):
        new_state = []
        for (p, m, v), g in zip(state, step_grads, strict=True):
            got, failure = _call(student, p.clone(), g.clone(), m.clone(), v.clone(), t, *hyper)
            if failure is not None:
                return [], [], failure
            if not (isinstance(got, tuple) and len(got) == 3
                    and all(isinstance(x, torch.Tensor) and x.shape == p.shape for x in got)):
                what = type(got).__name__ + (f" of length {len(got)}" if isinstance(got, tuple) else "")
                return [], [], CheckResult(False, f"{name} must return (param, m, v): three tensors "
                                                  f"shaped like param, got a {what}")
            new_state.append(tuple(x.detach() for x in got))
        state = new_state
        history.append([p for p, _, _ in state])
        moments.append([(m, v) for _, m, v in state])
    return history, moments, None


def _first_difference(got: torch.Tensor, want: torch.Tensor) -> str | None:
    close = torch.isclose(got, want, rtol=1e-5, atol=1e-7)
    if bool(close.all()):
        return None
    index = tuple(int(i) for i in torch.nonzero(~close)[0])
    return f"element {index}: got {got[index].item():.7g}, expected {want[index].item():.7g}"


def _wrong_moment(moments: list, t: int, k: int, g: torch.Tensor) -> str | None:
    """Which returned moment (m or v) disagrees with its update from the previous step's."""
    m_prev, v_prev = (torch.zeros_like(g), torch.zeros_like(g)) if t == 1 else moments[t - 2][k]
    m, v = moments[t - 1][k]
    beta1, beta2 = _ADAM["beta1"], _ADAM["beta2"]
    if _first_difference(m, beta1 * m_prev + (1 - beta1) * g) is not None:
        return "the returned m is wrong; m = beta1 * m + (1 - beta1) * grad (keep m itself uncorrected)"
    if _first_difference(v, beta2 * v_prev + (1 - beta2) * g * g) is not None:
        return "the returned v is wrong; v = beta2 * v + (1 - beta2) * grad**2 (keep v itself uncorrected)"
    return None


def check_adam_step(student: Callable[..., object] | type) -> CheckResult:
    """Check a student's Adam against ``torch.optim.Adam`` step by step. Notebook 04.

    ``student`` is either a ``torch.optim.Optimizer`` subclass, built as
    ``student(params, lr=..., betas=(beta1, beta2), eps=...)``, or a function
    ``adam_step(param, grad, m, v, t, lr, beta1, beta2, eps) -> (new_param, new_m, new_v)``
    with ``t`` the 1-based step. Reports the first step and parameter that differ and, when the
    numbers match a common mistake (missing bias correction, wrong sign), names it.
    """
    params, grads = _adam_case()
    history, moments, failure = _adam_student_steps(student, params, grads)
    if failure is not None:
        return failure
    names = list(params)
    reference = [p.clone() for p in params.values()]
    optimizer = torch.optim.Adam(reference, lr=_ADAM["lr"], betas=(_ADAM["beta1"], _ADAM["beta2"]),
                                 eps=_ADAM["eps"])
    variants = {key: [(p.clone(), torch.zeros_like(p), torch.zeros_like(p)) for p in params.values()]
                for key in _ADAM_MISTAKES}
    for t, step_grads in enumerate(grads, start=1):
        for p, g in zip(reference, step_grads, strict=True):
            p.grad = g.clone()
        optimizer.step()
        for key, states in variants.items():
            variants[key] = [_adam_variant(p, g, m, v, t, *key)
                             for (p, m, v), g in zip(states, step_grads, strict=True)]
        for k, (got, want) in enumerate(zip(history[t - 1], reference, strict=True)):
            if not bool(torch.isfinite(got).all()):
                return CheckResult(False, f"step {t}, parameter {names[k]!r} has NaN/Inf values: is t "
                                          "1-based (1 - beta**0 = 0) and v built from grad**2?")
            if moments:
                wrong = _wrong_moment(moments, t, k, step_grads[k])
                if wrong is not None:
                    return CheckResult(False, f"step {t}, parameter {names[k]!r}: {wrong}")
            difference = _first_difference(got, want.detach())
            if difference is None:
                continue
            hint = next((text for key, text in _ADAM_MISTAKES.items()
                         if _first_difference(got, variants[key][k][0]) is None),
                        "compare your update with the equations above, term by term")
            return CheckResult(False, f"step {t}, parameter {names[k]!r} differs from torch.optim.Adam "
                                      f"at {difference}; {hint}.")
    kind = "class" if isinstance(student, type) else "function"
    name = getattr(student, "__name__", "student")
    return CheckResult(True, f"{name} ({kind}) matches torch.optim.Adam for {len(grads)} steps on "
                             f"{len(names)} parameters.")


def _warmup_cosine_hint(step: int, got: float, lr: float, warmup: int, total: int) -> str:
    """Name the usual mistake behind a wrong LR at ``step``."""

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= 1e-9 + 1e-6 * abs(b)

    if step < warmup:
        if close(got, lr * (step + 1) / warmup):
            return ("off by one: the warm-up starts at 0 at step 0 (lr * step / warmup_steps) "
                    "and reaches lr exactly at step warmup_steps")
        if close(got, lr):
            return "no warm-up: during the first warmup_steps steps the LR rises linearly from 0"
        return "during the warm-up the LR is lr * step / warmup_steps"
    decay = total - warmup
    if close(got, lr * (1 + math.cos(math.pi * step / total)) / 2):
        return ("the cosine must start after the warm-up: use progress = "
                "(step - warmup_steps) / (total_steps - warmup_steps)")
    if close(got, lr * (1 + math.cos(math.pi * (step - warmup) / total)) / 2):
        return ("divide by the length of the decay, total_steps - warmup_steps, so the LR "
                "reaches 0 exactly at total_steps")
    if close(got, lr * (1 - math.cos(math.pi * (step - warmup) / decay)) / 2):
        return "the cosine goes the wrong way: it falls from lr to 0, lr * (1 + cos(pi * progress)) / 2"
    return ("after the warm-up the LR is lr * (1 + cos(pi * progress)) / 2 with "
            "progress = (step - warmup_steps) / (total_steps - warmup_steps)")


def check_warmup_cosine(fn: Callable[[int, float, int, int], object]) -> CheckResult:
    """Check ``fn(step, lr, warmup_steps, total_steps) -> lr`` against the course's
    ``schedules.warmup_cosine`` (linear warm-up from 0, then cosine decay to 0).

    Every step from 0 to ``total_steps`` of a few configurations is compared; the first
    mismatch is reported with its most likely cause. Notebook 05.
    """

    configs = ((0.1, 10, 100), (1.0, 3, 20), (0.5, 0, 50))  # (lr, warmup_steps, total_steps)
    for lr, warmup, total in configs:
        for step in range(total + 1):
            got, failure = _call(fn, step, lr, warmup, total)
            if failure is not None and "not implemented" in failure.message:
                return failure
            if failure is not None:  # a CheckResult that failed is falsy
                note = "; warmup_steps=0 means no warm-up at all" if warmup == 0 else ""
                return CheckResult(False, f"{failure.message} (at step {step} with lr={lr}, "
                                          f"warmup_steps={warmup}, total_steps={total}{note})")
            if got is None:
                return CheckResult(False, f"{fn.__name__} returned None: did you forget `return`?")
            value = _number(got)
            if value is None:
                return CheckResult(False, f"{fn.__name__} returned {type(got).__name__}; return "
                                          "the learning rate as a float")
            expected = warmup_cosine(step, lr=lr, warmup_steps=warmup, total_steps=total)
            if abs(value - expected) > 1e-9 + 1e-6 * abs(expected):
                hint = _warmup_cosine_hint(step, value, lr, warmup, total)
                return CheckResult(False, f"with lr={lr}, warmup_steps={warmup}, "
                                          f"total_steps={total}: at step {step} got {value:.6g}, "
                                          f"expected {expected:.6g}; {hint}")
    return CheckResult(True, f"{fn.__name__} matches warmup_cosine at every step of "
                             f"{len(configs)} configurations.")
