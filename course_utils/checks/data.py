"""Checks for the data notebooks: mean/std (01), mixup (02), gradient accumulation (03)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import TensorDataset

from course_utils.augment import mix_images
from course_utils.checks._base import CheckResult, _call
from course_utils.train import train_step


def check_mean_std(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(dataset, batch_size) -> (mean, std)``, each of shape ``(C,)``. Notebook 01.

    ``fn`` must compute the per-channel mean and (unbiased) std of all pixels of a dataset of
    ``(image (C, H, W), label)`` pairs while reading it ``batch_size`` images at a time. The
    cases have 1 and 3 channels, a short last batch and pixels far from zero; the first
    mismatch is explained (per-batch averages, a missing square root, float32 cancellation).

    Raises:
        TypeError: ``fn`` is not callable.
    """
    if not callable(fn):
        raise TypeError(f"check_mean_std needs a function fn(dataset, batch_size), got "
                        f"{type(fn).__name__}")

    for description, images, batch_size, std_rtol in _mean_std_cases():
        dataset = TensorDataset(images.clone(), torch.zeros(len(images), dtype=torch.int64))
        with torch.random.fork_rng(devices=[]):  # a DataLoader draws from the global RNG
            got, failure = _call(fn, dataset, batch_size)
        if failure is not None:  # a CheckResult that failed is falsy
            return failure
        if got is None:
            return CheckResult(False, f"{fn.__name__} returned None: did you forget `return`?")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return CheckResult(False, f"{fn.__name__} returned {type(got).__name__}; return a "
                                      "pair (mean, std)")
        channels = images.shape[1]
        where = f"on {description}"
        mean, problem = _as_vector(got[0], channels, "mean")
        std, problem_std = _as_vector(got[1], channels, "std") if mean is not None else (None, "")
        if mean is None or std is None:
            return CheckResult(False, f"{where}: {problem or problem_std}")
        expected_mean = images.double().mean(dim=(0, 2, 3))
        expected_std = images.double().std(dim=(0, 2, 3))
        if not torch.allclose(mean, expected_mean, rtol=1e-5, atol=1e-6):
            batch_means = torch.stack([b.double().mean(dim=(0, 2, 3))
                                       for b in images.split(batch_size)]).mean(dim=0)
            hint = ("you averaged the per-batch means, but the last batch is smaller: sum all "
                    "pixels and divide once by their number" if torch.allclose(
                        mean, batch_means, rtol=1e-6) else "sum every pixel of each channel "
                    "over all batches, then divide by the number of pixels")
            return CheckResult(False, f"{where}: mean {_fmt(mean)}, expected {_fmt(expected_mean)}; "
                                      f"{hint}")
        if not torch.allclose(std, expected_std, rtol=std_rtol, atol=1e-7):
            return CheckResult(False, f"{where}: std {_fmt(std)}, expected {_fmt(expected_std)}; "
                                      f"{_std_mistake(std, images, batch_size)}")
    return CheckResult(True, f"{fn.__name__} agrees with the reference on 4 datasets (1 and 3 "
                             "channels, a short last batch, pixels far from zero).")


def _fmt(values: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values.tolist()) + "]"


def _mean_std_cases() -> list[tuple[str, torch.Tensor, int, float]]:
    """(description, images (N, C, H, W) float32, batch size, rtol of the std) for
    :func:`check_mean_std`. Pixels near 1000 keep only ~7 bits within one std in float32, so
    even a careful float32 method (Welford's) is off by ~1e-4 there."""
    generator = torch.Generator().manual_seed(0)
    channel_mean = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)
    channel_std = torch.tensor([0.05, 0.1, 0.2]).view(1, 3, 1, 1)
    return [
        ("50 grey 4x4 images, batches of 16", torch.rand(50, 1, 4, 4, generator=generator), 16, 1e-4),
        ("45 colour 5x5 images with different channel statistics, batches of 8",
         channel_mean + channel_std * torch.randn(45, 3, 5, 5, generator=generator), 8, 1e-4),
        ("7 grey 3x3 images, batches of 1", torch.rand(7, 1, 3, 3, generator=generator), 1, 1e-4),
        ("40 grey 4x4 images with pixels near 1000 (std 0.01), batches of 16",
         1000 + 0.01 * torch.randn(40, 1, 4, 4, generator=generator), 16, 1e-3),
    ]


