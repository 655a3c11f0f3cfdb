"""The course's one training loop: ``train`` = ``train_step`` in a loop + ``evaluate`` per epoch.

Notebook 00 writes this loop from scratch and checks that ``train`` gives the same numbers.
AMP, gradient clipping, schedulers and checkpoints are switches on this one code path.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_utils.checkpoint import loader_state, resume_run, run_settings, save_checkpoint
from course_utils.diagnosis import (
    TrainingWarning,
    check_labels,
    check_train_args,
    diagnose,
    first_bad_step,
    replay_state,
    reread_batch,
    unpack_batch,
)
from course_utils.hardware import amp_dtype, autocast

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
__all__ = ["EvalResult", "History", "TrainingWarning", "evaluate", "train", "train_step"]


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
    diagnosis: str | None = None  # set when training stopped on a non-finite or diverging loss
    notes: list[str] = field(default_factory=list)  # e.g. "Resumed from run.ckpt: 2 epoch(s) ..."

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
    Without a ``scaler`` a disabled GradScaler is used, which changes nothing; with one
    (fp16), gradients are unscaled before clipping. Taught in notebooks 00 and 11.
    """
    scaler = scaler if scaler is not None else torch.amp.GradScaler(x.device.type, enabled=False)
    return _step(model, x, y, optimizer, loss_fn, amp_dtype(amp), scaler, grad_clip)


