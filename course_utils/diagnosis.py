"""What ``train()`` refuses before it starts, and why it stopped when a run fails.

Before training, :func:`check_train_args` refuses arguments that would fail later or mislead
(with an error naming what is allowed). During training, :func:`course_utils.train.train` keeps
each step's loss on the device and looks at the losses once per log interval (one sync). When
one is NaN/Inf, or the loss diverges (a run of losses far above the first one), training stops
and :func:`diagnose` explains it. The batch that failed is
re-read from the loader (its shuffling state and torch's RNG are saved at every epoch's start,
which costs nothing per step), so the diagnosis looks at the batch that actually failed, not at
whichever batch happened to be last. Taught in notebook 00.
"""

from __future__ import annotations

import itertools
import math
import numbers
import statistics
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from course_utils.checkpoint import loader_state
from course_utils.hardware import amp_dtype

# Diverging: the median of the last DIVERGENCE_WINDOW losses exceeds DIVERGENCE_FACTOR times the
# first loss of the run. The median ignores a single bad batch; no healthy run gets there.
DIVERGENCE_FACTOR = 1e3
DIVERGENCE_WINDOW = 10
_BADLY_SCALED = 1e3  # max |x| above this: inputs were probably not normalized


class TrainingWarning(RuntimeWarning):
    """``train()`` stopped early (a diagnosis) or resumed a run with changed settings."""


def unpack_batch(batch: Any, name: str) -> tuple[Any, Any]:
    """``(x, y)`` from one batch, or a TypeError saying what the loader yielded instead."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch
    if isinstance(batch, (tuple, list)):
        hint = (f"a {type(batch).__name__} of {len(batch)} items; train() and evaluate() take "
                "(x, y) pairs: fold sample weights into loss_fn, or drop the extra items")
    else:
        hint = (f"a {type(batch).__name__} (inputs without labels?); pair each input batch with "
                "its labels, e.g. TensorLoader(x, y, ...) or DataLoader(TensorDataset(x, y))")
    raise TypeError(f"{name} must yield (x, y) batches, got {hint}")


def check_labels(logits: torch.Tensor, y: torch.Tensor) -> None:
    """Refuse labels that are not one class index per prediction (one-hot, soft, wrong shape)."""
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"evaluate needs class indices (an integer tensor) as labels, got {y.dtype} "
                        f"labels of shape {tuple(y.shape)}; for one-hot or soft labels pass "
                        "y.argmax(1)")
    if y.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"evaluate needs one class index per prediction: logits of shape "
                         f"{tuple(logits.shape)} want labels of shape "
                         f"{tuple(logits.shape[:1] + logits.shape[2:])}, got {tuple(y.shape)}")


def check_train_args(model: Any, loader: Any, *, optimizer: Any, epochs: Any, scheduler: Any,
                     amp: Any, grad_clip: Any, log_every: Any, checkpoint: Any,
                     resume: Any) -> torch.dtype | None:
    """Refuse what would fail or mislead later in ``train()``, before anything is touched.

    Returns the autocast dtype ``amp`` stands for (None for full precision).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not isinstance(loader, Iterable):
        raise TypeError(f"train_loader must be iterable (a DataLoader, a TensorLoader or a list of "
                        f"(x, y) batches), got {type(loader).__name__}")
    if isinstance(loader, Iterator) and epochs > 1:
        raise ValueError(f"train_loader is a one-shot iterator ({type(loader).__name__}): it would "
                         f"be empty after the first of epochs={epochs}; pass something that can be "
                         "iterated again (a DataLoader, a TensorLoader, a list), or epochs=1")
    dtype = amp_dtype(amp)  # raises ValueError naming the allowed values
    if grad_clip is not None and (not isinstance(grad_clip, numbers.Real) or isinstance(grad_clip, bool)):
        raise TypeError(f"grad_clip must be a positive number (the largest gradient norm) or None, "
                        f"got {type(grad_clip).__name__} {grad_clip!r}")
    if grad_clip is not None and not (math.isfinite(grad_clip) and grad_clip > 0):
        raise ValueError(f"grad_clip must be a positive finite number or None, got {grad_clip!r}")
    if not isinstance(log_every, int) or isinstance(log_every, bool) or log_every < 1:
        raise ValueError(f"log_every must be a positive int, got {log_every!r}")
    if checkpoint is not None and Path(checkpoint).is_dir():
        raise ValueError(f"checkpoint {checkpoint} is a folder; give a file path such as "
                         f"{Path(checkpoint) / 'run.ckpt'}")
    if not (resume is None or isinstance(resume, bool) or resume == "force"):
        raise ValueError(f"resume must be None, True, False or 'force', got {resume!r}")
    _check_scheduler(scheduler, optimizer, loader, epochs)
    return dtype


