"""Augmentations torchvision does not give you in this form: mixup and cutmix with an explicit
generator, per-sample application of a transform, a random anisotropic stretch, a wrapper that
augments every batch of a loader, and test-time augmentation (TTA) by averaging over views.

Everything here works on batches ``(N, C, H, W)`` on any device. The pairing and label
conventions are those of ``torchvision.transforms.v2.MixUp`` / ``CutMix`` (each image is mixed
with its predecessor in the batch, ``x.roll(1, 0)``), so the results agree with torchvision
for the same random draws. Taught in notebook 02.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Box = tuple[int, int, int, int]  # (x1, y1, x2, y2): columns x1:x2, rows y1:y2
Batch = tuple[torch.Tensor, torch.Tensor]
AUGMENTATIONS = ("hflip", "vflip", "translate", "crop_scale", "stretch", "shear", "rotate",
                 "erase", "color_jitter")
TTA_AVERAGES = ("probs", "logits")


def _check_batch(x: Any, y: Any, num_classes: Any) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x must be a float tensor of shape (N, C, H, W), got {got}")
    if not isinstance(y, torch.Tensor) or y.shape != (len(x),) or y.is_floating_point():
        raise TypeError(f"y must be an integer tensor of shape ({len(x)},) (class indices)")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]")


def _check_lam(lam: Any) -> float:
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be a number in [0, 1], got {lam!r}")
    return float(lam)


def _soft_targets(y: torch.Tensor, lam: float, num_classes: int) -> torch.Tensor:
    targets = F.one_hot(y, num_classes).float()
    return lam * targets + (1.0 - lam) * targets.roll(1, 0)


def mix_images(x: torch.Tensor, y: torch.Tensor, lam: float, *, num_classes: int) -> Batch:
    """Mixup with a given ``lam``: ``lam * x + (1 - lam) * x.roll(1, 0)``, targets likewise.

    Returns:
        The mixed images ``(N, C, H, W)`` and soft targets ``(N, num_classes)`` (rows sum to
        1), ready for ``nn.CrossEntropyLoss``.
    """
    _check_batch(x, y, num_classes)
    lam = _check_lam(lam)
    return lam * x + (1.0 - lam) * x.roll(1, 0), _soft_targets(y, lam, num_classes)


def paste_box(x: torch.Tensor, y: torch.Tensor, box: Box, *, num_classes: int) -> Batch:
    """Cutmix with a given box: paste ``x.roll(1, 0)[..., y1:y2, x1:x2]`` into each image.

    The targets weigh the two labels by the pixel areas they keep.
    """
    _check_batch(x, y, num_classes)
    height, width = x.shape[-2:]
    if (len(box) != 4 or not all(isinstance(v, int) for v in box)
            or not (0 <= box[0] <= box[2] <= width and 0 <= box[1] <= box[3] <= height)):
        raise ValueError(f"box must be ints (x1, y1, x2, y2) with 0 <= x1 <= x2 <= {width} "
                         f"and 0 <= y1 <= y2 <= {height}, got {box!r}")
    x1, y1, x2, y2 = box
    mixed = x.clone()
    mixed[..., y1:y2, x1:x2] = x.roll(1, 0)[..., y1:y2, x1:x2]
    lam = 1.0 - (x2 - x1) * (y2 - y1) / (width * height)
    return mixed, _soft_targets(y, lam, num_classes)


def _check_random(alpha: Any, generator: Any) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"alpha must be a positive number, got {alpha!r}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")


def sample_lam(alpha: float, generator: torch.Generator) -> float:
    """Draw ``lam ~ Beta(alpha, alpha)`` reproducibly from ``generator``.

    torch has no Beta sampler that takes a generator, so a seed drawn from ``generator``
    feeds NumPy's.
    """
    _check_random(alpha, generator)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def sample_box(lam: float, height: int, width: int, generator: torch.Generator) -> Box:
    """A box covering about ``1 - lam`` of the image, centred at a uniformly random pixel.

    torchvision's CutMix convention: half-sides ``int(0.5 * sqrt(1 - lam) * side)``, clipped at
    the border (so the kept fraction is recomputed from the box by :func:`paste_box`).
    """
    lam = _check_lam(lam)
    centre_x = int(torch.randint(width, (1,), generator=generator, device=generator.device))
    centre_y = int(torch.randint(height, (1,), generator=generator, device=generator.device))
    half = 0.5 * math.sqrt(1.0 - lam)
    half_w, half_h = int(half * width), int(half * height)
    return (max(centre_x - half_w, 0), max(centre_y - half_h, 0),
            min(centre_x + half_w, width), min(centre_y + half_h, height))


def mixup(x: torch.Tensor, y: torch.Tensor, *, num_classes: int, alpha: float = 1.0,
          generator: torch.Generator) -> Batch:
    """Mixup (Zhang et al., 2018): blend each image with its predecessor, one ``lam`` per batch.

    Args:
        x: images ``(N, C, H, W)``; y: class indices ``(N,)``.
        alpha: ``lam ~ Beta(alpha, alpha)``; 1.0 is uniform, small values mix little.
        generator: the only source of randomness (a CPU generator works for any device).

    Returns:
        Mixed images and soft targets ``(N, num_classes)``.
    """
    _check_batch(x, y, num_classes)
    return mix_images(x, y, sample_lam(alpha, generator), num_classes=num_classes)


def cutmix(x: torch.Tensor, y: torch.Tensor, *, num_classes: int, alpha: float = 1.0,
           generator: torch.Generator) -> Batch:
    """CutMix (Yun et al., 2019): paste a random box from each image's predecessor into it."""
    _check_batch(x, y, num_classes)
    lam = sample_lam(alpha, generator)
    box = sample_box(lam, x.shape[-2], x.shape[-1], generator)
    return paste_box(x, y, box, num_classes=num_classes)


