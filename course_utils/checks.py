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


def _number(value: object) -> float | None:
    """A float from a number or a one-element tensor, else None."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _warmup_cosine_hint(step: int, got: float, lr: float, warmup: int, total: int) -> str:
    """Name the usual mistake behind a wrong LR at ``step``."""
    import math

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
    from course_utils.schedules import warmup_cosine

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


def check_accumulated_step(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(model, x, y, optimizer, loss_fn, micro_batch)`` against one large-batch step.

    Gradient accumulation over micro-batches must give the same weights as ``train_step`` on
    the whole batch (a model without BatchNorm, plain SGD, so a wrongly scaled gradient shows
    up as a wrongly sized update). Tries equal micro-batches, then a smaller last one, twice
    in a row each. Notebook 03.
    """
    generator = torch.Generator().manual_seed(0)
    loss_fn = nn.CrossEntropyLoss()
    cases = ((24, 8), (20, 8))  # (batch, micro_batch): 3 equal micro-batches; then 8, 8, 4
    for batch, micro in cases:
        x, y = torch.randn(batch, 6, generator=generator), torch.randint(0, 3, (batch,),
                                                                          generator=generator)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            reference = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
        student, initial = copy.deepcopy(reference), copy.deepcopy(reference)
        opt_ref = torch.optim.SGD(reference.parameters(), lr=0.5)
        opt_student = torch.optim.SGD(student.parameters(), lr=0.5)
        for step in (1, 2):
            before = [p.detach().clone() for p in reference.parameters()]
            expected = train_step(reference, x, y, optimizer=opt_ref, loss_fn=loss_fn)
            got, failure = _call(fn, student, x, y, opt_student, loss_fn, micro)
            if failure is not None:  # a CheckResult that failed is falsy
                return failure
            if all(torch.equal(a, b) for a, b in zip(student.parameters(), initial.parameters(),
                                                     strict=True)):
                return CheckResult(False, "the parameters did not change: call backward() on "
                                          "each micro-batch loss and optimizer.step() once")
            mismatch = _accumulation_mismatch(student, reference, before, batch, micro, step)
            if mismatch is not None:
                return CheckResult(False, mismatch)
            if not isinstance(got, torch.Tensor) or not torch.allclose(got.detach(), expected,
                                                                       atol=1e-6):
                return CheckResult(False, f"step {step} returned {got!r}; return the mean loss "
                                          f"over the whole batch (expected {expected.item():.4f})")
    return CheckResult(True, f"{fn.__name__} reproduces large-batch steps, also with a smaller "
                             "last micro-batch.")


