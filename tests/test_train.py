"""Tests for course_utils.train (the one loop) and the checkpoints it writes and resumes from."""

from __future__ import annotations

import copy
import math
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils.checkpoint import load_checkpoint, save_checkpoint
from course_utils.data import TensorLoader
from course_utils.models import mlp
from course_utils.train import History, TrainingWarning, evaluate, train

STEPS_PER_EPOCH = 8  # 256 examples in batches of 32 (conftest's tiny_loader)


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable 2-class data of shape (n, 1, 4, 4), like conftest's tiny_data, from its own seed."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=generator)
    x = torch.randn(n, 1, 4, 4, generator=generator) * 0.5 + (2 * y - 1).view(-1, 1, 1, 1)
    return x, y


@pytest.fixture
def val_loader():
    x, y = make_data(128, seed=1)
    return TensorLoader(x, y, batch_size=64)


def tiny_mlp(dropout: float = 0.0) -> nn.Sequential:
    return mlp(16, (32,), 2, dropout=dropout)


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the checkpoint must restore the global RNG too)
    torch.manual_seed(seed)


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), f"{name} differs"


class SpyLoader:
    """Wraps a loader and counts how often it is iterated."""

    def __init__(self, loader):
        self.loader, self.iterations = loader, 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.iterations += 1
        return iter(self.loader)


# --- behaviour ------------------------------------------------------------------------------


def test_loss_falls_and_validation_accuracy_is_high(tiny_loader, val_loader):
    torch.manual_seed(0)
    model = tiny_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = train(model, tiny_loader, optimizer=optimizer, epochs=3, val_loader=val_loader,
                    progress=False)

    steps = 3 * STEPS_PER_EPOCH
    assert history.step == list(range(steps))
    assert len(history.lr) == len(history.train_loss) == steps
    assert history.epoch == [1, 2, 3]
    for name in ("epoch_train_loss", "val_loss", "val_acc", "epoch_seconds"):
        assert len(getattr(history, name)) == 3, name
    assert history.diagnosis is None
    assert all(math.isfinite(v) for v in history.train_loss)
    for epoch in range(3):  # the epoch loss is the mean of that epoch's step losses
        chunk = history.train_loss[epoch * STEPS_PER_EPOCH:(epoch + 1) * STEPS_PER_EPOCH]
        assert history.epoch_train_loss[epoch] == pytest.approx(sum(chunk) / len(chunk))
    assert history.epoch_train_loss[-1] < 0.5 * history.epoch_train_loss[0]
    assert np.mean(history.train_loss[-4:]) < np.mean(history.train_loss[:4])
    assert history.val_acc[-1] >= 0.95
    final = evaluate(model, val_loader)  # the last epoch's numbers are the final model's
    assert history.val_loss[-1] == pytest.approx(final.loss)
    assert history.val_acc[-1] == final.accuracy


