"""Random shifts, mirrors and multi-scale resizing of a whole batch, on the batch's own device.

A torchvision v2 transform called on a batch draws one set of parameters for all its images,
and calling it once per image (``augment.per_sample``) costs a few small operations per image:
fine for a CPU and a few thousand images, launch-bound on a GPU. These functions give every
image its own random draw in a handful of batched tensor operations, with randomness from an
explicit ``torch.Generator`` (a CUDA generator keeps everything on the GPU, with no host sync).
Each random function is built on a deterministic one that notebook 02 checks against
torchvision. Taught in notebook 02.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F


def _check_images(x: Any) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x must be a float tensor of shape (N, C, H, W), got {got}")


def _check_generator(generator: Any) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")


def _check_shift(max_shift: Any, x: torch.Tensor) -> int:
    limit = min(x.shape[-2:])
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or not 0 <= max_shift < limit:
        raise ValueError(f"max_shift must be an int in [0, {limit - 1}], got {max_shift!r}")
    return max_shift


def shift_images(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, *,
                 max_shift: int) -> torch.Tensor:
    """Move image ``n`` right by ``dx[n]`` and down by ``dy[n]`` pixels, filling with zeros.

    ``out[n, :, i, j] = x[n, :, i - dy[n], j - dx[n]]`` (0 outside the image): the same as
    ``v2.RandomCrop(size, padding=max_shift)`` cropping at ``top = max_shift - dy[n]``,
    ``left = max_shift - dx[n]``. ``dx``, ``dy``: int tensors ``(N,)`` on ``x``'s device with
    values in ``[-max_shift, max_shift]`` (not checked on the device: that would be a host sync).
    """
    _check_images(x)
    max_shift = _check_shift(max_shift, x)
    if dx.shape != (len(x),) or dy.shape != (len(x),):
        raise ValueError(f"dx and dy must have shape ({len(x)},), got {tuple(dx.shape)} and "
                         f"{tuple(dy.shape)}")
    height, width = x.shape[-2:]
    padded = F.pad(x, (max_shift,) * 4).permute(0, 2, 3, 1)  # (N, H + 2m, W + 2m, C)
    rows = (max_shift - dy).view(-1, 1, 1) + torch.arange(height, device=x.device).view(1, -1, 1)
    cols = (max_shift - dx).view(-1, 1, 1) + torch.arange(width, device=x.device).view(1, 1, -1)
    index = torch.arange(len(x), device=x.device).view(-1, 1, 1)
    return padded[index, rows, cols].permute(0, 3, 1, 2).contiguous()


def _draw(shape: tuple[int, ...], generator: torch.Generator, device: torch.device, *,
          high: int | None = None) -> torch.Tensor:
    """Random numbers drawn on the generator's device, then moved (asynchronously) to ``device``."""
    if high is None:
        values = torch.rand(shape, generator=generator, device=generator.device)
    else:
        values = torch.randint(0, high, shape, generator=generator, device=generator.device)
    return values.to(device, non_blocking=True)


def random_shift(x: torch.Tensor, max_shift: int, *, generator: torch.Generator) -> torch.Tensor:
    """Shift every image by its own random ``(dx, dy)``, each uniform in ``[-max_shift, max_shift]``.

    Equivalent in distribution to ``per_sample(v2.RandomCrop(size, padding=max_shift), x)``.
    """
    _check_images(x)
    _check_generator(generator)
    max_shift = _check_shift(max_shift, x)
    shifts = _draw((2, len(x)), generator, x.device, high=2 * max_shift + 1) - max_shift
    return shift_images(x, shifts[0], shifts[1], max_shift=max_shift)


def random_hflip(x: torch.Tensor, *, p: float = 0.5, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``, independently per image."""
    _check_images(x)
    _check_generator(generator)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"p must be a number in [0, 1], got {p!r}")
    flip = _draw((len(x),), generator, x.device) < p
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def random_erase(x: torch.Tensor, *, p: float = 0.5, scale: tuple[float, float] = (0.02, 0.2),
                 generator: torch.Generator) -> torch.Tensor:
    """Random erasing (cutout): with probability ``p`` set a random box of each image to 0.

    Each box covers a fraction of the image drawn uniformly from ``scale``, with an aspect
    ratio drawn log-uniformly from [0.3, 3.3] (``v2.RandomErasing``'s defaults), at a uniformly
    random position; each image gets its own draw.
    """
    _check_images(x)
    _check_generator(generator)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"p must be a number in [0, 1], got {p!r}")
    if not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, got {scale!r}")
    n, height, width = len(x), x.shape[-2], x.shape[-1]
    u = _draw((5, n), generator, x.device)
    area = (scale[0] + (scale[1] - scale[0]) * u[0]) * height * width
    ratio = torch.exp(math.log(0.3) + (math.log(3.3) - math.log(0.3)) * u[1])
    box_h = torch.sqrt(area * ratio).round().clamp(1, height)
    box_w = torch.sqrt(area / ratio).round().clamp(1, width)
    top = ((height - box_h + 1) * u[2]).floor()
    left = ((width - box_w + 1) * u[3]).floor()
    rows = torch.arange(height, device=x.device).view(1, -1)
    cols = torch.arange(width, device=x.device).view(1, -1)
    inside_rows = (rows >= top.view(-1, 1)) & (rows < (top + box_h).view(-1, 1))  # (N, H)
    inside_cols = (cols >= left.view(-1, 1)) & (cols < (left + box_w).view(-1, 1))  # (N, W)
    erase = inside_rows[:, :, None] & inside_cols[:, None, :] & (u[4] < p).view(-1, 1, 1)
    return x.masked_fill(erase[:, None], 0.0)


def resize_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize every image of ``x`` to ``size`` x ``size`` pixels (bilinear, antialiased)."""
    _check_images(x)
    if isinstance(size, bool) or not isinstance(size, int) or size < 4:
        raise ValueError(f"size must be an int >= 4, got {size!r}")
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def random_rescale(x: torch.Tensor, sizes: Sequence[int], *, generator: torch.Generator) -> torch.Tensor:
    """Multi-scale training: resize the whole batch to one size drawn uniformly from ``sizes``.

    One size per batch (all images of a batch must share a shape), as in YOLO's multi-scale
    training; the model must accept any input size (e.g. ``small_cnn``'s adaptive pooling).
    ``generator`` must be a CPU generator: the size is a Python int, and drawing it on a GPU
    would make the host wait for the device every step.
    """
    _check_images(x)
    _check_generator(generator)
    if generator.device.type != "cpu":
        raise ValueError("random_rescale needs a CPU generator (the size is needed on the host)")
    if len(sizes) == 0 or any(isinstance(s, bool) or not isinstance(s, int) or s < 4 for s in sizes):
        raise ValueError(f"sizes must be a non-empty sequence of ints >= 4, got {sizes!r}")
    index = int(torch.randint(len(sizes), (), generator=generator))
    return resize_batch(x, sizes[index])
