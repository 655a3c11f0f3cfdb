"""Tests for the transfer CNN and the pretrained-weights cache keys (course_utils.transfer)."""

from __future__ import annotations

import pytest
import torch

from course_utils.data import ImageDataset
from course_utils.transfer import dataset_fingerprint, freeze, pretrained_path, transfer_cnn


def _data(seed: int = 0) -> ImageDataset:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (12, 1, 28, 28), dtype=torch.uint8, generator=generator)
    return ImageDataset(images, torch.arange(12) % 3, ["a", "b", "c"], name="toy", source="test")


def test_transfer_cnn_shapes_and_backbone():
    model = transfer_cnn(5, width=4)
    x = torch.randn(3, 1, 28, 28)
    assert model(x).shape == (3, 5)
    assert model[:11](x).shape == (3, 16)  # the backbone: 4 * width features per image
    assert transfer_cnn(in_channels=3)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert sum(p.numel() for p in transfer_cnn().parameters()) == 94_698
    freeze(model, until=11)
    assert [p.requires_grad for p in model.parameters()][-2:] == [True, True]
    assert not any(p.requires_grad for p in model[:11].parameters())


@pytest.mark.parametrize("kwargs", [{"num_classes": 0}, {"width": 2.0}, {"in_channels": True}])
def test_transfer_cnn_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        transfer_cnn(**kwargs)


def test_fingerprint_follows_the_data():
    data = _data()
    assert dataset_fingerprint(data) == dataset_fingerprint(_data())
    assert dataset_fingerprint(data) != dataset_fingerprint(_data(seed=1))
    relabelled = ImageDataset(data.images, (data.targets + 1) % 3, data.classes, name="toy", source="test")
    assert dataset_fingerprint(relabelled) != dataset_fingerprint(data)
    assert dataset_fingerprint(data.select(torch.arange(11, -1, -1))) != dataset_fingerprint(data)


def test_pretrained_path_is_keyed_by_the_whole_config(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    config = {"data": "abc", "epochs": 2, "device": "cpu"}
    path = pretrained_path("source", config)
    assert path.parent == tmp_path / "pretrained" and path.name.startswith("source-")
    assert path == pretrained_path("source", dict(reversed(list(config.items()))))
    for change in ({"data": "fallback"}, {"epochs": 8}, {"device": "cuda"}):
        assert pretrained_path("source", config | change) != path
    assert not path.exists()  # only a path: nothing written


@pytest.mark.parametrize(("name", "config"), [("a/b", {}), ("", {}), ("x", {"f": object()})])
def test_pretrained_path_bad_input(name, config):
    with pytest.raises(ValueError):
        pretrained_path(name, config)
