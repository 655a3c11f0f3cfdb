"""Learning-rate schedules as pure functions of the optimizer step.

Each schedule is a plain function ``name(step, *, ...) -> lr``: no state, no optimizer, so it can
be plotted, tested at any step and reasoned about on paper. Bind its parameters with
``functools.partial`` and hand it to :func:`make_scheduler` to drive a real optimizer from
``course_utils.train.train`` (which steps the scheduler after every optimizer step).
Each function matches the ``torch.optim.lr_scheduler`` class named in its docstring when that
scheduler is stepped once per optimizer step. Taught in notebook 05.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence

import torch

Schedule = Callable[[int], float]
ANNEAL_CHOICES = ("cos", "linear")


def _check_step(step: int) -> None:
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _check_count(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_fraction(name: str, value: float, *, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        0 < value <= 1 if low_open else 0 <= value <= 1)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")


def constant(step: int, *, lr: float) -> float:
    """The same ``lr`` at every step (what a plain optimizer does without a scheduler)."""
    _check_step(step)
    _check_positive("lr", lr)
    return float(lr)


def step_decay(step: int, *, lr: float, step_size: int, gamma: float = 0.1) -> float:
    """``lr * gamma ** (step // step_size)``: like ``StepLR(step_size, gamma)``."""
    _check_step(step)
    _check_positive("lr", lr)
    _check_count("step_size", step_size)
    _check_fraction("gamma", gamma, low_open=True)
    return lr * gamma ** (step // step_size)


def multistep(step: int, *, lr: float, milestones: Sequence[int], gamma: float = 0.1) -> float:
    """Multiply ``lr`` by ``gamma`` at each milestone step: like ``MultiStepLR(milestones, gamma)``.

    Raises:
        ValueError: ``milestones`` is empty or not strictly increasing positive ints.
    """
    _check_step(step)
    _check_positive("lr", lr)
    _check_fraction("gamma", gamma, low_open=True)
    milestones = list(milestones)
    valid = all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in milestones)
    if not milestones or not valid or milestones != sorted(set(milestones)):
        raise ValueError(f"milestones must be strictly increasing positive ints, got {milestones!r}")
    return lr * gamma ** bisect_right(milestones, step)


def exponential(step: int, *, lr: float, gamma: float) -> float:
    """``lr * gamma ** step``: like ``ExponentialLR(gamma)``."""
    _check_step(step)
    _check_positive("lr", lr)
    _check_fraction("gamma", gamma, low_open=True)
    return lr * gamma**step


def _cosine(start: float, end: float, fraction: float) -> float:
    """Half a cosine from ``start`` (fraction 0) to ``end`` (fraction 1)."""
    return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2


def cosine(step: int, *, lr: float, total_steps: int, min_lr: float = 0.0) -> float:
    """Cosine decay from ``lr`` at step 0 to ``min_lr`` at ``total_steps``, then ``min_lr``.

    Like ``CosineAnnealingLR(T_max=total_steps, eta_min=min_lr)`` up to ``total_steps``
    (PyTorch's would rise again afterwards; this one stays at ``min_lr``).
    """
    _check_step(step)
    _check_positive("lr", lr)
    _check_count("total_steps", total_steps)
    if not 0 <= min_lr <= lr:
        raise ValueError(f"min_lr must be in [0, lr={lr}], got {min_lr!r}")
    return _cosine(lr, min_lr, min(step, total_steps) / total_steps)


def warmup_cosine(step: int, *, lr: float, warmup_steps: int, total_steps: int,
                  start_factor: float = 0.0, min_lr: float = 0.0) -> float:
    """Linear warm-up from ``start_factor * lr`` to ``lr`` at ``warmup_steps``, then cosine
    decay to ``min_lr`` at ``total_steps``.

    The warm-up is ``LinearLR(start_factor, total_iters=warmup_steps)`` and the decay
    ``CosineAnnealingLR(T_max=total_steps - warmup_steps, eta_min=min_lr)``, chained by
    ``SequentialLR(milestones=[warmup_steps])``. With ``start_factor=0`` the first step has
    LR 0, as in Hugging Face's ``get_cosine_schedule_with_warmup``.
    """
    _check_step(step)
    _check_positive("lr", lr)
    _check_count("total_steps", total_steps)
    _check_count("warmup_steps", warmup_steps, minimum=0)
    if warmup_steps >= total_steps:
        raise ValueError(f"warmup_steps ({warmup_steps}) must be < total_steps ({total_steps})")
    _check_fraction("start_factor", start_factor)
    if not 0 <= min_lr <= lr:
        raise ValueError(f"min_lr must be in [0, lr={lr}], got {min_lr!r}")
    if step < warmup_steps:
        return lr * (start_factor + (1 - start_factor) * step / warmup_steps)
    decay_steps = total_steps - warmup_steps
    return _cosine(lr, min_lr, min(step - warmup_steps, decay_steps) / decay_steps)


def triangular(step: int, *, base_lr: float, max_lr: float, step_size_up: int,
               step_size_down: int | None = None) -> float:
    """Cyclical LR (Smith 2017): up from ``base_lr`` to ``max_lr`` in ``step_size_up`` steps,
    back down in ``step_size_down`` (default: the same), repeated.

    Like ``CyclicLR(base_lr, max_lr, step_size_up, step_size_down, mode="triangular")``.
    """
    _check_step(step)
    _check_positive("base_lr", base_lr)
    _check_positive("max_lr", max_lr)
    if max_lr < base_lr:
        raise ValueError(f"max_lr ({max_lr}) must be >= base_lr ({base_lr})")
    _check_count("step_size_up", step_size_up)
    down = step_size_up if step_size_down is None else step_size_down
    _check_count("step_size_down", down)
    cycle_size = float(step_size_up + down)
    up_fraction = step_size_up / cycle_size
    cycle = math.floor(1 + step / cycle_size)
    x = 1.0 + step / cycle_size - cycle  # position inside the current cycle, in [0, 1)
    scale = x / up_fraction if x <= up_fraction else (x - 1) / (up_fraction - 1)
    return base_lr + (max_lr - base_lr) * scale


def one_cycle(step: int, *, max_lr: float, total_steps: int, pct_start: float = 0.3,
              div_factor: float = 25.0, final_div_factor: float = 1e4, anneal: str = "cos",
              three_phase: bool = False) -> float:
    """The 1cycle policy (Smith & Topin 2019): from ``max_lr / div_factor`` up to ``max_lr``
    over ``pct_start`` of the steps, then down to ``max_lr / div_factor / final_div_factor``
    at step ``total_steps - 1`` (and there afterwards).

    Like ``OneCycleLR(max_lr, total_steps, pct_start, anneal_strategy=anneal, div_factor,
    final_div_factor, three_phase)`` for the learning rate; PyTorch's also cycles momentum.

    Args:
        anneal: ``"cos"`` or ``"linear"`` interpolation inside each phase.
        three_phase: go back down to ``max_lr / div_factor`` symmetrically before the final
            annihilation phase (fastai's original shape) instead of two phases.
    """
    _check_step(step)
    _check_positive("max_lr", max_lr)
    _check_count("total_steps", total_steps, minimum=2)
    _check_fraction("pct_start", pct_start, low_open=True)
    _check_positive("div_factor", div_factor)
    _check_positive("final_div_factor", final_div_factor)
    if anneal not in ANNEAL_CHOICES:
        raise ValueError(f"anneal={anneal!r}; choose one of {ANNEAL_CHOICES}")
    initial_lr = max_lr / div_factor
    final_lr = initial_lr / final_div_factor
    up_end = float(pct_start * total_steps) - 1  # the same phase boundaries as OneCycleLR
    if three_phase:
        phases = [(up_end, initial_lr, max_lr), (2 * up_end, max_lr, initial_lr),
                  (total_steps - 1, initial_lr, final_lr)]
    else:
        phases = [(up_end, initial_lr, max_lr), (total_steps - 1, max_lr, final_lr)]
    ends = [0.0] + [end for end, _, _ in phases]
    if any(b <= a for a, b in zip(ends, ends[1:], strict=False)):
        raise ValueError(f"pct_start={pct_start} with total_steps={total_steps} leaves a phase "
                         "with no steps; use more steps or a pct_start nearer 0.3")
    step = min(step, total_steps - 1)  # the last phase ends exactly there, so one matches
    phase = 0
    while step > phases[phase][0]:
        phase += 1
    end, start_lr, end_lr = phases[phase]
    start = phases[phase - 1][0] if phase > 0 else 0.0
    fraction = (step - start) / (end - start)
    if anneal == "cos":
        return _cosine(start_lr, end_lr, fraction)
    return start_lr + (end_lr - start_lr) * fraction


SCHEDULES: dict[str, Callable[..., float]] = {
    "constant": constant, "step": step_decay, "multistep": multistep,
    "exponential": exponential, "cosine": cosine, "warmup_cosine": warmup_cosine,
    "triangular": triangular, "one_cycle": one_cycle,
}


def make_scheduler(optimizer: torch.optim.Optimizer,
                   schedule: Schedule) -> torch.optim.lr_scheduler.LambdaLR:
    """Drive ``optimizer`` with a pure ``schedule(step) -> lr``: a ``LambdaLR`` whose factor is
    ``schedule(step) / lr0``, where ``lr0`` is the first param group's LR right now.

    The first param group then follows ``schedule`` exactly; other groups keep their ratio to
    it. Step it after every optimizer step (``train`` does).

    Raises:
        TypeError: ``optimizer`` is not an Optimizer or ``schedule`` is not callable.
        ValueError: the optimizer's LR is not positive.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not callable(schedule):
        raise TypeError(f"schedule must be a function step -> lr, got {type(schedule).__name__}")
    lr0 = float(optimizer.param_groups[0]["lr"])
    if not lr0 > 0:
        raise ValueError(f"the optimizer's lr must be positive to be rescaled, got {lr0}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step) / lr0)


def record_lrs(scheduler: torch.optim.lr_scheduler.LRScheduler, num_steps: int) -> list[float]:
    """The first param group's LR at steps ``0 .. num_steps - 1``, stepping ``scheduler``
    once per step (no training happens: this is how PyTorch's schedules are drawn)."""
    _check_count("num_steps", num_steps)
    lrs = []
    for _ in range(num_steps):
        lrs.append(float(scheduler.optimizer.param_groups[0]["lr"]))
        scheduler.optimizer.step()  # no gradients: a no-op that keeps PyTorch's order check quiet
        scheduler.step()
    return lrs
