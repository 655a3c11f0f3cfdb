"""Checkpoints (course_utils.checkpoint) and resuming train() from them without traps."""

from __future__ import annotations

import copy
import os
import time

import numpy as np
import pytest
import torch
from torch import nn

from course_utils import files
from course_utils.checkpoint import (
    check_storable,
    load_checkpoint,
    read_checkpoint,
    run_settings,
    save_checkpoint,
    settings_changes,
)
from course_utils.data import TensorLoader
from course_utils.models import mlp
from course_utils.train import TrainingWarning, train


def tiny_mlp() -> nn.Sequential:
    return mlp(16, (32,), 2)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def first_epoch(path, tiny_data, *, lr=0.1, make=torch.optim.SGD, amp=None, grad_clip=None):
    """One epoch with a checkpoint; returns the model."""
    torch.manual_seed(0)
    model = tiny_mlp()
    train(model, TensorLoader(*tiny_data, batch_size=32, shuffle=True, seed=0), epochs=1, progress=False,
          optimizer=make(model.parameters(), lr=lr), checkpoint=path, amp=amp, grad_clip=grad_clip)
    return model


def resume(path, tiny_data, *, lr=0.1, make=torch.optim.SGD, amp=None, grad_clip=None, resume=None,
           epochs=2):
    torch.manual_seed(1)
    model = tiny_mlp()
    optimizer = make(model.parameters(), lr=lr)
    history = train(model, TensorLoader(*tiny_data, batch_size=32, shuffle=True, seed=0), epochs=epochs,
                    optimizer=optimizer, checkpoint=path, progress=False, amp=amp, grad_clip=grad_clip,
                    resume=resume)
    return model, optimizer, history


# --- resuming with other settings ----------------------------------------------------------------


@pytest.mark.parametrize("change, named", [
    ({"lr": 0.001}, "lr: 0.1 saved, 0.001 now"),
    ({"make": torch.optim.Adam}, "optimizer: 'SGD' saved, 'Adam' now"),
    ({"amp": "bf16"}, "amp: None saved, 'bf16' now"),
    ({"grad_clip": 1.0}, "grad_clip: None saved, 1.0 now"),
])
def test_a_checkpoint_of_other_settings_is_refused_and_nothing_changes(tmp_path, tiny_data, change, named):
    """Rerunning with lr=0.001 and the same path used to train on silently at the saved 0.1."""
    path = tmp_path / "run.ckpt"
    first_epoch(path, tiny_data)
    saved = path.read_bytes()
    torch.manual_seed(1)
    model = tiny_mlp()
    before = copy.deepcopy(model.state_dict())
    kwargs = {"lr": 0.1, "amp": None, "grad_clip": None, **change}
    optimizer = kwargs.pop("make", torch.optim.SGD)(model.parameters(), lr=kwargs.pop("lr"))
    with pytest.raises(ValueError, match="was saved by a run with other settings") as info:
        train(model, TensorLoader(*tiny_data, batch_size=32), optimizer=optimizer, epochs=2, progress=False,
              checkpoint=path, **kwargs)
    assert named in str(info.value) and "resume='force'" in str(info.value)
    assert same_weights(model.state_dict(), before)  # refused before anything was loaded
    assert optimizer.state == {} and path.read_bytes() == saved


@pytest.mark.parametrize("resume_as", [True, "force"])
def test_force_resumes_with_the_new_settings_and_says_so(tmp_path, tiny_data, resume_as):
    path = tmp_path / "run.ckpt"
    first = first_epoch(path, tiny_data)
    with pytest.warns(TrainingWarning, match="lr: 0.1 saved, 0.001 now"):
        model, optimizer, history = resume(path, tiny_data, lr=0.001, resume=resume_as)
    assert history.epoch == [1, 2]
    assert history.lr[:8] == [0.1] * 8 and history.lr[8:] == [0.001] * 8  # the new LR from here on
    assert optimizer.param_groups[0]["lr"] == 0.001
    assert "Resumed with changed settings: lr: 0.1 saved, 0.001 now" in history.notes
    assert not same_weights(model.state_dict(), first.state_dict())  # trained on from epoch 1


