"""Automatic feedback for the exercises: each ``check_*`` compares a student's function with
the course's reference and explains the first mismatch.

Checks never raise on a wrong answer: they return a :class:`CheckResult` whose text says what
is right or what to fix, so a notebook cell shows the feedback directly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from course_utils.train import train_step


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check: ``passed`` and a message for the student."""

    passed: bool
    message: str

    def __repr__(self) -> str:
        return ("PASSED: " if self.passed else "NOT YET: ") + self.message

    def __bool__(self) -> bool:
        return self.passed


def _call(fn: Callable, *args: object) -> tuple[object, CheckResult | None]:
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, CheckResult(False, f"{fn.__name__} is not implemented yet.")
    except Exception as err:  # the student's code may fail in any way; report it plainly
        return None, CheckResult(False, f"{fn.__name__} raised {type(err).__name__}: {err}")


def check_accuracy(fn: Callable[[torch.Tensor, torch.Tensor], object]) -> CheckResult:
    """Check ``fn(logits (N, C), y (N,)) -> fraction correct`` (a float in [0, 1]). Notebook 00."""
    generator = torch.Generator().manual_seed(0)
    cases = [(torch.randn(n, c, generator=generator), torch.randint(0, c, (n,), generator=generator))
             for n, c in ((8, 10), (37, 3), (1, 5))]
    perfect = torch.eye(4) * 5
    cases.append((perfect, torch.arange(4)))
    for k, (logits, y) in enumerate(cases):
        got, failure = _call(fn, logits.clone(), y.clone())
        if failure is not None:  # a CheckResult that failed is falsy
            return failure
        if got is None:
            return CheckResult(False, f"{fn.__name__} returned None: did you forget `return`?")
        if isinstance(got, torch.Tensor):
            if got.numel() != 1:
                return CheckResult(False, f"returned a tensor of shape {tuple(got.shape)}; "
                                          "average over the batch to get one number")
            got = got.item()
        expected = (logits.argmax(dim=1) == y).float().mean().item()
        if not isinstance(got, (int, float)) or abs(got - expected) > 1e-6:
            hint = (" (a percentage? return a fraction in [0, 1])" if isinstance(got, (int, float))
                    and got > 1 else " (compare logits.argmax(dim=1) with y, then average)")
            return CheckResult(False, f"case {k + 1} ({len(y)} examples, {logits.shape[1]} classes): "
                                      f"got {got!r}, expected {expected:.6f}{hint}")
    return CheckResult(True, f"{fn.__name__} agrees with the reference on {len(cases)} cases.")


def check_train_step(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(model, x, y, optimizer, loss_fn)`` against the course's ``train_step``.

    Runs two steps on identical copies of a tiny model and reports the first parameter that
    differs, with the usual cause (missing ``zero_grad``, ``step`` or ``backward``). Notebook 00.
    """
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 6, generator=generator), torch.randint(0, 3, (16,), generator=generator)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        reference = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    student = copy.deepcopy(reference)
    initial = copy.deepcopy(reference)
    opt_ref = torch.optim.SGD(reference.parameters(), lr=0.1)
    opt_student = torch.optim.SGD(student.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    for step in (1, 2):
        expected = train_step(reference, x, y, optimizer=opt_ref, loss_fn=loss_fn)
        got, failure = _call(fn, student, x, y, opt_student, loss_fn)
        if failure is not None:  # a CheckResult that failed is falsy
            return failure
        unchanged = all(torch.equal(a, b) for a, b in zip(student.parameters(),
                                                          initial.parameters(), strict=True))
        if unchanged:
            return CheckResult(False, "the parameters did not change: call loss.backward() "
                                      "and optimizer.step()")
        for (name, p_got), p_want in zip(student.named_parameters(), reference.parameters(),
                                         strict=True):
            if not torch.allclose(p_got, p_want, atol=1e-6):
                cause = ("gradients from step 1 leaked into step 2: call optimizer.zero_grad() "
                         "before backward()" if step == 2 else "the update differs from "
                         "loss.backward(); optimizer.step() on the loss of this batch")
                return CheckResult(False, f"after step {step}, parameter {name!r} differs: {cause}")
        if not isinstance(got, torch.Tensor) or not torch.allclose(got.detach(), expected):
            return CheckResult(False, f"step {step} returned {got!r}; return the batch's loss "
                                      f"(expected {expected.item():.4f})")
    return CheckResult(True, f"{fn.__name__} matches the reference step twice in a row.")


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
    from torch.utils.data import TensorDataset

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
