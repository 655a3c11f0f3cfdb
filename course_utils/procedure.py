"""The tuning procedure's checks: each step of notebook 10 passes or says why not.

1. :func:`inspect_initial_loss` -- a fresh classifier's loss is about ln(num_classes);
2. :func:`overfit_tiny_subset` -- the model can reach 100% training accuracy on a few images;
3. :func:`find_falling_lr` -- the course's LR range test (:func:`course_utils.lr_finder.lr_range_test`)
   suggests an LR, and a short run checks that the loss really falls within ~100 iterations;
4. and 5. are searches (:mod:`course_utils.tuning`, :mod:`course_utils.studies`);
6. :func:`diagnose_curves` -- reads a run's smoothed curves and names their shape (diverged,
   flat, LR too high, LR too low, overfitting, a bug, or healthy).

Every check returns a :class:`StepReport` whose message says what was measured and, when the
step fails, the likely causes, most common first. The checks run on a copy of the model and
leave the caller's model, the loader's shuffling and torch's RNG as they were. Notebook 10.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.lr_finder import OptimizerFactory, _batches, _shuffle_state, lr_range_test
from course_utils.train import train_step


@dataclass(frozen=True)
class StepReport:
    """The outcome of one step of the procedure: passed or not, why, and the numbers seen."""

    step: str
    passed: bool
    message: str
    numbers: dict[str, Any] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"{'PASSED' if self.passed else 'FAILED'} ({self.step}): {self.message}"

    def __bool__(self) -> bool:
        return self.passed


def _is_probabilities(outputs: torch.Tensor) -> bool:
    ones = torch.ones(len(outputs), dtype=outputs.dtype, device=outputs.device)
    return bool((outputs >= 0).all() and (outputs <= 1).all()
                and torch.allclose(outputs.sum(1), ones, atol=1e-4))


@torch.no_grad()
def inspect_initial_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                         tolerance: float = 0.1) -> StepReport:
    """Step 1: the cross-entropy of a fresh model on a batch should be about ln(num_classes).

    A model that starts near uniform outputs has loss ln(C) (2.303 for 10 classes), whatever the
    labels. Measure it with weight decay 0 (a penalty would add to it). Also flags outputs that
    are already probabilities, a softmax applied twice, which this number alone cannot see.

    Args:
        x, y: a batch of inputs ``(N, ...)`` and class labels ``(N,)`` on the model's device.
        tolerance: how far from ln(C) still passes.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance!r}")
    outputs = model(x).float()
    classes = outputs.shape[1]
    expected = math.log(classes)
    loss = float(F.cross_entropy(outputs, y))
    numbers = {"loss": loss, "expected": expected, "num_classes": classes,
               "max_abs_output": float(outputs.abs().max())}
    if not math.isfinite(loss):
        return StepReport("initial loss", False, f"the loss is {loss} before any training: the "
                          "init produces overflowing outputs, or the inputs contain NaN/Inf", numbers)
    if _is_probabilities(outputs):
        floor = math.log(classes - 1 + math.e) - 1
        numbers["floor"] = floor
        return StepReport("initial loss", False, (
            f"loss {loss:.3f} looks right (ln {classes} = {expected:.3f}), but the outputs are "
            "already probabilities (rows in [0, 1] summing to 1): cross_entropy applies its own "
            f"log-softmax, so softmax runs twice and the loss can never go below {floor:.2f}; "
            "return logits (drop the final Softmax)"), numbers)
    if abs(loss - expected) <= tolerance:
        return StepReport("initial loss", True, f"{loss:.3f} ≈ ln {classes} = {expected:.3f} "
                          f"(within {tolerance:g}): the model starts near uniform outputs", numbers)
    if loss > expected:
        return StepReport("initial loss", False, (
            f"{loss:.3f} is {loss / expected:.1f}x ln {classes} = {expected:.3f}: the model is "
            f"confidently wrong before training (outputs up to ±{numbers['max_abs_output']:.3g}); "
            "the init is too large (weights scaled up, a wrong std) or the inputs are not "
            "normalized"), numbers)
    return StepReport("initial loss", False, (
        f"{loss:.3f} is below ln {classes} = {expected:.3f} before any training: the model already "
        "predicts the labels (labels leaking into the inputs?) or the loss is not mean "
        "cross-entropy"), numbers)