def _step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
          loss_fn: LossFn, dtype: torch.dtype | None, scaler: torch.amp.GradScaler,
          grad_clip: float | None) -> torch.Tensor:
    with autocast(x.device.type, dtype):
        loss = loss_fn(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # a disabled scaler (not fp16) returns the loss itself
    if grad_clip is not None:
        scaler.unscale_(optimizer)  # so that clipping sees the true gradient norm
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)  # optimizer.step(), skipped after an fp16 overflow
    scaler.update()
    return loss.detach()


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, *, loss_fn: LossFn | None = None,
             device: torch.device | str | None = None, amp: str | None = None) -> EvalResult:
    """Mean loss and accuracy of ``model`` over ``loader`` in eval mode.

    The model's train/eval mode is restored afterwards. Sums stay on the device and are
    synchronized once at the end.

    Raises:
        TypeError: a batch is not an ``(x, y)`` pair, or its labels are not class indices
            (one-hot or soft float labels).
        ValueError: an empty loader, or labels of the wrong shape.
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = torch.device(device) if device is not None else _model_device(model)
    dtype, was_training = amp_dtype(amp), model.training
    model.eval()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    try:
        for batch in loader:
            x, y = unpack_batch(batch, "loader")
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast(device.type, dtype):
                logits = model(x)
                check_labels(logits, y)
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


def _log(history: History, pending: list, bar: Any) -> int | None:
    """Move one interval's (lr, loss) pairs into ``history`` with a single device sync.

    Returns the History index of the first NaN/Inf or diverging loss (the steps after it are
    dropped), else None.
    """
    values = torch.stack([loss for _, loss in pending]).float().tolist()
    first, start = (history.step[-1] + 1 if history.step else 0), len(history.train_loss)
    history.step.extend(range(first, first + len(values)))
    history.lr.extend(lr for lr, _ in pending)
    history.train_loss.extend(values)
    pending.clear()
    bad = first_bad_step(history.train_loss, start)
    if bad is not None:
        del history.step[bad + 1:], history.lr[bad + 1:], history.train_loss[bad + 1:]
    if bar is not None:
        bar.update(len(values))
        bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}", refresh=False)
    return bad


def _stop(history: History, bad: int, first: int, epoch: int, loader: Any, replay: dict | None,
          last: tuple[int, Any], loss_fn: Any) -> None:
    """Diagnose the step at History index ``bad`` (the epoch's first step is at ``first``)."""
    position = bad - first
    batch = last[1] if last[0] == position else reread_batch(loader, replay, position)
    history.diagnosis = diagnose(step=history.step[bad], epoch=epoch, batch_index=position,
                                 value=history.train_loss[bad], lr=history.lr[bad],
                                 reference=history.train_loss[0], batch=batch,
                                 ignore_index=getattr(loss_fn, "ignore_index", -100))
    warnings.warn(history.diagnosis, TrainingWarning, stacklevel=3)


def _attach(err: BaseException, history: History, pending: list) -> None:
    """Keep the History on an exception (Ctrl-C, a loader or scheduler error) that stops training."""
    try:
        if pending:
            _log(history, pending, None)
    except Exception:  # the device itself failed: keep what was already synchronized
        pending.clear()
    done = min(len(history.step), len(history.lr), len(history.train_loss))
    del history.step[done:], history.lr[done:], history.train_loss[done:]
    err.history = history
    err.add_note(f"train(): the History so far ({len(history.step)} steps, {len(history.epoch)} "
                 "complete epochs) is attached to this exception as .history")


def _restore_history(history: History, state: dict, path: str | Path, changes: list[str]) -> int:
    """Fill ``history`` from a checkpoint ``resume_run`` loaded; return the epochs already done."""
    names = {f.name for f in fields(History)}
    vars(history).update(History(**{k: v for k, v in state["history"].items() if k in names}).as_dict())
    history.notes.append(f"Resumed from {path}: {state['epoch']} epoch(s) already done.")
    if changes:  # resume=True/"force"
        history.notes.append(f"Resumed with changed settings: {'; '.join(changes)}")
        warnings.warn(f"Resuming {path} with changed settings: {'; '.join(changes)}. The new "
                      "settings apply from here on.", TrainingWarning, stacklevel=3)
    return state["epoch"]


def _end_epoch(history: History, epoch: int, seconds: float, steps: int, model: nn.Module,
               val_loader: Iterable | None, loss_fn: LossFn, device: torch.device,
               amp: str | None) -> None:
    result = None if val_loader is None else evaluate(model, val_loader, loss_fn=loss_fn,
                                                      device=device, amp=amp)
    history.epoch_seconds.append(seconds)
    history.epoch.append(epoch + 1)
    history.epoch_train_loss.append(sum(history.train_loss[-steps:]) / steps)
    if result is not None:
        history.val_loss.append(result.loss)
        history.val_acc.append(result.accuracy)


def train(model: nn.Module, train_loader: Iterable, *, optimizer: torch.optim.Optimizer,
          epochs: int, loss_fn: LossFn | None = None, val_loader: Iterable | None = None,
          scheduler: Any = None, device: torch.device | str | None = None,
          amp: str | None = None, grad_clip: float | None = None,
          on_epoch_end: Callable[[int, History], bool | None] | None = None,
          progress: bool = True, log_every: int = 50, checkpoint: str | Path | None = None,
          resume: bool | str | None = None, history: History | None = None) -> History:
    """Train ``model`` for ``epochs`` epochs and return its :class:`History`.

    The scheduler is stepped after every optimizer step. ``on_epoch_end(epoch, history)``
    returning True stops training. ``.item()`` is called once per ``log_every`` steps, never per
    step. A NaN/Inf or diverging loss stops training with a diagnosis of the batch that failed
    (``history.diagnosis``, also issued as a :class:`TrainingWarning`). With
    ``progress=False`` nothing is printed.

    Args:
        checkpoint: a file to save the full state to after each epoch. If it exists, the run
            resumes from it (``history.notes`` says so) when its settings (optimizer class and
            hyperparameters, scheduler, ``amp``, ``grad_clip``) equal this call's.
        resume: None refuses a checkpoint saved with other settings (ValueError naming them);
            True or "force" resumes anyway, the new settings replacing the saved ones, with a
            warning; False ignores the checkpoint and starts over (overwriting it).
        history: a History to fill in place, so that it survives an interrupted call. On any
            exception (Ctrl-C too) the History so far is also attached as ``err.history``.

    Raises:
        TypeError, ValueError: bad arguments (before anything is touched), such as a
            ReduceLROnPlateau scheduler, a one-shot iterator with ``epochs > 1``, a loader that
            does not yield ``(x, y)``, or a checkpoint of another run (see ``resume``).
    """
    dtype = check_train_args(model, train_loader, optimizer=optimizer, epochs=epochs,
                             scheduler=scheduler, amp=amp, grad_clip=grad_clip,
                             log_every=log_every, checkpoint=checkpoint, resume=resume)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = torch.device(device) if device is not None else _model_device(model)
    model.to(device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    settings = run_settings(optimizer, scheduler, amp=amp, grad_clip=grad_clip)
    history, start = history if history is not None else History(), 0
    if checkpoint is not None and resume is not False and Path(checkpoint).is_file():
        state, changes = resume_run(checkpoint, resume=resume, settings=settings, model=model,
                                    optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                                    loader=train_loader)
        start = _restore_history(history, state, checkpoint, changes)
        if progress:
            print(history.notes[-1])
    bar = _progress_bar(progress, epochs, train_loader, start)
    pending: list[tuple[float, torch.Tensor]] = []  # this log interval's (lr, loss on the device)
    try:
        for epoch in range(start, epochs):
            model.train()
            replay, first, bad = replay_state(train_loader), len(history.step), None
            started = time.perf_counter()
            for index, batch in enumerate(train_loader):  # noqa: B007 (index is used by _stop)
                x, y = unpack_batch(batch, "train_loader")
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                pending.append((optimizer.param_groups[0]["lr"],
                                _step(model, x, y, optimizer, loss_fn, dtype, scaler, grad_clip)))
                if scheduler is not None:
                    scheduler.step()
                if len(pending) == log_every and (bad := _log(history, pending, bar)) is not None:
                    break
            if bad is None and pending:
                bad = _log(history, pending, bar)
            if len(history.step) == first:
                raise ValueError(f"train_loader yielded no batches in epoch {epoch + 1}"
                                 + (" (a one-shot iterable, already used up?)" if epoch > start else ""))
            if bad is not None:
                _stop(history, bad, first, epoch, train_loader, replay, (index, batch), loss_fn)
                break
            _end_epoch(history, epoch, time.perf_counter() - started, len(history.step) - first,
                       model, val_loader, loss_fn, device, amp)
            stop = bool(on_epoch_end(epoch, history)) if on_epoch_end is not None else False
            if checkpoint is not None:
                save_checkpoint(
                    checkpoint, epoch=epoch + 1, model=model.state_dict(),
                    optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict() if scheduler is not None else None,
                    scaler=scaler.state_dict(), history=history.as_dict(),
                    loader=loader_state(train_loader), settings=settings)
            if stop:
                break
    except BaseException as err:
        _attach(err, history, pending)
        raise
    finally:
        if bar is not None:
            bar.close()
    return history


def _progress_bar(progress: bool, epochs: int, loader: Iterable, start: int) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm  # imported only when a bar is wanted

    try:
        per_epoch = len(loader)
    except TypeError:  # a loader without a length: a bar without a total
        per_epoch = None
    total = per_epoch * epochs if per_epoch is not None else None
    initial = per_epoch * start if per_epoch is not None else 0
    return tqdm(total=total, initial=initial, unit="step", desc="train", leave=False)
