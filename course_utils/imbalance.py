"""Class imbalance: build an imbalanced subset, inverse-frequency class weights, a weighted sampler.

Taught in notebook 06 (loss functions): re-weighting the loss (``CrossEntropyLoss(weight=...)``)
or re-sampling the data (the idea of ``torch.utils.data.WeightedRandomSampler``) on the course's
in-memory tensor loader.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

from course_utils.data import ImageDataset, TensorLoader


def make_imbalanced(dataset: ImageDataset, keep: Mapping[int, float], *, seed: int = 0) -> ImageDataset:
    """Keep only the fraction ``keep[c]`` of class ``c`` (other classes stay whole).

    Args:
        dataset: the dataset to thin out.
        keep: class index -> fraction in (0, 1] to keep, e.g. ``{6: 0.02}``.
        seed: seed of the generator that picks which examples stay.

    Returns:
        A new dataset; the kept rows appear in their original order.
    """
    num_classes = len(dataset.classes)
    for label, fraction in keep.items():
        if not isinstance(label, int) or not 0 <= label < num_classes:
            raise ValueError(f"class {label!r} is not in [0, {num_classes - 1}]")
        if not 0 < fraction <= 1:
            raise ValueError(f"keep[{label}] must be a fraction in (0, 1], got {fraction!r}")
    generator = torch.Generator().manual_seed(seed)
    mask = torch.ones(len(dataset), dtype=torch.bool)
    for label, fraction in keep.items():
        rows = (dataset.targets == label).nonzero().flatten()
        count = max(1, round(fraction * len(rows)))
        drop = rows[torch.randperm(len(rows), generator=generator)[count:]]
        mask[drop] = False
    return dataset.select(mask.nonzero().flatten())


def class_counts(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """How many examples each class has: int64 ``(num_classes,)``."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if targets.ndim != 1 or targets.dtype.is_floating_point:
        raise ValueError("targets must be a 1-d integer tensor of class indices")
    if len(targets) and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(f"targets must lie in [0, {num_classes - 1}]")
    return torch.bincount(targets.cpu().long(), minlength=num_classes)


def class_weights(counts: torch.Tensor, *, power: float = 1.0) -> torch.Tensor:
    """Inverse-frequency weights ``(N / (C * n_c)) ** power`` for ``CrossEntropyLoss(weight=...)``.

    With ``power=1`` every class contributes the same total weight to the loss (a balanced data
    set gets weights of 1); ``power=0.5`` is a milder square-root re-weighting.
    """
    if counts.ndim != 1 or (counts <= 0).any():
        raise ValueError("counts must be a 1-d tensor of positive per-class counts "
                         "(a class with no examples cannot be re-weighted)")
    if not power >= 0:
        raise ValueError(f"power must be >= 0, got {power!r}")
    counts = counts.double()
    return (counts.sum() / (len(counts) * counts)).pow(power).float()


class WeightedTensorLoader(TensorLoader):
    """A :class:`~course_utils.data.TensorLoader` that draws each epoch's examples with replacement,
    example ``i`` with probability proportional to ``weights[i]`` (like ``WeightedRandomSampler``).

    An epoch still has ``len(x)`` examples, so the budget matches a plain loader.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, *, batch_size: int,
                 seed: int | None = None) -> None:
        super().__init__(x, y, batch_size=batch_size, shuffle=True, seed=seed)
        if weights.shape != (len(x),):
            raise ValueError(f"weights must have shape ({len(x)},), got {tuple(weights.shape)}")
        if (weights < 0).any() or not weights.sum() > 0:
            raise ValueError("weights must be non-negative with a positive sum")
        self.weights = weights.double().cpu()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.multinomial(self.weights, len(self.x), replacement=True,
                                  generator=self.generator).to(self.x.device)
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            yield self.x[index], self.y[index]