def test_resume_false_starts_over_and_overwrites(tmp_path, tiny_data):
    path = tmp_path / "run.ckpt"
    first_epoch(path, tiny_data)
    _, _, history = resume(path, tiny_data, lr=0.001, resume=False, epochs=1)
    assert history.notes == [] and history.lr == [0.001] * 8
    assert read_checkpoint(path)["settings"]["param_groups"][0]["lr"] == 0.001


def test_an_sgd_checkpoint_loaded_into_adam_names_both_and_changes_nothing(tmp_path, tiny_data):
    """It used to fail with KeyError: 'betas' from inside adam.py."""
    path = tmp_path / "run.ckpt"
    first_epoch(path, tiny_data)
    model = tiny_mlp()
    before = copy.deepcopy(model.state_dict())
    adam = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="saved from SGD, this optimizer is Adam"):
        load_checkpoint(path, model=model, optimizer=adam)
    assert same_weights(model.state_dict(), before) and adam.state == {}
    with pytest.raises(ValueError, match="saved from SGD, this optimizer is Adam"):
        resume(path, tiny_data, make=torch.optim.Adam, resume="force")
    # A checkpoint without the settings record still names the missing Adam settings.
    state = read_checkpoint(path)
    del state["settings"]
    save_checkpoint(path, **{k: v for k, v in state.items() if k not in ("format", "rng")})
    with pytest.raises(ValueError, match=r"lacks the settings \[.*'betas'.*\] this Adam needs"):
        load_checkpoint(path, model=model, optimizer=adam)
    assert same_weights(model.state_dict(), before)


@pytest.mark.parametrize("bad", ["groups", "state_shape", "scheduler"])
def test_a_failed_load_leaves_model_and_optimizer_untouched(tmp_path, tiny_data, bad):
    """The model used to be overwritten before the optimizer state failed to load."""
    path = tmp_path / "run.ckpt"
    first_epoch(path, tiny_data)
    model = tiny_mlp()
    before = copy.deepcopy(model.state_dict())
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    scheduler = None
    if bad == "groups":
        optimizer = torch.optim.SGD([{"params": [p]} for p in params], lr=0.1)
    elif bad == "state_shape":
        state = read_checkpoint(path)
        state["optimizer"]["state"] = {0: {"momentum_buffer": torch.zeros(3)}}
        save_checkpoint(path, **{k: v for k, v in state.items() if k not in ("format", "rng")})
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)  # the run had none
    with pytest.raises(ValueError, match="optimizer|scheduler"):
        load_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler)
    assert same_weights(model.state_dict(), before)
    assert optimizer.state == {}


# --- mixed precision across runs -----------------------------------------------------------------