def _check_scheduler(scheduler: Any, optimizer: torch.optim.Optimizer, loader: Any, epochs: int) -> None:
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise TypeError("scheduler: train() steps the scheduler after every optimizer step, without "
                        "a metric, but ReduceLROnPlateau needs one. Step it once per epoch yourself: "
                        "on_epoch_end=lambda epoch, history: scheduler.step(history.val_loss[-1])")
    if not callable(getattr(scheduler, "step", None)):
        raise TypeError(f"scheduler must be a torch.optim.lr_scheduler scheduler (with .step()), "
                        f"got {type(scheduler).__name__}")
    if getattr(scheduler, "optimizer", optimizer) is not optimizer:
        raise ValueError("scheduler was built for another optimizer than the one passed to train(); "
                         "build it on this optimizer")
    total = getattr(scheduler, "total_steps", None)
    try:
        needed = epochs * len(loader)
    except TypeError:  # no length: cannot check
        return
    if isinstance(total, int) and total < needed:
        raise ValueError(f"scheduler: this {type(scheduler).__name__} was built for {total} steps, but "
                         f"train() will take {epochs} epochs x {len(loader)} batches = {needed}; build "
                         f"it with total_steps={needed}")


def first_bad_step(losses: list[float], start: int = 0) -> int | None:
    """Index (>= ``start``) of the first loss that is NaN/Inf or diverging, else None.

    Diverging means the median of the last :data:`DIVERGENCE_WINDOW` losses up to that step is
    above :data:`DIVERGENCE_FACTOR` times ``losses[0]`` (only when ``losses[0]`` is positive).
    """
    reference = losses[0] if losses and math.isfinite(losses[0]) and losses[0] > 0 else math.inf
    limit = DIVERGENCE_FACTOR * reference
    for i in range(start, len(losses)):
        value = losses[i]
        if not math.isfinite(value):
            return i
        if value > limit and statistics.median(losses[max(0, i - DIVERGENCE_WINDOW + 1):i + 1]) > limit:
            return i
    return None


def replay_state(loader: Any) -> dict | None:
    """What it takes to re-read this epoch's batches later (None for a one-shot iterator).

    Taken at the start of every epoch: the loader's shuffling state and torch's CPU RNG state
    (a DataLoader without a generator draws its order from it). No device sync.
    """
    if isinstance(loader, Iterator):
        return None
    return {"loader": loader_state(loader), "torch": torch.get_rng_state()}


def reread_batch(loader: Any, state: dict | None, index: int) -> Any:
    """Batch ``index`` of the epoch that started in ``state``, or None if it cannot be re-read.

    The loader's shuffling state and torch's RNG are left as they were found.
    """
    if state is None:
        return None
    current = loader_state(loader)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(state["torch"])
            if state["loader"] is not None:
                loader_state(loader, state["loader"])
            return next(itertools.islice(iter(loader), index, None), None)
    except Exception:  # a loader that cannot be re-iterated: diagnose without the batch
        return None
    finally:
        if current is not None:
            loader_state(loader, current)


def _batch_findings(batch: Any, where: str, ignore_index: int) -> tuple[str | None, str]:
    """(the data problem found in ``batch``, or None; what was checked), for the diagnosis."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        return None, f"NaN/Inf or badly scaled inputs ({where} could not be re-read to check)"
    x, y = (torch.as_tensor(v) for v in batch)
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        count = int((~torch.isfinite(x)).sum())
        return f"{where} contains NaN/Inf inputs ({count} value(s)): clean or drop them.", ""
    if y.is_floating_point() and not bool(torch.isfinite(y).all()):
        return f"{where} contains NaN/Inf labels: clean or drop them.", ""
    if not y.is_floating_point() and y.numel() > 0 and bool((y == ignore_index).all()):
        return (f"every label in {where} equals ignore_index ({ignore_index}), so the mean loss is "
                "0/0 = NaN: drop batches without a single real label, or use reduction='sum'."), ""
    scale = float(x.abs().max()) if x.numel() > 0 else 0.0
    if scale > _BADLY_SCALED:
        return f"{where} has badly scaled inputs (max |x| = {scale:.3g}): normalize them.", ""
    return None, f"NaN/Inf inputs or badly scaled inputs (none in {where}: max |x| = {scale:.3g})"


def diagnose(*, step: int, epoch: int, batch_index: int, value: float, lr: float,
             reference: float, batch: Any, ignore_index: int = -100) -> str:
    """Explain why training stopped at ``step`` (batch ``batch_index`` of ``epoch``, from 0).

    ``batch`` is the ``(x, y)`` that step trained on, or None if it could not be re-read; a
    problem found in it (NaN/Inf inputs or labels, labels all ``ignore_index``, huge inputs) is
    named first, else the learning rate is.
    """
    where = f"batch {batch_index + 1} of epoch {epoch + 1}"
    if math.isfinite(value):
        what = (f"the loss diverged to {value:.3g} at step {step} ({where}), over "
                f"{DIVERGENCE_FACTOR:g}x its first value {reference:.3g}")
    else:
        what = f"the loss became {value} at step {step} ({where})"
    problem, checked = _batch_findings(batch, where, ignore_index)
    causes = [f"learning rate too large (lr={lr:g}): try 3-10x smaller, or run an LR range test;",
              "bad initialisation (weights too large, or a layer re-initialised by hand);"]
    if problem:  # found in the very batch that failed: the likeliest cause
        causes.insert(0, f"bad data: {problem}")
    else:
        causes.append(f"bad data: {checked}.")
    listed = "\n".join(f"  {i}. {cause}" for i, cause in enumerate(causes, 1))
    return f"Training stopped: {what}.\nLikely causes, most common first:\n{listed}"
