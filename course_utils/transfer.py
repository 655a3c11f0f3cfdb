"""Transfer learning helpers: the source/target CNN, a cache for pretrained weights, freezing a
backbone, swapping the head, and smaller learning rates for earlier layers.

Taught in notebook 09. Every helper that returns something new leaves its input alone;
:func:`freeze` is the one that changes the model it is given (that is its job).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from course_utils.data import ImageDataset
from course_utils.datasets import cache_dir

# torchvision's ResNet18_Weights.IMAGENET1K_V1 file (its URL ends in this name); the hub cache
# keeps downloads under <torch.hub.get_dir()>/checkpoints/<file name>.
RESNET18_FILE = "resnet18-f37072fd.pth"


def transfer_cnn(num_classes: int = 10, *, in_channels: int = 1, width: int = 32) -> nn.Sequential:
    """Three stride-2 conv blocks (``width``, ``2*width``, ``4*width`` channels, each
    conv -> BatchNorm -> ReLU), global average pooling and a linear head.

    ``(N, in_channels, H, W) -> (N, num_classes)``; 28x28 inputs become 14x14, 7x7, 4x4 maps.
    Children ``[:11]`` are the backbone (its output: ``4*width`` features per image), ``[11]``
    the head. About 95k parameters at ``width=32``; strided convolutions instead of pooling
    keep it cheap on a CPU. Notebook 09 pretrains it on Fashion-MNIST.

    Raises:
        ValueError: a size that is not a positive int.
    """
    for label, value in (("num_classes", num_classes), ("in_channels", in_channels), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{label} must be a positive int, got {value!r}")
    layers: list[nn.Module] = []
    for c_in, c_out, kernel in ((in_channels, width, 5), (width, 2 * width, 3), (2 * width, 4 * width, 3)):
        # no conv bias: BatchNorm's shift makes it redundant (notebook 08)
        layers += [nn.Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2, bias=False),
                   nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes))


def dataset_fingerprint(dataset: ImageDataset) -> str:
    """A short md5 of the images and labels: equal only for the same data in the same order."""
    digest = hashlib.md5(usedforsecurity=False)
    digest.update(dataset.images.contiguous().numpy().tobytes())
    digest.update(dataset.targets.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def pretrained_path(name: str, config: Mapping[str, object]) -> Path:
    """Where the course cache keeps weights pretrained with ``config``.

    The file name holds a hash of the whole ``config`` (put the data's
    :func:`dataset_fingerprint`, the sizes, the epochs and the device type in it), so weights
    from other data (the fallback digits), another scale or another device never stand in for
    these. Only builds the path; nothing is read or written.

    Raises:
        ValueError: ``name`` is not a plain word, or ``config`` is not JSON-serializable.
    """
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"name must be letters, digits, '-' or '_', got {name!r}")
    try:
        text = json.dumps(dict(config), sort_keys=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"config must hold JSON values (str, int, float, bool, lists): {err}") from err
    return cache_dir() / "pretrained" / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.pt"


def _check_classes(classes: Sequence[int]) -> list[int]:
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or not classes:
        raise TypeError(f"classes must be a non-empty sequence of ints, got {classes!r}")
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        raise TypeError(f"classes must hold ints, got {list(classes)!r}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must not repeat, got {list(classes)!r}")
    return list(classes)


def relabel(targets: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """Map each label to its position in ``classes`` (``classes=[5, 7]``: 5 -> 0, 7 -> 1).

    Returns a new ``int64`` tensor; ``targets`` is not changed.

    Raises:
        TypeError: ``classes`` is not a non-empty sequence of ints.
        ValueError: a label in ``targets`` is not one of ``classes``, or ``classes`` repeats.
    """
    classes = _check_classes(classes)
    if min(classes) < 0 or (targets < 0).any():
        raise ValueError("labels and classes must be non-negative")
    top = int(targets.max()) if targets.numel() else 0
    lookup = torch.full((max(max(classes), top) + 1,), -1, dtype=torch.int64)
    lookup[torch.tensor(classes)] = torch.arange(len(classes))
    new = lookup[targets.long()]
    if (new < 0).any():
        missing = sorted(set(targets[new < 0].tolist()))
        raise ValueError(f"labels {missing} are not in classes={classes}")
    return new


def split_classes(dataset: ImageDataset, classes: Sequence[int]) -> ImageDataset:
    """A new dataset with only the examples of ``classes``, relabelled ``0..len(classes)-1``.

    The class names follow the new labels. ``dataset`` is not changed.

    Raises:
        TypeError: ``classes`` is not a non-empty sequence of ints.
        ValueError: a class is not in ``range(len(dataset.classes))``, or classes repeat.
    """
    classes = _check_classes(classes)
    if not all(0 <= c < len(dataset.classes) for c in classes):
        raise ValueError(f"classes must be in range({len(dataset.classes)}), got {classes}")
    keep = torch.isin(dataset.targets, torch.tensor(classes))
    return ImageDataset(dataset.images[keep], relabel(dataset.targets[keep], classes),
                        [dataset.classes[c] for c in classes], name=dataset.name,
                        source=dataset.source, transform=dataset.transform)


def labels_per_class(dataset: ImageDataset, per_class: int, *, seed: int = 0) -> ImageDataset:
    """A class-balanced random subset: ``per_class`` examples of every class, shuffled.

    Drawn with its own seeded generator (the global RNG is untouched).

    Raises:
        ValueError: ``per_class`` is not a positive int, or a class has fewer examples.
    """
    if not isinstance(per_class, int) or isinstance(per_class, bool) or per_class < 1:
        raise ValueError(f"per_class must be a positive int, got {per_class!r}")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in range(len(dataset.classes)):
        rows = torch.nonzero(dataset.targets == label).flatten()
        if len(rows) < per_class:
            raise ValueError(f"class {label} ({dataset.classes[label]!r}) has {len(rows)} examples, "
                             f"fewer than per_class={per_class}")
        chosen.append(rows[torch.randperm(len(rows), generator=generator)[:per_class]])
    rows = torch.cat(chosen)
    return dataset.select(rows[torch.randperm(len(rows), generator=generator)])


def _check_sequential(model: object) -> nn.Sequential:
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential (its children are the layers), "
                        f"got {type(model).__name__}")
    return model


def freeze(model: nn.Sequential, until: int) -> nn.Sequential:
    """Freeze the children ``model[:until]`` (``requires_grad=False``) and unfreeze the rest.

    Changes ``model`` in place and returns it. Freezing stops gradients, not BatchNorm: in
    ``model.train()`` mode a frozen BatchNorm still updates its running statistics, so keep a
    frozen backbone in ``eval()`` mode (notebook 09 shows the difference).

    Raises:
        TypeError: ``model`` is not an ``nn.Sequential`` or ``until`` is not an int.
        ValueError: ``until`` is outside ``0..len(model)``.
    """
    _check_sequential(model)
    if not isinstance(until, int) or isinstance(until, bool):
        raise TypeError(f"until must be an int, got {until!r}")
    if not 0 <= until <= len(model):
        raise ValueError(f"until must be in 0..{len(model)} (the number of children), got {until}")
    for index, child in enumerate(model):
        for param in child.parameters():
            param.requires_grad_(index >= until)
    return model


def count_trainable(model: nn.Module) -> int:
    """The number of parameter elements with ``requires_grad=True``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def replace_head(model: nn.Sequential, num_classes: int) -> nn.Sequential:
    """A copy of ``model`` whose last child (an ``nn.Linear``) is a fresh ``num_classes`` layer.

    The new layer is initialized by PyTorch's default init (from the global RNG, so seed
    before calling). ``model`` is not changed; the copy's other layers are deep copies.

    Raises:
        TypeError: ``model`` is not an ``nn.Sequential`` ending in an ``nn.Linear``.
        ValueError: ``num_classes`` is not a positive int.
    """
    _check_sequential(model)
    if len(model) == 0 or not isinstance(model[-1], nn.Linear):
        raise TypeError("model's last child must be an nn.Linear (the head to replace)")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    old = model[-1]
    body = copy.deepcopy(model[:-1])
    head = nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                     device=old.weight.device, dtype=old.weight.dtype)
    return nn.Sequential(*body, head)


