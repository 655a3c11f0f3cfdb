"""Datasets held in memory, their statistics, splits, and the course's fast in-memory loader.

Taught in notebooks 00 (get_dataset, splits), 01 (mean/std) and 03 (loaders).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from course_utils.datasets import SPECS, load_digits, load_raw
from course_utils.sizing import SizePolicy


class ImageDataset(Dataset):
    """Images stored once as ``uint8 (N, C, H, W)`` with ``int64 (N,)`` labels.

    Indexing gives ``(image, label)`` with the image as float in [0, 1], passed through
    ``transform`` if one is set (torchvision v2 transforms work on these tensors).
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, classes: Sequence[str], *,
                 name: str, source: str, transform: Callable | None = None) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} "
                             f"with shape {tuple(images.shape)}")
        if targets.shape != (len(images),):
            raise ValueError(f"targets must have shape ({len(images)},), got {tuple(targets.shape)}")
        self.images, self.targets = images, targets.long()
        self.classes, self.name, self.source = tuple(classes), name, source
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].float().div_(255)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:]
        return (f"ImageDataset({self.name!r}: {len(self):,} images of {c}x{h}x{w}, "
                f"{len(self.classes)} classes, from {self.source})")

    @property
    def is_fallback(self) -> bool:
        """True when this is the fallback digits standing in for the requested dataset."""
        return is_fallback(self.source)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images as float32 in [0, 1] ``(N, C, H, W)`` and the labels ``(N,)``."""
        return self.images.float().div_(255), self.targets

    def select(self, indices: torch.Tensor) -> ImageDataset:
        """A new dataset holding the rows ``indices`` (the same transform)."""
        return ImageDataset(self.images[indices], self.targets[indices], self.classes,
                            name=self.name, source=self.source, transform=self.transform)


FALLBACK_SOURCE = "fallback: scikit-learn digits"  # the source of a dataset that fell back


def is_fallback(source: str) -> bool:
    """True for the source of data that fell back to the digits (an :class:`ImageDataset`'s
    ``source``, or the ``data`` field of a record written from one)."""
    return source.startswith("fallback")


def _fallback_notice(name: str, reason: str) -> str:
    return (f"NOTICE: {name} is not available here, so this run uses scikit-learn's bundled "
            f"8x8 digits instead (upsampled, 1,437 training / 360 test images). Every number "
            f"below will differ from the stored outputs.\n{reason}\nTo get the real data: run "
            "`make data` (Debian's dataset-fashion-mnist package or a download), set "
            "COURSE_DATA_DIR to a folder in torchvision's layout, or connect to the internet "
            "so torchvision can download it.")


def get_dataset(name: str, train: bool = True, *, transform: Callable | None = None,
                download: bool = True, fallback: bool = True) -> ImageDataset:
    """Load ``"fashion_mnist"``, ``"mnist"``, ``"cifar10"`` or ``"digits"`` into memory.

    Looks in ``COURSE_DATA_DIR``, the course cache and the system copy, then downloads with
    torchvision; if all fail and ``fallback`` is true, substitutes scikit-learn's digits
    (resized to the requested dataset's image shape) and prints a notice saying so.

    Raises:
        ValueError: unknown ``name``; TypeError: ``train`` is not True or False.
        FileNotFoundError: the data is unavailable and ``fallback`` is false.
    """
    if name not in SPECS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {tuple(SPECS)}")
    if not isinstance(train, bool):
        raise TypeError(f"train must be True (the training split) or False (the test split), "
                        f"got {train!r}")
    spec = SPECS[name]
    try:
        images, labels, source = load_raw(name, train, download=download)
        classes = spec.classes
    except FileNotFoundError as err:
        if not fallback:
            raise
        print(_fallback_notice(name, str(err)))
        channels, size = spec.shape[0], spec.shape[1]
        images, labels = load_digits(train, size=size)
        images = images.expand(-1, channels, -1, -1).contiguous()
        classes, source = SPECS["digits"].classes, FALLBACK_SOURCE
    return ImageDataset(images, labels, classes, name=name, source=source, transform=transform)


def mean_std_one_batch(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std from one DataLoader batch holding the whole set.

    The tips article's way (``batch_size=len(dataset)``): simple, but holds every image as
    float32 at once (188 MB for Fashion-MNIST). Taught in notebook 01.
    """
    images, _ = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    return images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3))


