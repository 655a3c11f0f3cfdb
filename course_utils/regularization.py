"""Regularization helpers: L1/L2 penalties, weight sparsity, and early stopping.

Notebook 07 writes each of these from scratch first: the penalties are added to the loss,
and :class:`EarlyStopping` is the ``on_epoch_end(epoch, history)`` hook of
:func:`course_utils.train.train` (it returns True to stop).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable

import torch
from torch import nn

from course_utils.train import History, LossFn

MONITORS = {"val_loss": "min", "val_acc": "max"}


def _params(parameters: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(parameters, torch.Tensor):
        raise TypeError("pass an iterable of tensors (e.g. model.parameters()), not a single tensor")
    params = list(parameters)
    if not params or not all(isinstance(p, torch.Tensor) for p in params):
        raise TypeError("parameters must be a non-empty iterable of tensors, e.g. model.parameters()")
    return params


def _check_strength(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def l2_penalty(parameters: Iterable[torch.Tensor], weight_decay: float) -> torch.Tensor:
    """``weight_decay / 2 * sum(||p||^2)``: its gradient is ``weight_decay * p``, exactly what
    ``torch.optim.SGD(..., weight_decay=weight_decay)`` adds to each gradient. Notebook 07.

    Raises:
        TypeError: if ``parameters`` is not an iterable of tensors.
        ValueError: if ``weight_decay`` is negative or not finite.
    """
    _check_strength("weight_decay", weight_decay)
    params = _params(parameters)
    return weight_decay / 2 * sum(p.pow(2).sum() for p in params)


def l1_penalty(parameters: Iterable[torch.Tensor], strength: float) -> torch.Tensor:
    """``strength * sum(|p|)`` (lasso); its (sub)gradient is ``strength * sign(p)``. Notebook 07.

    Raises:
        TypeError: if ``parameters`` is not an iterable of tensors.
        ValueError: if ``strength`` is negative or not finite.
    """
    _check_strength("strength", strength)
    params = _params(parameters)
    return strength * sum(p.abs().sum() for p in params)


def penalized_loss(model: nn.Module, *, l1: float = 0.0, l2: float = 0.0,
                   loss_fn: LossFn | None = None) -> LossFn:
    """A loss function ``loss_fn(logits, y) + l1_penalty + l2_penalty`` over ``model``'s parameters.

    The penalty is added only while ``model.training`` is True, so the validation loss that
    :func:`course_utils.train.evaluate` reports (in eval mode) stays the plain data loss and
    runs with different penalties stay comparable. Notebook 07.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.
        ValueError: if ``l1`` or ``l2`` is negative or not finite.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_strength("l1", l1)
    _check_strength("l2", l2)
    data_loss = loss_fn or nn.CrossEntropyLoss()

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        value = data_loss(logits, y)
        if model.training and l1:
            value = value + l1_penalty(model.parameters(), l1)
        if model.training and l2:
            value = value + l2_penalty(model.parameters(), l2)
        return value

    return loss


def fraction_near_zero(parameters: Iterable[torch.Tensor], threshold: float = 1e-3) -> float:
    """The fraction of all elements with ``|p| < threshold`` (a sparsity measure). Notebook 07.

    Raises:
        TypeError: if ``parameters`` is not an iterable of tensors.
        ValueError: if ``threshold`` is not a positive finite number.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold > 0 \
            or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number > 0, got {threshold!r}")
    params = _params(parameters)
    near = sum(int((p.detach().abs() < threshold).sum()) for p in params)
    return near / sum(p.numel() for p in params)


class EarlyStopping:
    """An ``on_epoch_end`` hook for :func:`course_utils.train.train` that stops training when
    the monitored validation metric has not improved for ``patience`` epochs, and puts the
    best weights back into ``model``. Notebook 07 builds it from scratch.

    An epoch counts as an improvement when it beats the best value so far by more than
    ``min_delta`` (lower for ``"val_loss"``, higher for ``"val_acc"``). The best weights are
    kept as a copy of ``model.state_dict()`` on the model's device.

    Args:
        model: the model being trained (the same object passed to ``train``).
        patience: epochs without improvement before stopping (an int >= 1).
        min_delta: the smallest change that counts as an improvement (>= 0).
        monitor: ``"val_loss"`` or ``"val_acc"``; ``train`` needs a ``val_loader`` for either.
        restore_best: put the best weights back when stopping.

    Attributes:
        best_value, best_epoch: the best metric so far and its epoch (1-based), or None.
        stopped_epoch: the epoch (1-based) at which it asked to stop, or None.
    """

    def __init__(self, model: nn.Module, *, patience: int = 5, min_delta: float = 0.0,
                 monitor: str = "val_loss", restore_best: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an int >= 1, got {patience!r}")
        _check_strength("min_delta", min_delta)
        if monitor not in MONITORS:
            raise ValueError(f"monitor={monitor!r}; choose one of {tuple(MONITORS)}")
        self.model, self.patience, self.min_delta = model, patience, float(min_delta)
        self.monitor, self.restore_best = monitor, restore_best
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self._best_state: dict[str, torch.Tensor] | None = None

    def _improved(self, value: float) -> bool:
        if self.best_value is None:
            return True
        if MONITORS[self.monitor] == "min":
            return value < self.best_value - self.min_delta
        return value > self.best_value + self.min_delta

    def __call__(self, epoch: int, history: History) -> bool:
        """Record epoch ``epoch`` (0-based, as ``train`` passes it); True means stop."""
        values = getattr(history, self.monitor)
        if len(values) == 0:
            raise ValueError(f"history.{self.monitor} is empty: pass val_loader to train() "
                             "so that it evaluates after every epoch")
        value = values[-1]
        if self._improved(value):
            self.best_value, self.best_epoch = value, epoch + 1
            self._best_state = copy.deepcopy(self.model.state_dict())
            return False
        if epoch + 1 - self.best_epoch < self.patience:
            return False
        self.stopped_epoch = epoch + 1
        if self.restore_best:
            self.restore()
        return True

    def restore(self) -> None:
        """Load the best weights seen so far into the model (e.g. after the budget ran out).

        Raises:
            RuntimeError: if no epoch has been recorded yet.
        """
        if self._best_state is None:
            raise RuntimeError("EarlyStopping.restore: no epoch recorded yet, nothing to restore")
        self.model.load_state_dict(self._best_state)
