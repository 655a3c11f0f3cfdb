"""The learning-rate range test (Smith 2015/2017, in fastai's exponential form).

Train a *copy* of the model for a few hundred steps while the LR grows exponentially from
``start_lr`` to ``end_lr``, smooth the per-batch loss, stop once it blows up, and suggest the LR
where the smoothed loss falls fastest. The caller's model, its optimizer, the loader's shuffling
state and torch's global RNG are all left exactly as they were. Taught in notebook 05.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from course_utils.train import LossFn, train_step

OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]


@dataclass(frozen=True)
class LRFinderResult:
    """What the range test saw: per step the LR, the batch loss and its smoothed value.

    ``diverged`` is True when the test stopped early because the smoothed loss exceeded
    ``diverge_factor`` times its minimum (or became NaN/Inf).
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    suggested_lr: float
    diverged: bool


def suggest_lr(lrs: Iterable[float], smoothed: Iterable[float]) -> float:
    """The LR where the smoothed loss falls fastest (steepest slope against log10 LR), looked
    for between the first 10% of the sweep and the minimum of the smoothed loss.

    Falls back to a tenth of the LR at the minimum when too few points precede it.

    Raises:
        ValueError: lengths differ, an LR is not positive and finite, or no loss is finite
            (a test that failed at its first step says nothing about the LR).
    """
    lrs_array, losses = np.asarray(list(lrs), dtype=float), np.asarray(list(smoothed), dtype=float)
    if len(lrs_array) != len(losses) or len(losses) == 0:
        raise ValueError(f"lrs and smoothed must be non-empty and of equal length, got "
                         f"{len(lrs_array)} and {len(losses)}")
    if not (np.isfinite(lrs_array).all() and (lrs_array > 0).all()):
        raise ValueError("every LR must be positive and finite")
    if not np.isfinite(losses).any():
        raise ValueError("no finite loss to suggest an LR from: the loss was NaN/Inf from the first "
                         "step on, so the learning rate is not the problem; check the inputs and "
                         "labels for NaN/Inf, and the model's initialisation")
    finite = np.where(np.isfinite(losses), losses, np.inf)
    lowest = int(np.argmin(finite))
    first = len(losses) // 10  # the first points carry little information
    if lowest - first < 2:
        return float(lrs_array[lowest] / 10)
    window = slice(first, lowest + 1)
    slope = np.gradient(losses[window], np.log10(lrs_array[window]))
    return float(lrs_array[first + int(np.argmin(slope))])


def _check_args(model: Any, optimizer: Any, start_lr: float, end_lr: float, num_steps: int,
                beta: float, diverge_factor: float) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(optimizer, torch.optim.Optimizer) or not callable(optimizer):
        raise TypeError("optimizer must be an optimizer class or a factory params -> Optimizer "
                        "(e.g. torch.optim.Adam or functools.partial(torch.optim.SGD, "
                        f"momentum=0.9)), got {type(optimizer).__name__}")
    if not (0 < start_lr < end_lr and math.isfinite(end_lr)):
        raise ValueError(f"need 0 < start_lr < end_lr, both finite, got start_lr={start_lr!r}, "
                         f"end_lr={end_lr!r}")
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 5:
        raise ValueError(f"num_steps must be an int >= 5, got {num_steps!r}")
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    if not diverge_factor > 1:
        raise ValueError(f"diverge_factor must be > 1, got {diverge_factor!r}")


def _batches(loader: Iterable) -> Iterator:
    """Cycle over ``loader`` for as many batches as the test needs."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("train_loader yielded no batches")


def _shuffle_state(loader: Any, state: Any = None) -> Any:
    """Get (or, given ``state``, restore) a TensorLoader's or DataLoader's shuffling state."""
    if hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict"):
        return loader.state_dict() if state is None else loader.load_state_dict(state)
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        return generator.get_state() if state is None else generator.set_state(state)
    return None  # shuffling follows torch's global RNG, which fork_rng restores


def lr_range_test(model: nn.Module, train_loader: Iterable, *, optimizer: OptimizerFactory,
                  loss_fn: LossFn | None = None, start_lr: float = 1e-6, end_lr: float = 10.0,
                  num_steps: int = 100, beta: float = 0.98, diverge_factor: float = 4.0,
                  device: torch.device | str | None = None) -> LRFinderResult:
    """Run the LR range test on a deep copy of ``model`` and suggest a learning rate.

    Args:
        optimizer: an optimizer class or a factory ``params -> Optimizer`` (for example
            ``functools.partial(torch.optim.SGD, momentum=0.9)``); it is built on the copy's
            parameters, and every param group's LR is overwritten at each step.
        start_lr, end_lr: the sweep's first and last LR; step ``i`` uses
            ``start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``.
        beta: exponential smoothing of the loss, bias-corrected as in fastai.
        diverge_factor: stop once the smoothed loss exceeds this times its minimum.
        device: where to run (default: the model's device).

    Raises:
        TypeError: ``model`` is not a Module, or ``optimizer`` is an optimizer instance.
        ValueError: bad numbers (each message names the allowed range) or an empty loader.
    """
    _check_args(model, optimizer, start_lr, end_lr, num_steps, beta, diverge_factor)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    first = next(model.parameters(), None)
    device = torch.device(device) if device is not None else (
        first.device if first is not None else torch.device("cpu"))
    saved_shuffle = _shuffle_state(train_loader)
    forked = [device] if device.type == "cuda" else []
    lrs, losses, smoothed = [], [], []
    diverged = False
    try:
        with torch.random.fork_rng(devices=forked):
            clone = copy.deepcopy(model).to(device).train()
            opt = optimizer(list(clone.parameters()))
            if not isinstance(opt, torch.optim.Optimizer):
                raise TypeError(f"optimizer(params) must return an Optimizer, got {type(opt).__name__}")
            average, best = 0.0, math.inf
            batches = _batches(train_loader)
            for step in range(num_steps):
                lr = start_lr * (end_lr / start_lr) ** (step / (num_steps - 1))
                for group in opt.param_groups:
                    group["lr"] = lr
                x, y = next(batches)
                x, y = x.to(device), y.to(device)
                loss = train_step(clone, x, y, optimizer=opt, loss_fn=loss_fn).item()
                average = beta * average + (1 - beta) * loss
                value = average / (1 - beta ** (step + 1))
                lrs.append(lr)
                losses.append(loss)
                smoothed.append(value)
                if not math.isfinite(value) or value > diverge_factor * best:
                    diverged = True
                    break
                best = min(best, value)
    finally:
        if saved_shuffle is not None:
            _shuffle_state(train_loader, saved_shuffle)
    return LRFinderResult(tuple(lrs), tuple(losses), tuple(smoothed),
                          suggest_lr(lrs, smoothed), diverged)