def _copy_and_optimizer(model: nn.Module, optimizer: OptimizerFactory,
                        device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(optimizer, torch.optim.Optimizer) or not callable(optimizer):
        raise TypeError("optimizer must be an optimizer class or a factory params -> Optimizer "
                        f"(e.g. functools.partial(torch.optim.SGD, lr=0.1)), got {type(optimizer).__name__}")
    clone = copy.deepcopy(model).to(device).train()
    return clone, optimizer(list(clone.parameters()))


def _device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    first = next(model.parameters(), None)
    return torch.device(device) if device is not None else (
        first.device if first is not None else torch.device("cpu"))


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    accuracy = float((model(x).argmax(1) == y).float().mean())
    model.train()
    return accuracy


def overfit_tiny_subset(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                        optimizer: OptimizerFactory, steps: int = 300, max_loss: float = 0.05,
                        check_every: int = 10, device: torch.device | str | None = None) -> StepReport:
    """Step 2: train a copy on one small batch (20-100 images) until it fits it perfectly.

    Passes when training accuracy reaches 100% and the loss falls below ``max_loss`` within
    ``steps`` full-batch steps. Passing proves the pipeline can learn *and memorize*; it does
    not prove the labels match the images (shuffled labels are memorized too).

    Args:
        optimizer: a factory ``params -> Optimizer`` with its LR bound, e.g.
            ``functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9)``.
    """
    if not isinstance(steps, int) or steps < 1 or not isinstance(check_every, int) or check_every < 1:
        raise ValueError(f"steps and check_every must be positive ints, got {steps!r}, {check_every!r}")
    device = _device(model, device)
    x, y = x.to(device), y.to(device)
    losses, accuracies = [], []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        clone, opt = _copy_and_optimizer(model, optimizer, device)
        for step in range(1, steps + 1):
            losses.append(train_step(clone, x, y, optimizer=opt, loss_fn=F.cross_entropy))
            if step % check_every == 0 or step == steps:
                last = float(losses[-1])
                accuracies.append((step, _accuracy(clone, x, y)))
                if not math.isfinite(last) or (accuracies[-1][1] == 1.0 and last <= max_loss):
                    break
        with torch.no_grad():
            squashed = _is_probabilities(clone(x).float())
    values = torch.stack(losses).tolist()
    first, last, accuracy = values[0], values[-1], accuracies[-1][1]
    numbers = {"losses": values, "accuracies": accuracies, "steps": len(values), "images": len(y)}
    where = f"{len(y)} images, {len(values)} steps"
    if squashed:
        return StepReport("overfit a tiny subset", False, (
            f"the loss went {first:.3f} -> {last:.3f} ({accuracy:.0%} accuracy; {where}), and the "
            "outputs are probabilities: a softmax applied twice squashes the gradients and puts a "
            "floor under the loss; return logits"), numbers)
    if not math.isfinite(last):
        return StepReport("overfit a tiny subset", False, f"the loss became {last} ({where}): the LR "
                          "is too large or the init is bad", numbers)
    if accuracy == 1.0 and last <= max_loss:
        return StepReport("overfit a tiny subset", True, f"100% training accuracy and loss {last:.3f} "
                          f"({where}): the model and the pipeline can learn", numbers)
    if accuracy == 1.0:
        return StepReport("overfit a tiny subset", False, (
            f"100% training accuracy, but the loss stays at {last:.3f} > {max_loss:g} ({where}): "
            "something bounds it from below (outputs squashed by a softmax applied twice, label "
            "smoothing, a penalty inside the loss)"), numbers)
    if last >= 0.9 * first:
        return StepReport("overfit a tiny subset", False, (
            f"the loss did not fall ({first:.3f} -> {last:.3f}, {accuracy:.0%} accuracy; {where}): "
            "the LR is too small, the init is dead (no gradient reaches the weights), or the model "
            "is too small"), numbers)
    return StepReport("overfit a tiny subset", False, (
        f"the loss fell ({first:.3f} -> {last:.3f}) but training accuracy stopped at {accuracy:.0%} "
        f"({where}): the model is too small to fit even these images, or it needs a larger LR or "
        "more steps"), numbers)


def _loss_drop(losses: Sequence[float], within: int) -> float:
    start = sum(losses[:5]) / len(losses[:5])
    end = sum(losses[within - 10:within]) / len(losses[within - 10:within])
    return 1 - end / start if math.isfinite(end) else -math.inf


def find_falling_lr(model: nn.Module, train_loader: Iterable, *, optimizer: OptimizerFactory,
                    within: int = 100, min_drop: float = 0.3, num_steps: int = 100,
                    start_lr: float = 1e-6, end_lr: float = 10.0,
                    device: torch.device | str | None = None) -> StepReport:
    """Step 3: an LR from the course's range test, checked to make the loss fall within ``within`` steps.

    Runs :func:`course_utils.lr_finder.lr_range_test` (on a copy), then trains another copy at
    its suggestion for ``within`` steps. Passes when the mean loss of the last 10 of those steps
    is at least ``min_drop`` (30%) below the mean of the first 5. ``numbers["lr"]`` is the LR,
    ``numbers["range_test"]`` the range test's result.

    Args:
        optimizer: an optimizer class or factory without an LR (the range test sets it), e.g.
            ``functools.partial(torch.optim.SGD, momentum=0.9, weight_decay=1e-4)``.
    """
    if not isinstance(within, int) or within < 10:
        raise ValueError(f"within must be an int >= 10, got {within!r}")
    if not 0 < min_drop < 1:
        raise ValueError(f"min_drop must be in (0, 1), got {min_drop!r}")
    result = lr_range_test(model, train_loader, optimizer=optimizer, start_lr=start_lr,
                           end_lr=end_lr, num_steps=num_steps, device=device)
    lr = result.suggested_lr
    device = _device(model, device)
    saved = _shuffle_state(train_loader)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            clone, opt = _copy_and_optimizer(model, optimizer, device)
            for group in opt.param_groups:
                group["lr"] = lr
            batches, losses = _batches(train_loader), []
            for _ in range(within):
                x, y = next(batches)
                losses.append(train_step(clone, x.to(device), y.to(device), optimizer=opt,
                                         loss_fn=F.cross_entropy))
    finally:
        if saved is not None:
            _shuffle_state(train_loader, saved)
    values = torch.stack(losses).tolist()
    drop = _loss_drop(values, within)
    numbers = {"lr": lr, "losses": values, "drop": drop, "range_test": result}
    if drop >= min_drop:
        return StepReport("an LR that makes the loss fall", True, (
            f"lr={lr:.3g} (range test) takes the loss from {values[0]:.3f} to "
            f"{sum(values[-10:]) / 10:.3f} in {within} iterations, a {drop:.0%} drop"), numbers)
    hint = ("it blew up: try 3-10x smaller" if drop == -math.inf or drop < 0 else
            "it creeps: the range test ended too early (raise end_lr) or the model cannot learn yet "
            "(go back to steps 1-2)")
    return StepReport("an LR that makes the loss fall", False, (
        f"at lr={lr:.3g} the loss fell only {max(drop, 0):.0%} in {within} iterations "
        f"(needed {min_drop:.0%}): {hint}"), numbers)
