"""Tests for course_utils.transfer: class splits, freezing, head swap, discriminative LRs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils.data import ImageDataset
from course_utils.models import small_cnn
from course_utils.transfer import (
    RESNET18_FILE,
    cached_hub_file,
    count_trainable,
    freeze,
    labels_per_class,
    param_groups_discriminative,
    relabel,
    replace_head,
    split_classes,
)


@pytest.fixture
def dataset():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 6, 6), dtype=torch.uint8, generator=generator)
    targets = torch.arange(40) % 4
    return ImageDataset(images, targets, ["a", "b", "c", "d"], name="toy", source="test")


def test_relabel_maps_positions_and_leaves_input():
    targets = torch.tensor([5, 7, 5, 9])
    copy = targets.clone()
    assert relabel(targets, [5, 7, 9]).tolist() == [0, 1, 0, 2]
    assert relabel(targets, [9, 7, 5]).tolist() == [2, 1, 2, 0]
    assert torch.equal(targets, copy)
    assert relabel(torch.tensor([], dtype=torch.int64), [1]).tolist() == []


@pytest.mark.parametrize(("classes", "error"), [([], TypeError), ("57", TypeError), ([1.0], TypeError),
                                                 ([5, 5], ValueError), ([5], ValueError),
                                                 ([-1, 5, 7], ValueError)])
def test_relabel_bad_input(classes, error):
    with pytest.raises(error):
        relabel(torch.tensor([5, 7]), classes)


def test_split_classes(dataset):
    images, targets = dataset.images.clone(), dataset.targets.clone()
    part = split_classes(dataset, [3, 1])
    assert len(part) == 20 and part.classes == ("d", "b")
    assert sorted(set(part.targets.tolist())) == [0, 1]
    # the image of each kept row is unchanged and its new label is the position of its old one
    rows = torch.nonzero(torch.isin(targets, torch.tensor([3, 1]))).flatten()
    assert torch.equal(part.images, images[rows])
    assert part.targets.tolist() == [0 if t == 3 else 1 for t in targets[rows].tolist()]
    assert torch.equal(dataset.images, images) and torch.equal(dataset.targets, targets)
    assert dataset.classes == ("a", "b", "c", "d")


@pytest.mark.parametrize(("classes", "error"), [([4], ValueError), ([0, 0], ValueError),
                                                 (3, TypeError), ([True], TypeError)])
def test_split_classes_bad_input(dataset, classes, error):
    with pytest.raises(error):
        split_classes(dataset, classes)


def test_labels_per_class_is_balanced_seeded_and_pure(dataset):
    state = torch.get_rng_state()
    few = labels_per_class(dataset, 3, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.bincount(few.targets, minlength=4).tolist() == [3, 3, 3, 3]
    assert torch.equal(labels_per_class(dataset, 3, seed=1).images, few.images)
    assert not torch.equal(labels_per_class(dataset, 3, seed=2).targets, few.targets) or not torch.equal(
        labels_per_class(dataset, 3, seed=2).images, few.images)
    assert len(dataset) == 40


@pytest.mark.parametrize("per_class", [0, 11, 2.0, True])
def test_labels_per_class_bad_input(dataset, per_class):
    with pytest.raises(ValueError):
        labels_per_class(dataset, per_class)


def test_freeze_and_unfreeze():
    model = small_cnn(width=4)
    weights = [p.detach().clone() for p in model.parameters()]
    assert freeze(model, 8) is model
    assert all(not p.requires_grad for p in model[:8].parameters())
    assert all(p.requires_grad for p in model[8:].parameters())
    assert count_trainable(model) == model[-1].weight.numel() + model[-1].bias.numel()
    freeze(model, 0)
    assert count_trainable(model) == sum(p.numel() for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))


@pytest.mark.parametrize(("model", "until", "error"), [
    (nn.Linear(2, 2), 0, TypeError), (small_cnn(width=4), 1.5, TypeError),
    (small_cnn(width=4), True, TypeError), (small_cnn(width=4), -1, ValueError),
    (small_cnn(width=4), 12, ValueError)])
def test_freeze_bad_input(model, until, error):
    with pytest.raises(error):
        freeze(model, until)


def test_replace_head_copies_and_leaves_original():
    model = small_cnn(width=4)
    freeze(model, 8)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    new = replace_head(model, 3)
    assert new[-1].out_features == 3 and new[-1].in_features == model[-1].in_features
    assert new[-1].weight.requires_grad
    assert model[-1].out_features == 10
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    for (name, a), b in zip(list(new.state_dict().items())[:-2], list(state.values())[:-2], strict=True):
        assert torch.equal(a, b), name
    # a deep copy: training the new body does not move the old one
    next(new.parameters()).data.add_(1.0)
    assert torch.equal(next(model.parameters()), state["0.weight"])
    # requires_grad travels with the copy (the body stays frozen)
    assert not new[0].weight.requires_grad
    assert new(torch.zeros(2, 1, 28, 28)).shape == (2, 3)


@pytest.mark.parametrize(("model", "num_classes", "error"), [
    (nn.Linear(2, 2), 3, TypeError), (nn.Sequential(nn.Linear(2, 2), nn.ReLU()), 3, TypeError),
    (nn.Sequential(nn.Linear(2, 2)), 0, ValueError), (nn.Sequential(nn.Linear(2, 2)), 2.0, ValueError)])
def test_replace_head_bad_input(model, num_classes, error):
    with pytest.raises(error):
        replace_head(model, num_classes)


def test_param_groups_discriminative_matches_hand_written_sgd():
    torch.manual_seed(0)
    model = small_cnn(width=4)
    groups = param_groups_discriminative(model, [0.01, 0.1, 1.0], boundaries=(4, 8))
    assert [g["lr"] for g in groups] == [0.01, 0.1, 1.0]
    assert [len(g["params"]) for g in groups] == [3, 3, 2]  # conv (no bias) + BN; conv + BN; linear
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    nn.functional.cross_entropy(model(x), y).backward()
    torch.optim.SGD(groups, lr=123.0).step()
    lr_of = [0.01] * 3 + [0.1] * 3 + [1.0] * 2
    for lr, b, p in zip(lr_of, before, model.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), b - lr * p.grad)


def test_param_groups_discriminative_skips_frozen():
    model = freeze(small_cnn(width=4), 4)
    groups = param_groups_discriminative(model, [0.1, 1.0], boundaries=(8,))
    assert sum(len(g["params"]) for g in groups) == 5
    with pytest.raises(ValueError, match="no trainable"):
        param_groups_discriminative(model, [0.1, 1.0], boundaries=(4,))


@pytest.mark.parametrize(("lrs", "boundaries"), [
    ([0.1, 1.0], ()), ([0.1, 1.0], (4, 8)), ([0.1, 0.0], (4,)), ([0.1, -1.0], (4,)),
    ([0.1, 1.0, 2.0], (8, 4)), ([0.1, 1.0], (0,)), ([0.1, 1.0], (11,)), ([0.1, 1.0], (4.0,))])
def test_param_groups_discriminative_bad_input(lrs, boundaries):
    with pytest.raises(ValueError):
        param_groups_discriminative(small_cnn(width=4), lrs, boundaries=boundaries)
    with pytest.raises(TypeError):
        param_groups_discriminative(nn.Linear(2, 2), [0.1], boundaries=())


def test_cached_hub_file_only_looks(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert cached_hub_file() is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / RESNET18_FILE).write_bytes(b"x")
    assert cached_hub_file() == tmp_path / "checkpoints" / RESNET18_FILE
    for bad in ("", "a/b.pth", 3):
        with pytest.raises(ValueError):
            cached_hub_file(bad)