def param_groups_discriminative(model: nn.Sequential, lrs: Sequence[float], *,
                                boundaries: Sequence[int]) -> list[dict]:
    """Optimizer parameter groups: ``model[:b1]`` gets ``lrs[0]``, ``model[b1:b2]`` ``lrs[1]``, ...

    Discriminative fine-tuning (Howard & Ruder, 2018): earlier layers, which hold more generic
    features, move with smaller learning rates. Frozen parameters are left out. Pass the result
    to any ``torch.optim`` optimizer. ``model`` is not changed.

    Args:
        lrs: one learning rate per slice, first slice first.
        boundaries: the child indices where a new slice starts, strictly increasing, one fewer
            than ``lrs``; e.g. ``boundaries=(4, 8)`` splits ``model`` into ``[:4]``, ``[4:8]``, ``[8:]``.

    Raises:
        TypeError: ``model`` is not an ``nn.Sequential``.
        ValueError: wrong number of boundaries, boundaries not increasing inside
            ``1..len(model)-1``, a learning rate that is not positive, or a slice with no
            trainable parameters.
    """
    _check_sequential(model)
    lrs, boundaries = list(lrs), list(boundaries)
    if len(boundaries) != len(lrs) - 1:
        raise ValueError(f"need len(lrs) - 1 = {len(lrs) - 1} boundaries, got {len(boundaries)}")
    if not all(isinstance(lr, (int, float)) and lr > 0 for lr in lrs):
        raise ValueError(f"every learning rate must be a positive number, got {lrs}")
    edges = [0, *boundaries, len(model)]
    increasing = all(a < b for a, b in zip(edges, edges[1:], strict=False))
    if any(not isinstance(b, int) for b in boundaries) or not increasing:
        raise ValueError(f"boundaries must be ints strictly increasing inside 1..{len(model) - 1}, "
                         f"got {boundaries}")
    groups = []
    for lr, start, stop in zip(lrs, edges, edges[1:], strict=False):
        params = [p for p in model[start:stop].parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"model[{start}:{stop}] has no trainable parameters for lr={lr}")
        groups.append({"params": params, "lr": lr})
    return groups


def cached_hub_file(filename: str = RESNET18_FILE) -> Path | None:
    """The path of ``filename`` in torch's hub cache if it was downloaded before, else None.

    Only looks at the disk (``<torch.hub.get_dir()>/checkpoints``); never downloads.
    """
    if not isinstance(filename, str) or not filename or Path(filename).name != filename:
        raise ValueError(f"filename must be a plain file name, got {filename!r}")
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return path if path.is_file() else None