def per_sample(transform: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply ``transform`` to each image of ``x`` ``(N, C, H, W)`` separately.

    A torchvision v2 transform called on the whole batch draws one set of random parameters
    for all N images; one call per image gives each its own. Fine for thousands of small
    images; for more, put the transform in the Dataset and let a DataLoader call it.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise TypeError("x must be a tensor of shape (N, C, H, W)")
    if not callable(transform):
        raise TypeError(f"transform must be callable, got {type(transform).__name__}")
    return torch.stack([transform(image) for image in x])


class RandomStretch(nn.Module):
    """Stretch one axis and squeeze the other by a random factor in ``[1/(1+m), 1+m]``.

    The anisotropic scaling torchvision's ``RandomAffine`` lacks (its ``scale`` is the same on
    both axes). Works on ``(C, H, W)`` or ``(N, C, H, W)``; one draw per call, like v2
    transforms; the image keeps its size (bilinear, zeros outside).
    """

    def __init__(self, max_stretch: float) -> None:
        super().__init__()
        if isinstance(max_stretch, bool) or not isinstance(max_stretch, (int, float)) or max_stretch < 0:
            raise ValueError(f"max_stretch must be a number >= 0, got {max_stretch!r}")
        self.max_stretch = float(max_stretch)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim not in (3, 4) or not image.is_floating_point():
            raise TypeError("RandomStretch needs a float tensor (C, H, W) or (N, C, H, W)")
        if self.max_stretch == 0:
            return image
        limit = math.log1p(self.max_stretch)
        factor = math.exp((2 * float(torch.rand(())) - 1) * limit)
        batch = image.unsqueeze(0) if image.ndim == 3 else image
        # affine_grid maps output to input coordinates: dividing by the factor stretches.
        theta = torch.tensor([[1 / factor, 0.0, 0.0], [0.0, factor, 0.0]], dtype=batch.dtype,
                             device=batch.device).expand(len(batch), 2, 3)
        grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
        out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out[0] if image.ndim == 3 else out


def make_augmentation(name: str, strength: float, *,
                      size: int | tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """One of :data:`AUGMENTATIONS` at ``strength`` in [0, 1] (0 changes nothing).

    The one-knob version of the torchvision v2 transforms notebook 02 shows one by one; it
    drives the augmentation explorer. ``size`` is the image's ``(H, W)`` (or one int for
    square images), needed by the crop. torchvision is imported here, not at module import.
    """
    from torchvision.transforms import v2

    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {AUGMENTATIONS}")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
        raise ValueError(f"strength must be a number in [0, 1], got {strength!r}")
    s = float(strength)
    height, width = (size, size) if isinstance(size, int) else size
    aspect = width / height  # a crop of the image's own shape at strength 0: no change
    factories: dict[str, Callable[[], Callable]] = {
        "hflip": lambda: v2.RandomHorizontalFlip(p=s),
        "vflip": lambda: v2.RandomVerticalFlip(p=s),
        "translate": lambda: v2.RandomAffine(degrees=0, translate=(0.25 * s, 0.25 * s)),
        "crop_scale": lambda: v2.RandomResizedCrop(size, scale=(1 - 0.75 * s, 1.0),
                                                   ratio=(aspect * (1 - 0.25 * s),
                                                          aspect / (1 - 0.25 * s))),
        "stretch": lambda: RandomStretch(0.5 * s),
        "shear": lambda: v2.RandomAffine(degrees=0, shear=(-30 * s, 30 * s)),
        "rotate": lambda: v2.RandomRotation(degrees=90 * s),
        "erase": lambda: v2.RandomErasing(p=1.0 if s > 0 else 0.0, scale=(0.02, 0.02 + 0.3 * s),
                                          value=0),
        "color_jitter": lambda: v2.ColorJitter(brightness=0.8 * s, contrast=0.8 * s,
                                               saturation=0.8 * s, hue=0.4 * s),
    }
    return factories[name]()


class AugmentedLoader:
    """Wrap a loader so that every batch ``(x, y)`` becomes ``fn(x, y)``; it is re-iterable,
    so ``train`` can run many epochs over it. ``len`` is the wrapped loader's.
    """

    def __init__(self, loader: Iterable[Batch], fn: Callable[[torch.Tensor, torch.Tensor], Batch]) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.loader, self.fn = loader, fn

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Batch]:
        for x, y in self.loader:
            yield self.fn(x, y)


Views = Callable[[torch.Tensor], Sequence[torch.Tensor]]


@torch.no_grad()
def tta_logits(model: nn.Module, x: torch.Tensor, views: Views, *,
               average: str = "probs") -> torch.Tensor:
    """Average the model's predictions over deterministic views of the batch ``x``.

    Args:
        views: ``x -> [view_1, view_2, ...]``, each ``(N, C, H, W)``; e.g. a centre view and
            its mirror, or ``v2.TenCrop`` of a padded batch. ``lambda x: [x]`` is no TTA.
        average: ``"probs"`` averages softmax probabilities (and returns their log, so
            ``argmax`` and ``cross_entropy`` work); ``"logits"`` averages logits.

    Returns:
        ``(N, num_classes)`` scores. The model's train/eval mode is restored afterwards.
    """
    if average not in TTA_AVERAGES:
        raise ValueError(f"average={average!r}; choose one of {TTA_AVERAGES}")
    batches = list(views(x))
    if len(batches) == 0 or any(v.shape[0] != x.shape[0] for v in batches):
        raise ValueError("views(x) must return at least one batch, each with len(x) images")
    was_training = model.training
    model.eval()
    try:
        outputs = torch.stack([model(view) for view in batches])
    finally:
        model.train(was_training)
    if average == "logits":
        return outputs.mean(0)
    return outputs.softmax(-1).mean(0).log()