def mean_std_streaming(dataset: Dataset, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (unbiased) std in one pass with memory for one batch.

    Sums and sums of squares are accumulated in float64, so the result matches
    :func:`mean_std_one_batch` to float32 precision. Taught in notebook 01.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    total = total_sq = None
    count = 0
    for images, _ in DataLoader(dataset, batch_size=batch_size):
        pixels = images.double().transpose(0, 1).reshape(images.shape[1], -1)
        total = pixels.sum(1) if total is None else total + pixels.sum(1)
        total_sq = (pixels**2).sum(1) if total_sq is None else total_sq + (pixels**2).sum(1)
        count += pixels.shape[1]
    if count < 2:
        raise ValueError("mean_std_streaming needs at least 2 pixels per channel")
    mean = total / count
    var = (total_sq - count * mean**2) / (count - 1)
    return mean.float(), var.clamp_min(0).sqrt().float()


def _check_size(size: int, available: int, what: str) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size < available:
        raise ValueError(f"{what} must be an int between 1 and {available - 1}, got {size!r}")


def train_val_split(dataset: ImageDataset, val_size: int, *,
                    seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """Split off ``val_size`` random examples as a validation set; the same seed, the same split."""
    _check_size(val_size, len(dataset), "val_size")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return dataset.select(order[val_size:]), dataset.select(order[:val_size])


# The course's one validation split (notebook 00): 5,000 images held out with seed 0.
VAL_SIZE, SPLIT_SEED = 5_000, 0
# Per-channel mean and std of Fashion-MNIST's 55,000-image training split (the 60,000 training
# images minus the 5,000 validation images above), computed once with
# ``mean_std_streaming(course_split(...)[0])`` (tests/test_data.py recomputes them from the data).
# The published 0.2860 / 0.3530 include the validation images, which notebook 01 says not to do.
TRAIN_SPLIT_STATS = {"fashion_mnist": ((0.2859,), (0.3529,))}


def course_split(dataset: ImageDataset, *, train_size: int, sizes: SizePolicy,
                 val_size: int = VAL_SIZE, seed: int = SPLIT_SEED,
                 power: float = 1.0) -> tuple[ImageDataset, ImageDataset]:
    """The course's split: ``val_size`` held-out validation images (the same in every notebook)
    and a seeded training subset of ``train_size`` at scale 1, sized by ``sizes`` (grown as
    ``scale ** power``; ``power=0`` keeps a deliberately small subset the same everywhere).

    Both are clamped to the data available (the fallback data holds 1,437 training images):
    the validation set to a quarter of it, the training subset to the rest, with a notice.
    """
    val_size = sizes.count(val_size, name="VAL_SIZE", scaled=False, available=max(1, len(dataset) // 4))
    rest, val_set = train_val_split(dataset, val_size, seed=seed)
    train_size = sizes.count(train_size, name="TRAIN_SIZE", available=len(rest), power=power)
    return subset(rest, train_size, seed=seed), val_set


def normalization(dataset: ImageDataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ``(mean, std)`` to normalize ``dataset`` with, for :func:`tensor_loader`.

    Fashion-MNIST gets the course's one constant, :data:`TRAIN_SPLIT_STATS` (computed on the
    training split only). Any other data (the fallback digits, MNIST, CIFAR-10) gets statistics
    computed on ``dataset`` itself, which must then be the training set.
    """
    if dataset.name in TRAIN_SPLIT_STATS and not dataset.is_fallback:
        return TRAIN_SPLIT_STATS[dataset.name]
    mean, std = mean_std_streaming(dataset)
    return tuple(mean.tolist()), tuple(std.tolist())


def subset(dataset: ImageDataset, size: int, *, seed: int = 0) -> ImageDataset:
    """A random subset of ``size`` examples, drawn with its own seeded generator."""
    _check_size(size, len(dataset) + 1, "size")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return dataset.select(order[:size])


class TensorLoader:
    """Batches from tensors held once in memory (on any device), shuffled by index.

    The course's default data path for small datasets: no per-sample Python calls, no
    collation, no worker processes. Iterating yields ``(x, y)`` like a DataLoader.
    Taught in notebook 03.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int,
                 shuffle: bool = False, drop_last: bool = False, seed: int | None = None) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.x, self.y, self.batch_size = x, y, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        if seed is None:  # follow the global seed, like DataLoader does
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        full, rest = divmod(len(self.x), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y, size = self.x, self.y, self.batch_size
        stop = len(self) * size
        if not self.shuffle:
            for start in range(0, stop, size):
                yield x[start:start + size], y[start:start + size]
            return
        order = torch.randperm(len(x), generator=self.generator).to(x.device)
        for start in range(0, stop, size):
            index = order[start:start + size]
            yield x[index], y[index]

    def state_dict(self) -> dict:
        """The shuffling state, so a resumed run sees the same batches."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def tensor_loader(dataset: ImageDataset, *, batch_size: int, shuffle: bool = False,
                  normalize: tuple[Sequence[float], Sequence[float]] | None = None,
                  device: torch.device | str | None = None, drop_last: bool = False,
                  seed: int | None = None) -> TensorLoader:
    """Hold ``dataset`` once as float tensors (normalized once, on ``device``) and batch it.

    Args:
        normalize: per-channel ``(mean, std)``; None keeps pixels in [0, 1].
        seed: seed of the loader's own shuffling generator; None draws it from torch's global
            RNG, so :func:`course_utils.hardware.seed_everything` makes it reproducible.
    """
    x, y = dataset.tensors()
    if normalize is not None:
        mean, std = (torch.as_tensor(v, dtype=torch.float32).reshape(-1, 1, 1) for v in normalize)
        if mean.shape[0] not in (1, x.shape[1]) or std.shape[0] not in (1, x.shape[1]):
            raise ValueError(f"normalize needs 1 or {x.shape[1]} values per statistic, "
                             f"got {mean.shape[0]} and {std.shape[0]}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ValueError(f"normalize needs finite numbers, got mean {mean.flatten().tolist()} "
                             f"and std {std.flatten().tolist()} (a NaN would turn every image into NaN)")
        if (std <= 0).any():
            raise ValueError(f"normalize std must be positive, got {std.flatten().tolist()}")
        x = (x - mean) / std
    if device is not None:
        x, y = x.to(device), y.to(device)
    return TensorLoader(x, y, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                        seed=seed)


def dataloader(dataset: Dataset, *, batch_size: int, shuffle: bool = False,
               num_workers: int = 0, pin_memory: bool = False, seed: int | None = None,
               drop_last: bool = False) -> DataLoader:
    """A seeded ``torch.utils.data.DataLoader`` (for per-sample transforms); no workers by default.

    On a 2-core CPU worker processes make small in-memory data slower (notebook 03 measures it).
    """
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      pin_memory=pin_memory, drop_last=drop_last, generator=generator,
                      persistent_workers=num_workers > 0)
