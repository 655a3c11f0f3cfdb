"""The course's one training loop: ``train`` = ``train_step`` in a loop + ``evaluate`` per epoch.

Notebook 00 writes this loop from scratch and checks that ``train`` gives the same numbers.
AMP, gradient clipping, schedulers and checkpoints are switches on this one code path.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_utils.checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from course_utils.hardware import amp_dtype

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class History:
    """What a run did: per optimizer step (step, lr, train_loss) and per epoch."""

    step: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    epoch: list[int] = field(default_factory=list)
    epoch_train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)  # training only, no validation
    diagnosis: str | None = None  # set when training stopped on a non-finite loss

    def time_to_accuracy(self, target: float) -> float | None:
        """Training seconds until validation accuracy first reached ``target`` (None if never)."""
        elapsed = 0.0
        for seconds, acc in zip(self.epoch_seconds, self.val_acc, strict=False):
            elapsed += seconds
            if acc >= target:
                return elapsed
        return None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EvalResult:
    """Mean loss and accuracy over ``count`` examples."""

    loss: float
    accuracy: float
    count: int


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
               optimizer: torch.optim.Optimizer, loss_fn: LossFn, amp: str | None = None,
               scaler: torch.amp.GradScaler | None = None,
               grad_clip: float | None = None) -> torch.Tensor:
    """One optimizer step on the batch ``(x, y)`` (already on the model's device).

    Returns the loss as a detached 0-d tensor (no ``.item()``: that would sync every step).
    With a GradScaler (fp16), gradients are unscaled before clipping.
    """
    if amp is None:
        loss = loss_fn(model(x), y)
    else:
        with torch.autocast(x.device.type, dtype=amp_dtype(amp)):
            loss = loss_fn(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        if grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
    return loss.detach()


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, *, loss_fn: LossFn | None = None,
             device: torch.device | str | None = None, amp: str | None = None) -> EvalResult:
    """Mean loss and accuracy of ``model`` over ``loader`` in eval mode.

    The model's train/eval mode is restored afterwards. Sums stay on the device and are
    synchronized once at the end.
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = torch.device(device) if device is not None else _model_device(model)
    dtype, was_training = amp_dtype(amp), model.training
    model.eval()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    try:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = model(x)
                total_loss += loss_fn(logits, y).float() * len(y)
            correct += (logits.argmax(1) == y).sum()
            count += len(y)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate: the loader yielded no batches")
    return EvalResult(loss=total_loss.item() / count, accuracy=correct.item() / count, count=count)


def _model_device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _check_args(model: Any, optimizer: Any, epochs: Any, amp: Any, grad_clip: Any,
                log_every: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    amp_dtype(amp)  # raises ValueError naming the allowed values
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be a positive number or None, got {grad_clip!r}")
    if not isinstance(log_every, int) or log_every < 1:
        raise ValueError(f"log_every must be a positive int, got {log_every!r}")


def _diagnose(step: int, epoch: int, value: float, lr: float, x: torch.Tensor) -> str:
    bad_input = not bool(torch.isfinite(x).all())
    scale = float(x.abs().max()) if not bad_input else float("nan")
    return (
        f"Training stopped: the loss became {value} at step {step} (epoch {epoch + 1}).\n"
        "Likely causes, most common first:\n"
        f"  1. learning rate too large (lr={lr:g}): try 3-10x smaller, or run an LR range test;\n"
        "  2. bad initialisation (weights too large, or a layer re-initialised by hand);\n"
        "  3. bad data: "
        + ("the last batch contains NaN/Inf inputs." if bad_input else
           f"NaN/Inf inputs or badly scaled inputs (last batch max |x| = {scale:.3g}).")
    )


def _flush(history: History, losses: list, lrs: list, start: int) -> int | None:
    """Move buffered losses to the history with one device sync; index of a non-finite one."""
    values = torch.stack(losses[start:]).float().tolist()
    first_step = (history.step[-1] + 1) if history.step else 0
    for offset, value in enumerate(values):
        history.step.append(first_step + offset)
        history.lr.append(lrs[start + offset])
        history.train_loss.append(value)
        if not math.isfinite(value):
            return start + offset
    return None


def _resume(path: Path, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any,
            loader: Any) -> tuple[int, History]:
    state = load_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler)
    scaler.load_state_dict(state["scaler"])
    if state.get("loader") is not None:
        _loader_generator_state(loader, state["loader"])
    set_rng_state(state["rng"])
    print(f"Resumed from {path}: {state['epoch']} epoch(s) already done.")
    return state["epoch"], History(**state["history"])


def _loader_generator_state(loader: Any, state: dict | None = None) -> dict | None:
    """Get (or, given ``state``, set) the shuffling state of a TensorLoader or DataLoader."""
    if hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict"):
        return loader.state_dict() if state is None else loader.load_state_dict(state)
    generator = getattr(loader, "generator", None)
    if generator is None:
        return None  # a DataLoader without its own generator follows torch's global RNG
    return {"generator": generator.get_state()} if state is None else generator.set_state(
        state["generator"])


def train(model: nn.Module, train_loader: Iterable, *, optimizer: torch.optim.Optimizer,
          epochs: int, loss_fn: LossFn | None = None, val_loader: Iterable | None = None,
          scheduler: Any = None, device: torch.device | str | None = None,
          amp: str | None = None, grad_clip: float | None = None,
          on_epoch_end: Callable[[int, History], bool | None] | None = None,
          progress: bool = True, log_every: int = 50,
          checkpoint: str | Path | None = None) -> History:
    """Train ``model`` for ``epochs`` epochs and return its :class:`History`.

    The scheduler is stepped after every optimizer step. ``on_epoch_end(epoch, history)``
    returning True stops training. With ``checkpoint``, the full state is saved after each
    epoch and, if the file already exists, training resumes from it. A non-finite loss stops
    training with a diagnosis (printed and stored in ``history.diagnosis``). ``.item()`` is
    called once per ``log_every`` steps, never per step.
    """
    _check_args(model, optimizer, epochs, amp, grad_clip, log_every)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = torch.device(device) if device is not None else _model_device(model)
    model.to(device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    start, history = 0, History()
    if checkpoint is not None and Path(checkpoint).is_file():
        start, history = _resume(Path(checkpoint), model, optimizer, scheduler, scaler, train_loader)
    bar = _progress_bar(progress, epochs, train_loader, start)
    try:
        for epoch in range(start, epochs):
            model.train()
            losses, lrs, flushed, bad = [], [], 0, None
            started = time.perf_counter()
            for x, y in train_loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                lrs.append(optimizer.param_groups[0]["lr"])
                losses.append(train_step(model, x, y, optimizer=optimizer, loss_fn=loss_fn,
                                         amp=amp, scaler=scaler, grad_clip=grad_clip))
                if scheduler is not None:
                    scheduler.step()
                if len(losses) - flushed >= log_every:
                    bad = _flush(history, losses, lrs, flushed)
                    flushed = _advance(bar, history, len(losses), flushed)
                    if bad is not None:
                        break
            if not losses:
                raise ValueError("train_loader yielded no batches")
            if bad is None and flushed < len(losses):
                bad = _flush(history, losses, lrs, flushed)
                _advance(bar, history, len(losses), flushed)
            if bad is not None:
                history.diagnosis = _diagnose(history.step[-1], epoch, history.train_loss[-1],
                                              lrs[bad], x)
                print(history.diagnosis)
                break
            history.epoch_seconds.append(time.perf_counter() - started)
            history.epoch.append(epoch + 1)
            history.epoch_train_loss.append(sum(history.train_loss[-len(losses):]) / len(losses))
            if val_loader is not None:
                result = evaluate(model, val_loader, loss_fn=loss_fn, device=device, amp=amp)
                history.val_loss.append(result.loss)
                history.val_acc.append(result.accuracy)
            stop = bool(on_epoch_end(epoch, history)) if on_epoch_end is not None else False
            if checkpoint is not None:
                save_checkpoint(
                    checkpoint, epoch=epoch + 1, model=model.state_dict(),
                    optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict() if scheduler is not None else None,
                    scaler=scaler.state_dict(), history=history.as_dict(),
                    loader=_loader_generator_state(train_loader))
            if stop:
                break
    finally:
        if bar is not None:
            bar.close()
    return history


def _progress_bar(progress: bool, epochs: int, loader: Iterable, start: int) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm  # imported only when a bar is wanted

    per_epoch = len(loader) if hasattr(loader, "__len__") else None
    total = per_epoch * epochs if per_epoch is not None else None
    initial = per_epoch * start if per_epoch is not None else 0
    return tqdm(total=total, initial=initial, unit="step", desc="train", leave=False)


def _advance(bar: Any, history: History, done: int, flushed: int) -> int:
    if bar is not None:
        bar.update(done - flushed)
        bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}", refresh=False)
    return done