def test_train_equals_hand_written_loop(tiny_data, val_loader):
    x, y = tiny_data
    torch.manual_seed(0)
    model = tiny_mlp(dropout=0.2)  # dropout: train must draw from the global RNG exactly as the loop does
    reference = copy.deepcopy(model)

    def parts(m):
        optimizer = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)

    optimizer, scheduler = parts(reference)
    loader = TensorLoader(x, y, batch_size=32, shuffle=True, seed=0)
    torch.manual_seed(1)
    losses, lrs = [], []
    for _ in range(2):
        for xb, yb in loader:
            lrs.append(optimizer.param_groups[0]["lr"])
            loss = F.cross_entropy(reference(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())

    optimizer, scheduler = parts(model)
    loader = TensorLoader(x, y, batch_size=32, shuffle=True, seed=0)
    torch.manual_seed(1)
    history = train(model, loader, optimizer=optimizer, scheduler=scheduler, epochs=2,
                    val_loader=val_loader, progress=False, log_every=3)

    assert len(losses) == 2 * STEPS_PER_EPOCH
    assert history.train_loss == losses
    assert history.lr == lrs
    assert_same_weights(model, reference)


def test_scheduler_steps_per_optimizer_step_and_lr_is_recorded(tiny_loader):
    torch.manual_seed(0)
    model = tiny_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    history = train(model, tiny_loader, optimizer=optimizer, scheduler=scheduler, epochs=2,
                    progress=False)

    steps = 2 * STEPS_PER_EPOCH
    assert history.lr == pytest.approx([0.1 * 0.5 ** (step // 3) for step in range(steps)])
    assert scheduler.last_epoch == steps
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** (steps // 3))


# --- non-finite and diverging losses ------------------------------------------------------------


def first_failing_step(model, loader, optimizer, epochs):
    """The hand-written loop's first step whose loss is NaN/Inf, or diverging: the median of the
    last 10 losses above 1000 times the first loss (the rule train() documents)."""
    losses = []
    for _ in range(epochs):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            losses.append(loss.item())
            window = sorted(losses[-10:])
            median = (window[(len(window) - 1) // 2] + window[len(window) // 2]) / 2
            if not math.isfinite(losses[-1]) or (losses[-1] > 1e3 * losses[0] and median > 1e3 * losses[0]):
                return len(losses) - 1
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return None


def warned_diagnosis(record) -> str:
    messages = [str(w.message) for w in record if issubclass(w.category, TrainingWarning)]
    assert len(messages) == 1, messages
    return messages[0]


@pytest.mark.parametrize("log_every", [1, 50])
def test_huge_learning_rate_stops_with_a_diagnosis(tiny_data, capsys, log_every):
    x, y = tiny_data
    torch.manual_seed(0)
    model = tiny_mlp()
    reference = copy.deepcopy(model)
    expected_step = first_failing_step(reference, TensorLoader(x, y, batch_size=32, shuffle=True, seed=0),
                                       torch.optim.SGD(reference.parameters(), lr=1e6), epochs=5)
    assert expected_step is not None and expected_step > 0

    with pytest.warns(TrainingWarning) as record:
        history = train(model, TensorLoader(x, y, batch_size=32, shuffle=True, seed=0),
                        optimizer=torch.optim.SGD(model.parameters(), lr=1e6), epochs=5,
                        progress=False, log_every=log_every)  # must not raise

    assert history.step == list(range(expected_step + 1))  # stops at the first failing step
    assert len(history.epoch) == expected_step // STEPS_PER_EPOCH  # no epoch after the failure
    assert len(history.epoch_seconds) == len(history.epoch)
    diagnosis = history.diagnosis
    assert diagnosis is not None and diagnosis == warned_diagnosis(record)
    assert f"step {expected_step} " in diagnosis
    epoch, batch = divmod(expected_step, STEPS_PER_EPOCH)
    assert f"batch {batch + 1} of epoch {epoch + 1}" in diagnosis
    assert diagnosis.index("learning rate") < diagnosis.index("data")  # the LR is named first
    for cause in ("lr=1e+06", "initialisation"):
        assert cause in diagnosis, cause
    assert capsys.readouterr() == ("", "")  # progress=False: nothing printed


def random_label_data(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 4, 4, generator=generator), torch.randint(0, 2, (n,), generator=generator)


def test_a_huge_but_finite_loss_is_diagnosed_as_divergence(val_loader):
    """lr=1e6 on a linear model: the losses jump from 0.75 to ~5e5 and stay finite (the old loop
    went on to val_acc 0.5 without a word)."""
    x, y = random_label_data()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with pytest.warns(TrainingWarning, match="diverged"):
        history = train(model, TensorLoader(x, y, batch_size=32, shuffle=True, seed=0), epochs=3,
                        optimizer=torch.optim.SGD(model.parameters(), lr=1e6), val_loader=val_loader,
                        progress=False)
    assert all(math.isfinite(v) for v in history.train_loss)
    assert history.train_loss[-1] > 1e3 * history.train_loss[0]
    assert history.epoch == [] and len(history.step) < STEPS_PER_EPOCH
    assert "the loss diverged" in history.diagnosis and "learning rate too large" in history.diagnosis


def test_a_bad_batch_spike_is_not_divergence(tiny_data):
    """One batch with a huge loss is not a diverging run (the median over 10 steps ignores it)."""
    x, y = tiny_data
    x = x.clone()
    x[32 * 3:32 * 4] *= 1e4  # batch 4 of each epoch: a huge but finite loss
    torch.manual_seed(0)
    model = tiny_mlp()
    history = train(model, TensorLoader(x, y, batch_size=32), epochs=2, progress=False,
                    optimizer=torch.optim.SGD(model.parameters(), lr=1e-12))  # the spike changes nothing
    assert history.diagnosis is None and history.epoch == [1, 2]
    assert history.train_loss[3] > 1e3 * history.train_loss[0]


@pytest.mark.parametrize("log_every", [1, 50])
@pytest.mark.parametrize("bad_batch", [0, 2])
@pytest.mark.parametrize("kind", ["tensor_loader", "shuffled", "dataloader"])
def test_nan_inputs_are_diagnosed_in_the_batch_that_failed(tiny_data, capsys, log_every, bad_batch, kind):
    """NaN in one example of one batch only; later batches are clean, so a diagnosis that looked
    at the last batch (log_every=50: batch 8) would find nothing wrong."""
    x, y = tiny_data
    x = x.clone()
    if kind == "tensor_loader":
        x[32 * bad_batch + 5] = float("nan")
        loader = TensorLoader(x, y, batch_size=32)
    else:  # shuffled: find the example that lands in batch `bad_batch` of the first epoch
        def make(data):
            if kind == "shuffled":
                return TensorLoader(data, y, batch_size=32, shuffle=True, seed=3)
            return DataLoader(TensorDataset(data, y), batch_size=32, shuffle=True)  # global RNG

        ids = torch.arange(len(x), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 4, 4)
        torch.manual_seed(7)
        x[int(list(make(ids))[bad_batch][0][5, 0, 0, 0])] = float("nan")
        loader = make(x)
    torch.manual_seed(0)
    model = tiny_mlp()
    torch.manual_seed(7)
    with pytest.warns(TrainingWarning) as record:
        history = train(model, loader, epochs=2, progress=False,
                        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), log_every=log_every)

    assert history.step == list(range(bad_batch + 1))
    assert all(math.isfinite(v) for v in history.train_loss[:-1])
    assert math.isnan(history.train_loss[-1])
    assert history.epoch == []
    diagnosis = history.diagnosis
    assert diagnosis == warned_diagnosis(record)
    assert f"step {bad_batch} (batch {bad_batch + 1} of epoch 1)" in diagnosis
    assert f"1. bad data: batch {bad_batch + 1} of epoch 1 contains NaN/Inf inputs (16 value(s))" in diagnosis
    assert "learning rate" in diagnosis
    assert capsys.readouterr() == ("", "")


def test_labels_that_are_all_ignore_index_are_diagnosed(tiny_data):
    x, y = tiny_data
    y = y.clone()
    y[32:64] = -100  # batch 2: no real label, so the mean cross-entropy is 0/0
    torch.manual_seed(0)
    model = tiny_mlp()
    with pytest.warns(TrainingWarning):
        history = train(model, TensorLoader(x, y, batch_size=32), epochs=1, progress=False,
                        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert history.step == [0, 1] and math.isnan(history.train_loss[-1])
    assert "1. bad data: every label in batch 2 of epoch 1 equals ignore_index (-100)" in history.diagnosis


def test_a_one_shot_iterator_that_fails_cannot_be_reread_and_says_so(tiny_data):
    x, y = tiny_data
    x = x.clone()
    x[40] = float("nan")  # batch 2
    batches = ((x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32))
    torch.manual_seed(0)
    model = tiny_mlp()
    with pytest.warns(TrainingWarning):
        history = train(model, batches, epochs=1, progress=False,
                        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert history.step == [0, 1]
    assert "batch 2 of epoch 1 could not be re-read" in history.diagnosis


# --- resuming from a checkpoint ----------------------------------------------------------------


def build_run(kind: str, x: torch.Tensor, y: torch.Tensor):
    """Model, optimizer, scheduler and shuffled loader, built the same way every time."""
    model = tiny_mlp(dropout=0.3)  # dropout draws from the global RNG
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)  # momentum: optimizer state
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.7)
    if kind == "tensor_loader":
        loader = TensorLoader(x, y, batch_size=32, shuffle=True)  # its seed comes from the global RNG
    elif kind == "dataloader":
        loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)  # follows the global RNG
    else:
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
        loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=generator)
    return model, optimizer, scheduler, loader


@pytest.mark.parametrize("kind", ["tensor_loader", "dataloader", "dataloader_with_generator"])
def test_resume_from_checkpoint_equals_uninterrupted_run(tiny_data, val_loader, tmp_path, capsys, kind):
    x, y = tiny_data
    path = tmp_path / "run" / "checkpoint.pt"

    def run(epochs=4, checkpoint=None, on_epoch_end=None):
        model, optimizer, scheduler, loader = build_run(kind, x, y)
        history = train(model, loader, optimizer=optimizer, scheduler=scheduler, epochs=epochs,
                        val_loader=val_loader, checkpoint=checkpoint, on_epoch_end=on_epoch_end,
                        progress=False)
        return history, model, optimizer, scheduler

    seed_all(0)
    full, full_model, full_optimizer, full_scheduler = run()
    assert not path.exists()

    seed_all(0)
    first, first_model, _, _ = run(checkpoint=path, on_epoch_end=lambda epoch, history: epoch == 1)
    assert first.epoch == [1, 2]
    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert saved["epoch"] == 2
    assert_same_weights_dict(saved["model"], first_model.state_dict())

    seed_all(12345)  # a different global RNG state: resuming must restore the saved one
    fresh_model, _, _, _ = build_run(kind, x, y)
    assert not torch.equal(fresh_model[1].weight, first_model[1].weight)
    seed_all(12345)
    capsys.readouterr()
    resumed, resumed_model, resumed_optimizer, resumed_scheduler = run(checkpoint=path)
    assert capsys.readouterr() == ("", "")  # progress=False: silent; the resume is a note
    assert resumed.notes == [f"Resumed from {path}: 2 epoch(s) already done."]

    expected, got = full.as_dict(), resumed.as_dict()
    del expected["epoch_seconds"], got["epoch_seconds"], expected["notes"], got["notes"]
    assert got == expected
    assert len(resumed.epoch_seconds) == 4
    assert_same_weights(resumed_model, full_model)
    assert resumed_scheduler.state_dict() == full_scheduler.state_dict()
    for param_full, param_resumed in zip(full_model.parameters(), resumed_model.parameters(), strict=True):
        torch.testing.assert_close(resumed_optimizer.state[param_resumed]["momentum_buffer"],
                                   full_optimizer.state[param_full]["momentum_buffer"], rtol=0, atol=0)

    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert saved["epoch"] == 4
    assert_same_weights_dict(saved["model"], full_model.state_dict())


def assert_same_weights_dict(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs"


def test_resume_of_a_finished_run_trains_no_further(tiny_loader, tmp_path, capsys):
    path = tmp_path / "checkpoint.pt"
    torch.manual_seed(0)
    model = tiny_mlp()
    history = train(model, tiny_loader, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                    epochs=2, checkpoint=path, progress=False)
    weights = copy.deepcopy(model.state_dict())
    loader = SpyLoader(tiny_loader)
    again = train(model, loader, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                  epochs=2, checkpoint=path, progress=True)
    note = f"Resumed from {path}: 2 epoch(s) already done."
    assert again.as_dict() == {**history.as_dict(), "notes": [note]}
    assert loader.iterations == 0
    assert_same_weights_dict(model.state_dict(), weights)
    assert "2 epoch(s) already done" in capsys.readouterr().out  # progress=True prints the note


def test_load_checkpoint_errors(tiny_loader, tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.manual_seed(0)
    model = tiny_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, tiny_loader, optimizer=optimizer, epochs=1, checkpoint=path, progress=False)

    same = tiny_mlp()
    state = load_checkpoint(path, model=same)
    assert state["epoch"] == 1
    assert_same_weights(same, model)

    with pytest.raises(ValueError, match="model"):
        load_checkpoint(path, model=mlp(16, (8,), 2))
    two_groups = torch.optim.SGD([{"params": [p]} for p in same.parameters()], lr=0.1)
    with pytest.raises(ValueError, match="optimizer"):
        load_checkpoint(path, optimizer=two_groups)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt", model=same)


@pytest.mark.parametrize("content", ["dict", "module", "text", "empty", "truncated"])
def test_load_checkpoint_rejects_files_that_are_not_checkpoints(tmp_path, content):
    path = tmp_path / "not_a_checkpoint.pt"
    if content == "truncated":  # e.g. copied while it was being written
        save_checkpoint(path, epoch=1, model=tiny_mlp().state_dict())
        path.write_bytes(path.read_bytes()[:-100])
    elif content == "dict":
        torch.save({"weights": torch.zeros(3)}, path)
    elif content == "module":
        torch.save(nn.Linear(2, 2), path)  # pickled code: refused by weights_only=True
    elif content == "text":
        path.write_text("epoch,loss\n1,0.5\n", encoding="utf-8")
    else:
        path.write_bytes(b"")
    with pytest.raises(ValueError, match="not a course checkpoint"):
        load_checkpoint(path, model=tiny_mlp())


# --- bad input ---------------------------------------------------------------------------------


def bad_call(tiny_loader, **overrides):
    torch.manual_seed(0)
    model = tiny_mlp()
    before = copy.deepcopy(model.state_dict())
    loader = SpyLoader(tiny_loader)
    kwargs = {"optimizer": torch.optim.SGD(model.parameters(), lr=0.1), "epochs": 1, "progress": False}
    kwargs.update(overrides)
    args = (kwargs.pop("model", model), kwargs.pop("train_loader", loader))
    return args, kwargs, (model, before, loader)


def assert_untouched(model, before, loader):
    assert loader.iterations == 0
    assert_same_weights_dict(model.state_dict(), before)


def test_unknown_amp_raises_before_training(tiny_loader):
    args, kwargs, untouched = bad_call(tiny_loader, amp="fp8")
    with pytest.raises(ValueError, match="fp8") as error:
        train(*args, **kwargs)
    for allowed in ("None", "'bf16'", "'fp16'"):
        assert allowed in str(error.value)
    assert_untouched(*untouched)


@pytest.mark.parametrize("overrides, error", [
    ({"epochs": 0}, ValueError),
    ({"epochs": -1}, ValueError),
    ({"epochs": "2"}, ValueError),
    ({"epochs": 2.0}, ValueError),
    ({"epochs": True}, ValueError),
    ({"grad_clip": 0}, ValueError),
    ({"grad_clip": -1.0}, ValueError),
    ({"log_every": 0}, ValueError),
    ({"optimizer": "sgd"}, TypeError),
    ({"model": lambda x: x}, TypeError),
])
def test_bad_arguments_raise_before_training(tiny_loader, overrides, error):
    args, kwargs, untouched = bad_call(tiny_loader, **overrides)
    with pytest.raises(error, match=next(iter(overrides))):
        train(*args, **kwargs)
    assert_untouched(*untouched)


def test_empty_loader_raises():
    model = tiny_mlp()
    empty = TensorLoader(torch.zeros(0, 1, 4, 4), torch.zeros(0, dtype=torch.long), batch_size=4)
    with pytest.raises(ValueError, match="no batches"):
        train(model, empty, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=1,
              progress=False)
    with pytest.raises(ValueError, match="no batches"):
        evaluate(model, empty)


# --- mixed precision and clipping --------------------------------------------------------------


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_runs_on_cpu_and_learns(tiny_loader, val_loader, amp):
    torch.manual_seed(0)
    model = tiny_mlp()
    history = train(model, tiny_loader, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                    epochs=3, val_loader=val_loader, amp=amp, progress=False)
    assert history.diagnosis is None
    assert all(math.isfinite(v) for v in history.train_loss)
    assert history.epoch_train_loss[-1] < 0.5 * history.epoch_train_loss[0]
    assert history.val_acc[-1] >= 0.95
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast, not .half()


@pytest.mark.parametrize("amp", [None, "bf16", "fp16"])
def test_clipping_bounds_each_update_by_lr_times_grad_clip(tiny_loader, amp):
    """SGD without momentum moves the parameters by lr * |clipped grad| = lr * grad_clip.

    With fp16, clipping the still-scaled gradients (no unscale first) would make every update
    ~65536 times smaller than that, so this also checks the GradScaler's unscale_.
    """
    lr, grad_clip = 1.0, 1e-2  # the true gradient norm (~0.5) is far above grad_clip
    torch.manual_seed(0)
    model = tiny_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    before, moves = [], []  # the hooks run only for steps the GradScaler does not skip

    def snapshot(*_):
        before[:] = [p.detach().double().clone() for p in model.parameters()]

    def measure(*_):
        squares = [((p.detach().double() - old) ** 2).sum() for p, old in zip(model.parameters(), before,
                                                                            strict=True)]
        moves.append(math.sqrt(float(sum(squares))))

    optimizer.register_step_pre_hook(snapshot)
    optimizer.register_step_post_hook(measure)
    history = train(model, tiny_loader, optimizer=optimizer, epochs=1, amp=amp, grad_clip=grad_clip,
                    progress=False)
    assert len(history.train_loss) == STEPS_PER_EPOCH
    assert len(moves) >= STEPS_PER_EPOCH // 2  # fp16 may skip a few steps while the scale settles
    assert moves == pytest.approx([lr * grad_clip] * len(moves), rel=1e-3)


# --- leaving things as they were ---------------------------------------------------------------


def eval_model() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(8, 2))


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_leaves_mode_weights_and_rng_untouched(val_loader, training):
    torch.manual_seed(0)
    model = eval_model()
    model.train(training)
    before = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()

    result = evaluate(model, val_loader)

    assert all(module.training == training for module in model.modules())
    assert_same_weights_dict(model.state_dict(), before)
    assert torch.equal(torch.get_rng_state(), rng)
    x, y = val_loader.x, val_loader.y
    with torch.no_grad():
        logits = model.eval()(x)
    assert result.count == len(y)
    assert result.accuracy == (logits.argmax(1) == y).float().mean().item()
    assert result.loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)


def test_evaluate_restores_mode_when_the_model_fails():
    model = eval_model().train()
    bad = [(torch.zeros(4, 1, 3, 3), torch.zeros(4, dtype=torch.long))]  # 9 features, not 16
    with pytest.raises(RuntimeError):
        evaluate(model, bad)
    assert model.training


class DeviceSpy(nn.Sequential):
    """Records every device that ``.to()`` is asked to move the model to."""

    def __init__(self, *layers):
        super().__init__(*layers)
        self.moves = []

    def to(self, *args, **kwargs):
        self.moves.append(torch.device(args[0]) if args else kwargs.get("device"))
        return super().to(*args, **kwargs)


def test_train_without_device_keeps_the_model_where_it_is(tiny_loader, monkeypatch):
    # Pretend a GPU exists: a loop that picked "the best device" itself would try to move there.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    torch.manual_seed(0)
    model = DeviceSpy(*tiny_mlp())
    params = list(model.parameters())
    train(model, tiny_loader, optimizer=torch.optim.SGD(params, lr=0.1), epochs=1, device=None,
          progress=False)
    assert all(device == torch.device("cpu") for device in model.moves)
    assert all(a is b for a, b in zip(model.parameters(), params, strict=True))
    assert all(p.device.type == "cpu" for p in model.parameters())


# --- hook, progress bar, History ---------------------------------------------------------------


def test_on_epoch_end_gets_epoch_and_history_and_can_stop(tiny_loader, val_loader):
    calls = []

    def on_epoch_end(epoch, history):
        calls.append((epoch, history, list(history.epoch), len(history.val_acc), len(history.step)))
        return epoch == 1

    torch.manual_seed(0)
    model = tiny_mlp()
    history = train(model, tiny_loader, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=5,
                    val_loader=val_loader, on_epoch_end=on_epoch_end, progress=False)

    assert [call[0] for call in calls] == [0, 1]
    assert all(call[1] is history for call in calls)
    assert [call[2] for call in calls] == [[1], [1, 2]]  # called after the epoch is recorded
    assert [call[3] for call in calls] == [1, 2]  # ... and validated
    assert [call[4] for call in calls] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert history.epoch == [1, 2]
    assert len(history.step) == 2 * STEPS_PER_EPOCH


def test_on_epoch_end_returning_none_continues(tiny_loader):
    epochs_seen = []
    torch.manual_seed(0)
    model = tiny_mlp()
    history = train(model, tiny_loader, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=3,
                    on_epoch_end=lambda epoch, history: epochs_seen.append(epoch), progress=False)
    assert epochs_seen == [0, 1, 2]
    assert history.epoch == [1, 2, 3]


def test_progress_bar_shows_and_changes_nothing(tiny_data, capsys):
    x, y = tiny_data
    histories = []
    for progress in (False, True):
        torch.manual_seed(0)
        model = tiny_mlp()
        histories.append(train(model, TensorLoader(x, y, batch_size=32, shuffle=True, seed=0), epochs=2,
                               optimizer=torch.optim.SGD(model.parameters(), lr=0.1), progress=progress,
                               log_every=3))
        err = capsys.readouterr().err
        assert ("train" in err and "step" in err) == progress
    assert histories[0].train_loss == histories[1].train_loss


def test_progress_false_does_not_import_tqdm_auto():
    script = """
import sys
import torch
from course_utils.data import TensorLoader
from course_utils.models import mlp
from course_utils.train import train

x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
for progress in (False, True):
    model = mlp(4, (8,), 2)
    train(model, TensorLoader(x, y, batch_size=16), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
          epochs=1, progress=progress)
    print(progress, "tqdm.auto" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["False False", "True True"]


def test_time_to_accuracy():
    history = History(epoch=[1, 2, 3, 4], epoch_seconds=[1.0, 2.0, 4.0, 8.0],
                      val_acc=[0.5, 0.8, 0.7, 0.9])
    assert history.time_to_accuracy(0.5) == 1.0
    assert history.time_to_accuracy(0.8) == 3.0  # reaching the target exactly counts
    assert history.time_to_accuracy(0.75) == 3.0  # the first epoch at the target, not a later one
    assert history.time_to_accuracy(0.85) == 15.0
    assert history.time_to_accuracy(0.95) is None
    assert History().time_to_accuracy(0.1) is None


# --- refused before training starts (issue 11) -------------------------------------------------


def scheduler_for(optimizer, kind):
    if kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    if kind == "one_cycle_too_short":  # 1 epoch of 8 steps, but train() is asked for 2
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, epochs=1, steps_per_epoch=8)
    other = torch.optim.SGD(tiny_mlp().parameters(), lr=0.1)
    return torch.optim.lr_scheduler.StepLR(other, step_size=1)  # built on another optimizer


@pytest.mark.parametrize("kind, error, message", [
    ("plateau", TypeError, r"ReduceLROnPlateau needs one.*on_epoch_end"),
    ("one_cycle_too_short", ValueError, r"built for 8 steps.*= 16; build it with total_steps=16"),
    ("other_optimizer", ValueError, "built for another optimizer"),
])
def test_schedulers_train_cannot_step_are_refused_before_training(tiny_loader, kind, error, message):
    args, kwargs, untouched = bad_call(tiny_loader, epochs=2)
    kwargs["scheduler"] = scheduler_for(kwargs["optimizer"], kind)
    with pytest.raises(error, match=message):
        train(*args, **kwargs)
    assert_untouched(*untouched)


def test_a_one_shot_iterator_with_several_epochs_is_refused(tiny_data):
    x, y = tiny_data
    batches = iter([(x[:32], y[:32]), (x[32:64], y[32:64])])
    model = tiny_mlp()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r"one-shot iterator.*epochs=2.*or epochs=1"):
        train(model, batches, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=2,
              progress=False)
    assert len(list(batches)) == 2  # not consumed
    assert_same_weights_dict(model.state_dict(), before)
    history = train(model, iter([(x[:32], y[:32])]), epochs=1, progress=False,  # epochs=1 is fine
                    optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert history.epoch == [1]


@pytest.mark.parametrize("overrides, error, message", [
    ({"grad_clip": "1"}, TypeError, "grad_clip must be a positive number"),
    ({"grad_clip": True}, TypeError, "grad_clip must be a positive number"),
    ({"grad_clip": float("nan")}, ValueError, "grad_clip must be a positive finite number"),
    ({"grad_clip": float("inf")}, ValueError, "grad_clip must be a positive finite number"),
    ({"log_every": True}, ValueError, "log_every"),
    ({"resume": "yes"}, ValueError, r"resume must be None, True, False or 'force'"),
    ({"train_loader": 3}, TypeError, "train_loader must be iterable"),
])
def test_more_bad_arguments_raise_naming_what_is_allowed(tiny_loader, overrides, error, message):
    args, kwargs, untouched = bad_call(tiny_loader, **overrides)
    with pytest.raises(error, match=message):
        train(*args, **kwargs)
    assert_untouched(*untouched)


def test_a_checkpoint_path_that_is_a_folder_is_refused_before_training(tiny_loader, tmp_path):
    args, kwargs, untouched = bad_call(tiny_loader, checkpoint=tmp_path)
    with pytest.raises(ValueError, match="is a folder; give a file path"):
        train(*args, **kwargs)
    assert_untouched(*untouched)


@pytest.mark.parametrize("batches, message", [
    ([torch.zeros(4, 1, 4, 4)], r"got a Tensor \(inputs without labels\?\)"),
    ([torch.zeros(2, 16)], r"got a Tensor"),  # would unpack into two rows without the check
    ([(torch.zeros(4, 1, 4, 4), torch.zeros(4, dtype=torch.long), torch.ones(4))],
     r"got a tuple of 3 items.*fold sample weights into loss_fn"),
])
def test_loaders_that_do_not_yield_pairs_get_a_clear_error(batches, message):
    for run in (lambda m: train(m, batches, optimizer=torch.optim.SGD(m.parameters(), lr=0.1), epochs=1,
                                progress=False),
                lambda m: evaluate(m, batches)):
        with pytest.raises(TypeError, match=message):
            run(tiny_mlp())


@pytest.mark.parametrize("labels, error, message", [
    (F.one_hot(torch.arange(10) % 2, 2).float(), TypeError, r"class indices.*one-hot or soft labels"),
    (torch.ones(10, dtype=torch.bool), TypeError, "class indices"),
    (torch.zeros(10, 1, dtype=torch.long), ValueError, r"labels of shape \(10,\)"),
])
def test_evaluate_refuses_labels_that_are_not_class_indices(labels, error, message):
    """With one-hot labels in a batch of 10 the old evaluate reported an accuracy of 1.0."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with pytest.raises(error, match=message):
        evaluate(model, [(torch.randn(10, 1, 4, 4), labels)])


# --- the History survives whatever stops training (issue 11) -----------------------------------


class FailingLoader:
    """Yields ``loader``'s batches, then raises ``error`` at batch ``at`` of epoch ``epoch``."""

    def __init__(self, loader, error, epoch, at):
        self.loader, self.error, self.epoch, self.at, self.epochs = loader, error, epoch, at, 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.epochs += 1
        for index, batch in enumerate(self.loader):
            if self.epochs == self.epoch and index == self.at:
                raise self.error
            yield batch


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("disk went away")])
def test_an_exception_mid_epoch_keeps_the_history(tiny_loader, val_loader, error):
    torch.manual_seed(0)
    model = tiny_mlp()
    mine = History()
    with pytest.raises(type(error)) as info:
        train(model, FailingLoader(tiny_loader, error, epoch=2, at=5), epochs=3, val_loader=val_loader,
              optimizer=torch.optim.SGD(model.parameters(), lr=0.1), progress=False, log_every=50,
              history=mine)
    history = info.value.history
    assert history is mine  # also filled in place: the caller holds it whatever happens
    assert history.epoch == [1] and len(history.val_acc) == 1
    assert history.step == list(range(STEPS_PER_EPOCH + 5))  # the partial epoch's steps too
    assert len(history.lr) == len(history.train_loss) == STEPS_PER_EPOCH + 5
    assert any("attached to this exception as .history" in note for note in info.value.__notes__)


def test_a_failing_on_epoch_end_or_scheduler_keeps_the_history(tiny_loader):
    torch.manual_seed(0)
    model = tiny_mlp()

    def hook(epoch, history):
        if epoch == 1:
            raise ValueError("plot failed")

    with pytest.raises(ValueError, match="plot failed") as info:
        train(model, tiny_loader, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=3,
              on_epoch_end=hook, progress=False)
    assert info.value.history.epoch == [1, 2]


def test_progress_false_prints_nothing_even_when_resuming_and_diagnosing(tiny_data, tmp_path, capsys):
    x, y = tiny_data
    path = tmp_path / "run.ckpt"
    torch.manual_seed(0)
    model = tiny_mlp()
    train(model, TensorLoader(x, y, batch_size=32), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
          epochs=1, checkpoint=path, progress=False)
    x = x.clone()
    x[:] = float("nan")
    with pytest.warns(TrainingWarning):  # the diagnosis is a warning (filterable), not a print
        history = train(model, TensorLoader(x, y, batch_size=32), epochs=2, checkpoint=path, progress=False,
                        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert history.notes == [f"Resumed from {path}: 1 epoch(s) already done."]
    assert history.diagnosis is not None
    assert capsys.readouterr() == ("", "")