def _accumulation_mismatch(student: nn.Module, reference: nn.Module, before: list[torch.Tensor],
                           batch: int, micro: int, step: int) -> str | None:
    """Why the student's weights differ from the reference after ``step`` (None if they agree)."""
    pairs = list(zip(student.named_parameters(), reference.parameters(), before, strict=True))
    if all(torch.allclose(p, q, atol=1e-6) for (_, p), q, _ in pairs):
        return None
    name = next(n for (n, p), q, _ in pairs if not torch.allclose(p, q, atol=1e-6))
    steps = -(-batch // micro)
    # Compare the student's update with the reference update (from the same weights on step 1).
    ratios = [((p - b).norm() / (q - b).norm()).item() for (_, p), q, b in pairs
              if (q - b).norm() > 0]
    ratio = sum(ratios) / len(ratios) if ratios else float("nan")
    where = f"after step {step} ({batch} examples in micro-batches of {micro}), {name!r} differs"
    if step == 2:
        return (f"{where}: gradients from step 1 leaked into step 2; call "
                "optimizer.zero_grad() once at the start of each accumulated step")
    if abs(ratio - steps) < 0.05 * steps:
        return (f"{where}: the update is {steps}x too large; divide each micro-batch's mean "
                f"loss by the number of micro-batches ({steps}) before backward()")
    if batch % micro:
        return (f"{where}: with a smaller last micro-batch, weight each micro-batch's mean loss "
                "by len(micro-batch) / len(batch) instead of 1 / number of micro-batches")
    return (f"{where}: run forward and backward on every micro-batch, adding up the gradients, "
            "then call optimizer.step() once at the end")


# --- notebook 04: Adam ---------------------------------------------------------------------------

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


# --- notebook 12: sharding ----------------------------------------------------------------------

def _shard_reference(num_samples: int, rank: int, world_size: int, seed: int, epoch: int, *,
                     shuffle: bool = True, strided: bool = True) -> list[int]:
    """DistributedSampler's indices for one rank, or a typical mistake (no shuffle, blocks)."""
    order = (torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
             if shuffle else list(range(num_samples)))
    per_rank = -(-num_samples // world_size)  # ceil
    padded = (order * per_rank * world_size)[:per_rank * world_size]  # repeat from the start
    return padded[rank::world_size] if strided else padded[rank * per_rank:(rank + 1) * per_rank]


def check_shard_indices(fn: Callable[[int, int, int, int, int], object]) -> CheckResult:
    """Check ``fn(num_samples, rank, world_size, seed, epoch) -> list of indices`` (one rank's shard).

    The reference is ``torch.utils.data.distributed.DistributedSampler(range(num_samples),
    num_replicas=world_size, rank=rank, shuffle=True, seed=seed)`` after ``set_epoch(epoch)``.
    Names the usual mistake: no padding, no shuffle, contiguous blocks, epoch ignored. Notebook 12.
    """
    from torch.utils.data.distributed import DistributedSampler  # imported only when checking

    cases = ((10, 2, 0, 0), (10, 3, 0, 0), (7, 4, 1, 1), (12, 3, 5, 2), (2, 5, 0, 0))
    for num_samples, world_size, seed, epoch in cases:
        for rank in range(world_size):
            sampler = DistributedSampler(range(num_samples), num_replicas=world_size, rank=rank,
                                         shuffle=True, seed=seed)
            sampler.set_epoch(epoch)
            expected = list(sampler)
            got, failure = _call(fn, num_samples, rank, world_size, seed, epoch)
            if failure is not None:  # a CheckResult that failed is falsy
                return failure
            if isinstance(got, torch.Tensor):
                got = got.tolist()
            case = (f"num_samples={num_samples}, rank={rank}, world_size={world_size}, "
                    f"seed={seed}, epoch={epoch}")
            if not isinstance(got, (list, tuple)) or not all(isinstance(i, int) for i in got):
                return CheckResult(False, f"{case}: return a list of int indices, got {got!r}")
            got = list(got)
            if got == expected:
                continue
            hint = _shard_hint(got, expected, case_args=(num_samples, rank, world_size, seed, epoch))
            return CheckResult(False, f"{case}: {hint}")
    return CheckResult(True, f"{fn.__name__} agrees with DistributedSampler on "
                             f"{sum(c[1] for c in cases)} (case, rank) pairs, padding included.")


def _shard_hint(got: list[int], expected: list[int], *, case_args: tuple[int, ...]) -> str:
    num_samples, rank, world_size, seed, epoch = case_args
    if len(got) != len(expected):
        pad = (" (the shards must be equal: pad the shuffled list by repeating its first indices "
               "until its length is a multiple of world_size)" if len(got) < len(expected) else "")
        return (f"got {len(got)} indices, expected ceil(num_samples / world_size) = "
                f"{len(expected)}{pad}")
    if got == _shard_reference(*case_args, shuffle=False):
        return ("the indices are not shuffled: start from torch.randperm(num_samples, "
                "generator=torch.Generator().manual_seed(seed + epoch)).tolist()")
    if got == _shard_reference(*case_args, strided=False):
        return ("each rank got a contiguous block; DistributedSampler deals the padded list out "
                "round-robin: padded[rank::world_size]")
    if epoch != 0 and got == _shard_reference(num_samples, rank, world_size, seed, 0):
        return ("the order does not change with the epoch: seed the generator with seed + epoch, "
                "so every epoch gets a new shuffle")
    return f"got {got[:10]}, expected {expected[:10]} (the first indices of each shown)"


# --- notebook 07: regularization ----------------------------------------------------------------

def check_l2_penalty(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(parameters, weight_decay) -> weight_decay / 2 * sum of squared elements``.

    With this convention the penalty's gradient is ``weight_decay * p``, which is what
    ``torch.optim.SGD(weight_decay=...)`` adds. Names the usual mistakes: a missing 1/2, the
    norm instead of its square, absolute values (L1), only some parameters. Notebook 07.
    """
    generator = torch.Generator().manual_seed(0)
    params = [torch.randn(4, 3, generator=generator), torch.randn(3, generator=generator),
              torch.randn(2, 4, generator=generator)]
    for weight_decay in (0.1, 0.0, 2.5):
        got, failure = _call(fn, iter([p.clone() for p in params]), weight_decay)
        if failure is not None:  # a CheckResult that failed is falsy
            return failure
        value = _number(got)
        if value is None:
            return CheckResult(False, f"return a number or a 0-d tensor, got {got!r}")
        squares = sum(float(p.pow(2).sum()) for p in params)
        expected = weight_decay / 2 * squares
        if abs(value - expected) <= 1e-5 * max(1.0, abs(expected)):
            continue
        hints = {
            weight_decay * squares: "twice the expected value: the convention is weight_decay / 2 * "
                                    "sum(p ** 2), so that the gradient is weight_decay * p",
            weight_decay / 2 * squares ** 0.5: "you used the norm ||w||; the penalty uses its square",
            weight_decay * squares ** 0.5: "you used the norm ||w||; the penalty uses its square, halved",
            weight_decay / 2 * sum(float(p.abs().sum()) for p in params): "that is L1 (absolute "
                                                                          "values); square instead",
            weight_decay / 2 * float(params[0].pow(2).sum()): "only the first tensor counted: sum "
                                                              "over every parameter",
        }
        close = [text for wrong, text in hints.items() if abs(value - wrong) <= 1e-5 * max(1.0, abs(wrong))]
        hint = next(iter(close),
                    "compare with weight_decay / 2 * sum((p ** 2).sum() for p in parameters); "
                    "parameters may be a generator such as model.parameters(): loop over it once")
        return CheckResult(False, f"weight_decay={weight_decay}: got {value:.6g}, expected "
                                  f"{expected:.6g} ({hint})")
    return CheckResult(True, f"{fn.__name__} matches weight_decay / 2 * ||w||^2 on 3 cases, "
                             "and consumes the parameters only once.")


def check_early_stopping(factory: Callable[..., object]) -> CheckResult:
    """Check ``factory(model, patience) -> hook``, an ``on_epoch_end(epoch, history)`` hook.

    The hook must return True once ``history.val_loss`` has not improved for ``patience``
    epochs and then put the best epoch's weights back into ``model``. The check plays
    ``train``'s part with made-up validation losses, changing the weights every epoch.
    Notebook 07.
    """
    from course_utils.train import History

    cases = (([1.0, 0.8, 0.9, 0.85, 0.95, 0.7], 3, 5, 2),
             ([1.0, 0.9, 0.8, 0.7, 0.6, 0.5], 2, None, 6),
             ([0.5, 0.6, 0.7, 0.4], 1, 2, 1))
    for losses, patience, stop_at, best in cases:
        model = nn.Linear(2, 1)
        hook, failure = _call(factory, model, patience)
        if failure is not None:  # a CheckResult that failed is falsy
            return failure
        history, stopped, case = History(), None, f"val_loss={losses}, patience={patience}"
        for epoch, loss in enumerate(losses):
            with torch.no_grad():
                model.weight.fill_(float(epoch + 1))  # the weights after epoch `epoch`
            history.epoch.append(epoch + 1)
            history.val_loss.append(loss)
            answer, failure = _call(hook, epoch, history)
            if failure is not None:
                return failure
            if answer:
                stopped = epoch + 1
                break
        if stopped != stop_at:
            when = "never stopped" if stopped is None else f"stopped after epoch {stopped}"
            want = "never stop" if stop_at is None else f"stop after epoch {stop_at}"
            return CheckResult(False, f"{case}: the hook {when}; it should {want} (stop when "
                                      f"{patience} epoch(s) in a row did not beat the best loss)")
        if stopped is not None and float(model.weight[0, 0].detach()) != best:
            return CheckResult(False, f"{case}: after stopping the model holds epoch "
                                      f"{float(model.weight[0, 0].detach()):g}'s weights, expected the best "
                                      f"epoch's ({best}); save a deep copy of model.state_dict() "
                                      "when the loss improves and load it before returning True")
    return CheckResult(True, f"{getattr(factory, '__name__', 'factory')}'s hook stops at the right "
                             f"epoch and restores the best weights in {len(cases)} cases.")
