"""Tests for course_utils.batching: linear LR scaling, gradient accumulation, memory estimates."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from course_utils.batching import (
    accumulated_step,
    activation_bytes,
    linear_scaled_lr,
    saved_tensor_bytes,
)
from course_utils.models import mlp, small_cnn
from course_utils.train import train_step

# --- linear_scaled_lr ----------------------------------------------------------------------------


def test_linear_scaled_lr_exact_values():
    assert linear_scaled_lr(0.1, 64, base_batch_size=64) == 0.1
    assert linear_scaled_lr(0.1, 512, base_batch_size=64) == pytest.approx(0.8)
    assert linear_scaled_lr(0.1, 32, base_batch_size=64) == pytest.approx(0.05)


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    ((0.0, 64), {"base_batch_size": 64}, "base_lr"),
    ((-0.1, 64), {"base_batch_size": 64}, "base_lr"),
    ((0.1, 0), {"base_batch_size": 64}, "batch_size"),
    ((0.1, 64.0), {"base_batch_size": 64}, "batch_size"),
    ((0.1, 64), {"base_batch_size": True}, "base_batch_size"),
])
def test_linear_scaled_lr_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        linear_scaled_lr(*args, **kwargs)


# --- accumulated_step ----------------------------------------------------------------------------


def twins(model: nn.Module, lr: float = 0.5, momentum: float = 0.9):
    other = copy.deepcopy(model)
    return (model, torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum),
            other, torch.optim.SGD(other.parameters(), lr=lr, momentum=momentum))


@pytest.mark.parametrize("micro_batch", [1, 7, 32, 64, 256, 1000])
def test_accumulation_equals_large_batch_without_batchnorm(tiny_data, micro_batch):
    x, y = tiny_data[0][:64], tiny_data[1][:64]
    torch.manual_seed(0)
    big, opt_big, acc, opt_acc = twins(small_cnn(num_classes=2, width=4, norm="none"))
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(3):
        loss_big = train_step(big, x, y, optimizer=opt_big, loss_fn=loss_fn)
        loss_acc = accumulated_step(acc, x, y, optimizer=opt_acc, loss_fn=loss_fn,
                                    micro_batch=micro_batch)
        torch.testing.assert_close(loss_acc, loss_big)
    for p, q in zip(acc.parameters(), big.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_accumulation_differs_with_batchnorm(tiny_data):
    x, y = tiny_data[0][:64], tiny_data[1][:64]
    torch.manual_seed(0)
    big, opt_big, acc, opt_acc = twins(small_cnn(num_classes=2, width=4, norm="batch"))
    loss_fn = nn.CrossEntropyLoss()
    train_step(big, x, y, optimizer=opt_big, loss_fn=loss_fn)
    accumulated_step(acc, x, y, optimizer=opt_acc, loss_fn=loss_fn, micro_batch=8)
    weight_diff = max((p - q).abs().max().item() for p, q in
                      zip(acc.parameters(), big.parameters(), strict=True))
    assert weight_diff > 1e-4
    assert not torch.allclose(acc[1].running_mean, big[1].running_mean)
    # one micro-batch as large as the batch is the same computation
    torch.manual_seed(0)
    big, opt_big, acc, opt_acc = twins(small_cnn(num_classes=2, width=4, norm="batch"))
    train_step(big, x, y, optimizer=opt_big, loss_fn=loss_fn)
    accumulated_step(acc, x, y, optimizer=opt_acc, loss_fn=loss_fn, micro_batch=64)
    torch.testing.assert_close(acc[1].running_mean, big[1].running_mean)


def test_accumulation_bad_input(tiny_data):
    x, y = tiny_data
    model = mlp(16, (8,), 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for micro_batch in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="micro_batch"):
            accumulated_step(model, x, y, optimizer=optimizer, loss_fn=nn.CrossEntropyLoss(),
                             micro_batch=micro_batch)
    with pytest.raises(ValueError, match="same length"):
        accumulated_step(model, x, y[:10], optimizer=optimizer, loss_fn=nn.CrossEntropyLoss(),
                         micro_batch=8)
    with pytest.raises(ValueError, match="non-empty"):
        accumulated_step(model, x[:0], y[:0], optimizer=optimizer,
                         loss_fn=nn.CrossEntropyLoss(), micro_batch=8)
    with pytest.raises(ValueError, match="reduction='mean'"):
        accumulated_step(model, x, y, optimizer=optimizer,
                         loss_fn=nn.CrossEntropyLoss(reduction="sum"), micro_batch=8)


# --- activation_bytes / saved_tensor_bytes -----------------------------------------------------


def test_activation_bytes_counts_leaf_outputs_exactly():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 2))
    x = torch.randn(3, 3, 4)
    # Flatten 3x12, Linear 3x5, ReLU 3x5, Linear 3x2 floats
    assert activation_bytes(model, x) == 4 * (36 + 15 + 15 + 6)


def test_activation_bytes_is_linear_in_batch_and_leaves_model_alone():
    model = small_cnn(norm="batch").train()
    state = copy.deepcopy(model.state_dict())
    one = activation_bytes(model, torch.randn(1, 1, 28, 28))
    assert activation_bytes(model, torch.randn(8, 1, 28, 28)) == 8 * one
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
    for key, value in model.state_dict().items():
        if not key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(value, state[key])


def test_saved_tensor_bytes_of_a_linear_layer():
    model = nn.Sequential(nn.Linear(10, 4))
    x = torch.randn(6, 10)
    # autograd keeps the input (for the weight gradient); the weight itself is excluded
    assert saved_tensor_bytes(model, x) == 6 * 10 * 4


def test_estimate_and_measurement_agree_within_a_factor_of_two():
    model = small_cnn(norm="none")
    x = torch.randn(16, 1, 28, 28)
    estimate, measured = activation_bytes(model, x), saved_tensor_bytes(model, x)
    assert 0.5 < estimate / measured < 2


def test_memory_helpers_reject_non_modules():
    for fn in (activation_bytes, saved_tensor_bytes):
        with pytest.raises(TypeError, match="nn.Module"):
            fn(lambda t: t, torch.randn(2, 3))


def test_saved_tensor_bytes_counts_a_view_by_its_own_bytes():
    model = nn.Linear(10, 3)
    whole = torch.randn(100, 10)
    # the linear layer saves its input: 6 rows of the 100, not the whole storage
    assert saved_tensor_bytes(model, whole[:6]) == 6 * 10 * 4
