"""Tests for course_utils.imbalance: the subset, the weights, the weighted sampler, bad input."""

from __future__ import annotations

import pytest
import torch

from course_utils.data import ImageDataset
from course_utils.imbalance import WeightedTensorLoader, class_counts, class_weights, make_imbalanced


@pytest.fixture
def dataset():
    targets = torch.arange(3).repeat_interleave(100)
    images = torch.zeros(300, 1, 2, 2, dtype=torch.uint8)
    return ImageDataset(images, targets, ["a", "b", "c"], name="toy", source="test")


def test_make_imbalanced_keeps_the_fractions(dataset):
    small = make_imbalanced(dataset, {1: 0.05, 2: 0.5}, seed=0)
    assert class_counts(small.targets, 3).tolist() == [100, 5, 50]
    again = make_imbalanced(dataset, {1: 0.05, 2: 0.5}, seed=0)
    assert torch.equal(small.targets, again.targets)


def test_make_imbalanced_keeps_at_least_one(dataset):
    assert class_counts(make_imbalanced(dataset, {0: 0.001}).targets, 3)[0] == 1


@pytest.mark.parametrize("keep", [{3: 0.5}, {0: 0.0}, {0: 1.5}])
def test_make_imbalanced_bad_input(dataset, keep):
    with pytest.raises(ValueError):
        make_imbalanced(dataset, keep)


def test_class_weights_balance_the_total_weight():
    counts = torch.tensor([100, 10, 50])
    weights = class_weights(counts)
    totals = weights.double() * counts
    torch.testing.assert_close(totals, torch.full((3,), totals[0].item(), dtype=torch.float64))
    torch.testing.assert_close(class_weights(torch.tensor([7, 7])), torch.ones(2))
    torch.testing.assert_close(class_weights(counts, power=0.5), weights.sqrt())


def test_class_weights_and_counts_bad_input():
    with pytest.raises(ValueError, match="positive"):
        class_weights(torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="power"):
        class_weights(torch.tensor([3, 1]), power=-1)
    with pytest.raises(ValueError):
        class_counts(torch.tensor([0, 5]), 3)
    with pytest.raises(ValueError):
        class_counts(torch.tensor([0.0, 1.0]), 3)
    with pytest.raises(ValueError):
        class_counts(torch.tensor([0, 1]), 0)


def test_weighted_loader_balances_classes_and_keeps_the_epoch_length():
    y = torch.cat([torch.zeros(950, dtype=torch.long), torch.ones(50, dtype=torch.long)])
    x = torch.arange(1000).float()[:, None]
    weights = class_weights(class_counts(y, 2))[y]
    loader = WeightedTensorLoader(x, y, weights, batch_size=64, seed=0)
    drawn = torch.cat([yb for _, yb in loader])
    assert len(drawn) == 1000 and len(loader) == 16
    assert 0.4 < drawn.float().mean().item() < 0.6  # about half from the 5% class
    first = torch.cat([xb for xb, _ in WeightedTensorLoader(x, y, weights, batch_size=64, seed=1)])
    second = torch.cat([xb for xb, _ in WeightedTensorLoader(x, y, weights, batch_size=64, seed=1)])
    assert torch.equal(first, second)


def test_weighted_loader_bad_input():
    x, y = torch.zeros(4, 1), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="shape"):
        WeightedTensorLoader(x, y, torch.ones(3), batch_size=2)
    with pytest.raises(ValueError, match="non-negative"):
        WeightedTensorLoader(x, y, torch.tensor([1.0, -1.0, 1.0, 1.0]), batch_size=2)
    with pytest.raises(ValueError, match="non-negative"):
        WeightedTensorLoader(x, y, torch.zeros(4), batch_size=2)
