"""Tests for course_utils.lr_finder: an oracle loop, no side effects on the caller, bad input."""

from __future__ import annotations

import copy
import dataclasses
import functools
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils.data import TensorLoader
from course_utils.lr_finder import LRFinderResult, lr_range_test, suggest_lr


def tiny_model(dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(16, 2))


SGD = functools.partial(torch.optim.SGD, momentum=0.9)


def test_result_shape_and_sweep(tiny_loader):
    result = lr_range_test(tiny_model(), tiny_loader, optimizer=SGD, start_lr=1e-4, end_lr=1.0,
                           num_steps=20, diverge_factor=1e9)
    assert isinstance(result, LRFinderResult)
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) == 20
    assert result.lrs[0] == pytest.approx(1e-4) and result.lrs[-1] == pytest.approx(1.0)
    ratios = np.diff(np.log(result.lrs))
    assert np.allclose(ratios, ratios[0])  # an exponential sweep
    assert not result.diverged
    assert 1e-4 <= result.suggested_lr <= 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.suggested_lr = 1.0


def test_matches_a_loop_written_by_hand(tiny_loader, tiny_data):
    model = tiny_model()
    result = lr_range_test(model, tiny_loader, optimizer=SGD, start_lr=1e-3, end_lr=1.0,
                           num_steps=12, beta=0.9, diverge_factor=1e9)
    clone = copy.deepcopy(model)
    optimizer = SGD(clone.parameters())
    loader = TensorLoader(*tiny_data, batch_size=32, shuffle=True, seed=0)  # same as tiny_loader
    batches = iter(loader)
    losses, smoothed, average = [], [], 0.0
    for step in range(12):
        lr = 1e-3 * 1000 ** (step / 11)
        optimizer.param_groups[0]["lr"] = lr
        try:
            x, y = next(batches)
        except StopIteration:  # 256 examples = 8 batches: the test cycles over the loader
            batches = iter(loader)
            x, y = next(batches)
        loss = nn.functional.cross_entropy(clone(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        average = 0.9 * average + 0.1 * losses[-1]
        smoothed.append(average / (1 - 0.9 ** (step + 1)))
    assert list(result.losses) == losses
    torch.testing.assert_close(list(result.smoothed), smoothed)


def test_stops_when_the_loss_blows_up(tiny_data):
    x, _ = tiny_data
    y = torch.randint(0, 2, (len(x),), generator=torch.Generator().manual_seed(1))  # not learnable
    loader = TensorLoader(x, y, batch_size=32, shuffle=True, seed=0)
    result = lr_range_test(tiny_model(), loader, optimizer=SGD, start_lr=1e-3, end_lr=1e4,
                           num_steps=100)
    assert result.diverged
    assert len(result.lrs) < 100
    last = result.smoothed[-1]
    assert not math.isfinite(last) or last > 4 * min(result.smoothed[:-1])
    assert result.suggested_lr < result.lrs[-1]


def test_leaves_model_optimizer_loader_and_rng_untouched(tiny_loader):
    model = tiny_model(dropout=0.5)  # dropout draws from the global RNG
    model.eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = next(iter(TensorLoader(*tiny_loader_tensors(tiny_loader), batch_size=32)))
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()  # give the caller's optimizer some momentum state
    weights = copy.deepcopy(model.state_dict())
    optimizer_state = copy.deepcopy(optimizer.state_dict())
    rng = torch.get_rng_state()
    shuffle = tiny_loader.state_dict()["generator"].clone()

    lr_range_test(model, tiny_loader, optimizer=SGD, num_steps=10)

    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert not model.training  # the copy was put in train mode, not the caller's model
    after = optimizer.state_dict()
    assert after["param_groups"] == optimizer_state["param_groups"]
    assert all(torch.equal(after["state"][k]["momentum_buffer"], v["momentum_buffer"])
               for k, v in optimizer_state["state"].items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(tiny_loader.state_dict()["generator"], shuffle)


def tiny_loader_tensors(loader):
    return loader.x, loader.y


def test_a_dataloader_shuffling_from_the_global_rng_is_left_alone(tiny_data):
    loader = DataLoader(TensorDataset(*tiny_data), batch_size=32, shuffle=True)
    model = tiny_model()  # seeds: before the RNG state is taken
    rng = torch.get_rng_state()
    lr_range_test(model, loader, optimizer=SGD, num_steps=10)
    assert torch.equal(torch.get_rng_state(), rng)


def test_suggest_lr_picks_the_steepest_descent():
    lrs = np.logspace(-5, 1, 61)
    losses = 2.0 - np.tanh(np.log10(lrs) + 2)  # steepest at lr = 1e-2
    losses[-5:] = [3, 4, 6, 9, 12]  # the blow-up after the minimum is ignored
    assert suggest_lr(lrs, losses) == pytest.approx(1e-2)


def test_suggest_lr_falls_back_when_the_minimum_comes_first():
    lrs = [1e-3, 1e-2, 1e-1, 1.0, 10.0]
    assert suggest_lr(lrs, [1.0, 2.0, 3.0, 4.0, float("nan")]) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="equal length"):
        suggest_lr([1e-3], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive and finite"):
        suggest_lr([1e-3, float("inf")], [1.0, 2.0])


def test_a_test_whose_first_loss_is_nan_suggests_nothing(tiny_data):
    """One NaN loss used to give the suggestion start_lr / 10 = 1e-07."""
    x, y = tiny_data
    x = x.clone()
    x[:] = float("nan")
    with pytest.raises(ValueError, match="no finite loss to suggest an LR from.*not the problem"):
        lr_range_test(tiny_model(), TensorLoader(x, y, batch_size=32), optimizer=SGD, num_steps=10)
    with pytest.raises(ValueError, match="no finite loss"):
        suggest_lr([1e-6], [float("nan")])


@pytest.mark.parametrize("kwargs, error, words", [
    ({"start_lr": 1.0, "end_lr": 0.1}, ValueError, "0 < start_lr < end_lr"),
    ({"start_lr": 0.0}, ValueError, "0 < start_lr < end_lr"),
    ({"end_lr": float("inf")}, ValueError, "both finite"),  # it used to suggest inf
    ({"start_lr": float("nan")}, ValueError, "0 < start_lr < end_lr"),
    ({"num_steps": 2}, ValueError, "num_steps must be an int >= 5"),
    ({"beta": 1.0}, ValueError, "beta must be in [0, 1)"),
    ({"diverge_factor": 1.0}, ValueError, "diverge_factor must be > 1"),
])
def test_bad_numbers(tiny_loader, kwargs, error, words):
    with pytest.raises(error) as info:
        lr_range_test(tiny_model(), tiny_loader, optimizer=SGD, **kwargs)
    assert words in str(info.value)


def test_bad_model_optimizer_and_loader(tiny_loader):
    model = tiny_model()
    with pytest.raises(TypeError, match="optimizer class or a factory"):
        lr_range_test(model, tiny_loader, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        lr_range_test("model", tiny_loader, optimizer=SGD)
    with pytest.raises(TypeError, match="must return an Optimizer"):
        lr_range_test(model, tiny_loader, optimizer=lambda params: None)
    with pytest.raises(ValueError, match="no batches"):
        lr_range_test(model, [], optimizer=SGD)


def test_plot_lr_finder(tiny_loader):
    from course_utils.plots import plot_lr_finder

    result = lr_range_test(tiny_model(), tiny_loader, optimizer=SGD, num_steps=30, end_lr=100.0)
    ax = plot_lr_finder(result)
    assert ax.get_xscale() == "log"
    assert len(ax.lines) == 3  # batch loss, smoothed loss, suggestion
    assert "suggested lr" in ax.get_legend().get_texts()[-1].get_text()
    with pytest.raises(TypeError, match="LRFinderResult"):
        plot_lr_finder({"lrs": [1.0]})