def test_resuming_an_fp16_run_restores_its_grad_scaler(tmp_path, tiny_data):
    straight, stopped = tmp_path / "straight.ckpt", tmp_path / "stopped.ckpt"
    for path, epochs in ((straight, 2), (stopped, 1)):
        torch.manual_seed(0)
        model = tiny_mlp()
        train(model, TensorLoader(*tiny_data, batch_size=32, shuffle=True, seed=0), epochs=epochs, amp="fp16",
              optimizer=torch.optim.SGD(model.parameters(), lr=0.1), checkpoint=path, progress=False)
    assert read_checkpoint(stopped)["scaler"]["_growth_tracker"] == 8  # fp16 state after one epoch
    torch.manual_seed(0)
    model = tiny_mlp()
    loader = TensorLoader(*tiny_data, batch_size=32, shuffle=True, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = train(model, loader, epochs=2, amp="fp16", optimizer=optimizer, checkpoint=stopped,
                    progress=False)
    assert history.notes == [f"Resumed from {stopped}: 1 epoch(s) already done."]
    want, got = read_checkpoint(straight), read_checkpoint(stopped)
    assert got["scaler"] == want["scaler"]  # a fresh scaler would count from 0 again: 8, not 16
    assert got["scaler"]["_growth_tracker"] == 16
    assert got["history"]["train_loss"] == want["history"]["train_loss"]
    assert same_weights(got["model"], want["model"])


@pytest.mark.parametrize("before, after", [("fp16", None), (None, "fp16"), ("fp16", "bf16")])
def test_changing_amp_between_runs_is_refused_or_forced_cleanly(tmp_path, tiny_data, before, after):
    """It used to fail inside GradScaler.load_state_dict with a raw error."""
    path = tmp_path / "run.ckpt"
    first_epoch(path, tiny_data, amp=before)
    with pytest.raises(ValueError, match=f"amp: {before!r} saved, {after!r} now"):
        resume(path, tiny_data, amp=after)
    with pytest.warns(TrainingWarning, match="amp"):
        _, _, history = resume(path, tiny_data, amp=after, resume="force")
    assert history.epoch == [1, 2] and history.diagnosis is None


# --- saving ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, named", [
    (np.float64(0.5), "numpy.float64"),
    (lambda epoch: 0.1, "function"),
    ({"inner": [1, np.int64(3)]}, r"\['inner'\]\[1\]"),
    (nn.Linear(2, 2), "torch.nn.modules.linear.Linear"),
])
def test_save_refuses_what_weights_only_loading_would_refuse(tmp_path, value, named):
    path = tmp_path / "run.ckpt"
    with pytest.raises(ValueError, match=named) as info:
        save_checkpoint(path, epoch=1, extra=value)
    assert "weights_only=True" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one


def test_everything_train_saves_passes_the_check_and_loads_back(tmp_path, tiny_data):
    path = tmp_path / "run.ckpt"
    torch.manual_seed(0)
    model = tiny_mlp()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=16)
    train(model, TensorLoader(*tiny_data, batch_size=32, shuffle=True, seed=0), optimizer=optimizer,
          scheduler=scheduler, epochs=2, checkpoint=path, progress=False, amp="fp16", grad_clip=1.0)
    state = read_checkpoint(path)
    check_storable(state)
    settings = state["settings"]  # as the run started: OneCycleLR has changed the LR since
    assert (settings["optimizer"], settings["scheduler"], settings["amp"], settings["grad_clip"]) == (
        "AdamW", "OneCycleLR", "fp16", 1.0)
    assert settings["param_groups"][0]["lr"] == pytest.approx(0.1 / 25)  # OneCycleLR's first LR
    assert optimizer.param_groups[0]["lr"] != settings["param_groups"][0]["lr"]


def test_a_failed_save_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, epoch=1)
    before = path.read_bytes()

    def disk_full(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, epoch=2)
    assert path.read_bytes() == before and files.temp_files(path) == []


def test_stale_temporary_checkpoints_are_removed_on_the_next_save(tmp_path):
    path = tmp_path / "run.ckpt"
    stale, live = tmp_path / ".run.ckpt.4242.tmp", tmp_path / ".run.ckpt.abcd1234.tmp"
    for leftover in (stale, live):
        leftover.write_bytes(b"partial")
    old = time.time() - 2 * files.STALE_SECONDS
    os.utime(stale, (old, old))
    save_checkpoint(path, epoch=1)
    assert not stale.exists() and live.exists()
    assert read_checkpoint(path)["epoch"] == 1


def test_save_refuses_a_folder(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        save_checkpoint(tmp_path, epoch=1)


def test_settings_changes_lists_each_difference():
    model = tiny_mlp()
    a = run_settings(torch.optim.SGD(model.parameters(), lr=0.1), None, amp=None, grad_clip=None)
    b = run_settings(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), None, amp="bf16", grad_clip=2)
    assert settings_changes(a, a) == []
    assert settings_changes(a, b) == ["amp: None saved, 'bf16' now", "grad_clip: None saved, 2.0 now",
                                      "momentum: 0 saved, 0.9 now"]