def _as_vector(value: object, channels: int, what: str) -> tuple[torch.Tensor | None, str]:
    try:
        vector = torch.as_tensor(value).detach().cpu().double()
    except (TypeError, ValueError, RuntimeError):
        return None, f"the {what} is a {type(value).__name__}; return a tensor of shape ({channels},)"
    if vector.numel() == 1 and channels > 1:
        return None, (f"the {what} is one number for {channels} channels: reduce over the "
                      "images, height and width (dims 0, 2, 3) and keep one value per channel")
    if vector.numel() != channels:
        return None, f"the {what} has shape {tuple(vector.shape)}; expected ({channels},), one per channel"
    return vector.reshape(channels), ""


def _std_mistake(got: torch.Tensor, images: torch.Tensor, batch_size: int) -> str:
    pixels = images.double().transpose(0, 1).reshape(images.shape[1], -1)
    count, std = pixels.shape[1], pixels.std(dim=1)
    batch_stds = torch.stack([b.double().std(dim=(0, 2, 3)) for b in images.split(batch_size)
                              if b.numel() // b.shape[1] > 1])
    if torch.allclose(got, std**2, rtol=1e-4):
        return "it equals the variance: take the square root"
    if torch.allclose(got, std * ((count - 1) / count) ** 0.5, rtol=1e-5):
        return ("it is the biased std (dividing by N); the reference, like torch.std, divides "
                "by N - 1 (Bessel's correction)")
    if torch.allclose(got, batch_stds.mean(dim=0), rtol=1e-4):
        return ("it is the average of per-batch stds, which is not the std of the whole set: "
                "accumulate the sum and the sum of squares over all batches")
    if not torch.isfinite(got).all() or images.mean() > 100:
        return ("with pixels far from 0, sum(x**2)/N - mean**2 cancels catastrophically in "
                "float32: accumulate in float64 (x.double()) or use Welford's update")
    return "accumulate the sum and the sum of squares of every pixel, then var = (S2 - N*mean**2) / (N - 1)"


def check_mixup(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(x, y, lam, num_classes) -> (mixed_x, soft_targets)`` against the course's
    mixup (torchvision's convention: mix each example with ``x.roll(1, 0)``). Notebook 02.
    """

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 5, 5, generator=generator)
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    lam, num_classes = 0.7, 4
    got, failure = _call(fn, x.clone(), y.clone(), lam, num_classes)
    if failure is not None:  # a CheckResult that failed is falsy
        return failure
    if not isinstance(got, tuple) or len(got) != 2:
        return CheckResult(False, "return a pair (mixed_x, soft_targets)")
    mixed, targets = got
    want_x, want_t = mix_images(x, y, lam, num_classes=num_classes)
    swapped_x, _ = mix_images(x, y, 1 - lam, num_classes=num_classes)
    if not isinstance(mixed, torch.Tensor) or mixed.shape != x.shape:
        return CheckResult(False, f"mixed_x must have the shape of x {tuple(x.shape)}")
    if not torch.allclose(mixed, want_x, atol=1e-6):
        if torch.allclose(mixed, swapped_x, atol=1e-6):
            return CheckResult(False, "images: lam and 1 - lam are swapped; the original image "
                                      "gets weight lam")
        if torch.allclose(mixed, lam * x + (1 - lam) * x.roll(-1, 0), atol=1e-6):
            return CheckResult(False, "images: pair each example with its predecessor, "
                                      "x.roll(1, 0), not x.roll(-1, 0)")
        return CheckResult(False, "mixed images differ: expected lam * x + (1 - lam) * x.roll(1, 0)")
    if not isinstance(targets, torch.Tensor) or targets.shape != (len(y), num_classes):
        shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        return CheckResult(False, f"targets must be soft labels of shape ({len(y)}, {num_classes}) "
                                  f"(one-hot, then mixed), got {shape}")
    if not torch.allclose(targets.float().sum(1), torch.ones(len(y)), atol=1e-6):
        return CheckResult(False, "each row of the targets must sum to 1: lam + (1 - lam)")
    if not torch.allclose(targets.float(), want_t, atol=1e-6):
        return CheckResult(False, "targets differ: mix F.one_hot(y) exactly as the images "
                                  "(same lam, same roll)")
    return CheckResult(True, f"{fn.__name__} matches the reference mixup (images and targets).")


def check_accumulated_step(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(model, x, y, optimizer, loss_fn, micro_batch)`` against one large-batch step.

    Gradient accumulation over micro-batches must give the same weights as ``train_step`` on
    the whole batch (a model without BatchNorm, plain SGD, so a wrongly scaled gradient shows
    up as a wrongly sized update). Tries equal micro-batches, then a smaller last one, twice
    in a row each. Notebook 03.
    """
    generator = torch.Generator().manual_seed(0)
    loss_fn = nn.CrossEntropyLoss()
    cases = ((24, 8), (20, 8))  # (batch, micro_batch): 3 equal micro-batches; then 8, 8, 4
    for batch, micro in cases:
        x, y = torch.randn(batch, 6, generator=generator), torch.randint(0, 3, (batch,),
                                                                          generator=generator)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            reference = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
        student, initial = copy.deepcopy(reference), copy.deepcopy(reference)
        opt_ref = torch.optim.SGD(reference.parameters(), lr=0.5)
        opt_student = torch.optim.SGD(student.parameters(), lr=0.5)
        for step in (1, 2):
            before = [p.detach().clone() for p in reference.parameters()]
            expected = train_step(reference, x, y, optimizer=opt_ref, loss_fn=loss_fn)
            got, failure = _call(fn, student, x, y, opt_student, loss_fn, micro)
            if failure is not None:  # a CheckResult that failed is falsy
                return failure
            if all(torch.equal(a, b) for a, b in zip(student.parameters(), initial.parameters(),
                                                     strict=True)):
                return CheckResult(False, "the parameters did not change: call backward() on "
                                          "each micro-batch loss and optimizer.step() once")
            mismatch = _accumulation_mismatch(student, reference, before, batch, micro, step)
            if mismatch is not None:
                return CheckResult(False, mismatch)
            if not isinstance(got, torch.Tensor) or not torch.allclose(got.detach(), expected,
                                                                       atol=1e-6):
                return CheckResult(False, f"step {step} returned {got!r}; return the mean loss "
                                          f"over the whole batch (expected {expected.item():.4f})")
    return CheckResult(True, f"{fn.__name__} reproduces large-batch steps, also with a smaller "
                             "last micro-batch.")


def _accumulation_mismatch(student: nn.Module, reference: nn.Module, before: list[torch.Tensor],
                           batch: int, micro: int, step: int) -> str | None:
    """Why the student's weights differ from the reference after ``step`` (None if they agree)."""
    pairs = list(zip(student.named_parameters(), reference.parameters(), before, strict=True))
    if all(torch.allclose(p, q, atol=1e-6) for (_, p), q, _ in pairs):
        return None
    name = next(n for (n, p), q, _ in pairs if not torch.allclose(p, q, atol=1e-6))
    steps = -(-batch // micro)
    # Compare the student's update with the reference update (from the same weights on step 1).
    ratios = [((p - b).norm() / (q - b).norm()).item() for (_, p), q, b in pairs
              if (q - b).norm() > 0]
    ratio = sum(ratios) / len(ratios) if ratios else float("nan")
    where = f"after step {step} ({batch} examples in micro-batches of {micro}), {name!r} differs"
    if step == 2:
        return (f"{where}: gradients from step 1 leaked into step 2; call "
                "optimizer.zero_grad() once at the start of each accumulated step")
    if abs(ratio - steps) < 0.05 * steps:
        return (f"{where}: the update is {steps}x too large; divide each micro-batch's mean "
                f"loss by the number of micro-batches ({steps}) before backward()")
    if batch % micro:
        return (f"{where}: with a smaller last micro-batch, weight each micro-batch's mean loss "
                "by len(micro-batch) / len(batch) instead of 1 / number of micro-batches")
    return (f"{where}: run forward and backward on every micro-batch, adding up the gradients, "
            "then call optimizer.step() once at the end")
