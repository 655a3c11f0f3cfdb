"""Per-class metrics beyond accuracy: confusion matrix, per-class recall, confidence, calibration.

Taught in notebook 06 (loss functions), where accuracy hides a failing minority class and label
smoothing changes how confident a model is.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def _check_labels(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> None:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(y).__name__}")
        if y.ndim != 1 or y.dtype.is_floating_point:
            raise ValueError(f"{name} must be a 1-d integer tensor of class indices, "
                             f"got {y.dtype} with shape {tuple(y.shape)}")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {tuple(y_true.shape)} "
                         f"and {tuple(y_pred.shape)}")
    if len(y_true) and (min(y_true.min(), y_pred.min()) < 0
                        or max(y_true.max(), y_pred.max()) >= num_classes):
        raise ValueError(f"class indices must lie in [0, {num_classes - 1}]")


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts ``(num_classes, num_classes)``: row = true class, column = predicted class.

    Args:
        y_true: true class indices ``(N,)``.
        y_pred: predicted class indices ``(N,)``.
        num_classes: the number of classes ``C``.

    Returns:
        An int64 tensor whose entry ``[i, j]`` counts the examples of class ``i`` predicted as ``j``.
    """
    _check_labels(y_true, y_pred, num_classes)
    flat = y_true.long().cpu() * num_classes + y_pred.long().cpu()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_recall(matrix: torch.Tensor) -> torch.Tensor:
    """Recall of every class from a confusion matrix: diagonal / row sum (NaN for an empty row).

    The mean of this vector is the *balanced accuracy* (macro recall).
    """
    if not isinstance(matrix, torch.Tensor):
        raise TypeError(f"matrix must be a torch.Tensor, got {type(matrix).__name__}")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square (C, C), got shape {tuple(matrix.shape)}")
    if (matrix < 0).any():
        raise ValueError("matrix must hold non-negative counts")
    totals = matrix.sum(1).double()
    return torch.where(totals > 0, matrix.diagonal().double() / totals.clamp_min(1),
                       torch.full_like(totals, float("nan")))


@torch.no_grad()
def predict_proba(model: nn.Module, loader: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities ``(N, C)`` and labels ``(N,)`` over ``loader``, on the CPU, in eval mode.

    The model's train/eval mode is restored afterwards.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    probs, labels = [], []
    try:
        for x, y in loader:
            first = next(model.parameters(), None)
            x = x.to(first.device) if first is not None else x
            probs.append(model(x).float().softmax(1).cpu())
            labels.append(y.cpu())
    finally:
        model.train(was_training)
    if not probs:
        raise ValueError("predict_proba: the loader yielded no batches")
    return torch.cat(probs), torch.cat(labels)


def expected_calibration_error(probs: torch.Tensor, y_true: torch.Tensor, *,
                               num_bins: int = 15) -> float:
    """Expected calibration error (Guo et al., 2017): confidence vs accuracy in equal-width bins.

    Args:
        probs: predicted probabilities ``(N, C)``, rows summing to 1.
        y_true: true class indices ``(N,)``.
        num_bins: number of equal-width confidence bins on (0, 1].

    Returns:
        ``sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)|``; 0 is perfectly calibrated.
    """
    if not isinstance(num_bins, int) or isinstance(num_bins, bool) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive int, got {num_bins!r}")
    if not isinstance(probs, torch.Tensor) or probs.ndim != 2 or len(probs) == 0:
        raise ValueError("probs must be a non-empty (N, C) tensor of probabilities")
    _check_labels(y_true, probs.argmax(1), probs.shape[1])
    confidence, predicted = probs.double().max(1)
    correct = (predicted == y_true).double()
    bins = torch.clamp((confidence * num_bins).ceil().long() - 1, 0, num_bins - 1)
    count = torch.bincount(bins, minlength=num_bins).double()
    gap = (torch.bincount(bins, weights=correct, minlength=num_bins)
           - torch.bincount(bins, weights=confidence, minlength=num_bins)).abs()
    return float(gap.sum() / count.sum())
