"""Tests for course_utils.pipeline: the decode-cost dataset and the loader-only epoch loop."""

from __future__ import annotations

import pickle
import time

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from course_utils.data import TensorLoader
from course_utils.pipeline import DecodeCostDataset, burn_cpu, iterate_epoch


@pytest.fixture
def dataset(tiny_data):
    return TensorDataset(*tiny_data)


def test_items_pass_through_unchanged(dataset):
    wrapped = DecodeCostDataset(dataset, cost_s=0.0, kind="cpu")
    assert len(wrapped) == len(dataset)
    for index in (0, 17, len(dataset) - 1):
        for got, want in zip(wrapped[index], dataset[index], strict=True):
            assert torch.equal(got, want)
    assert "256 samples" in repr(wrapped) and "'cpu'" in repr(wrapped)


@pytest.mark.parametrize("kind", ["sleep", "cpu"])
def test_each_item_costs_at_least_cost_s(dataset, kind):
    wrapped = DecodeCostDataset(dataset, cost_s=0.002, kind=kind)
    start = time.perf_counter()
    for index in range(5):
        wrapped[index]
    assert time.perf_counter() - start >= 5 * 0.002


def test_cpu_kind_uses_cpu_time_and_sleep_kind_does_not(dataset):
    for kind, busy in (("cpu", True), ("sleep", False)):
        wrapped = DecodeCostDataset(dataset, cost_s=0.01, kind=kind)
        start = time.thread_time()
        wrapped[0]
        used = time.thread_time() - start
        assert (used >= 0.01) if busy else (used < 0.005), (kind, used)


def test_burn_cpu_zero_returns_at_once():
    start = time.perf_counter()
    burn_cpu(0.0)
    assert time.perf_counter() - start < 0.01


def test_dataset_pickles_for_spawned_workers(dataset):
    wrapped = pickle.loads(pickle.dumps(DecodeCostDataset(dataset, cost_s=1e-4, kind="sleep")))
    assert wrapped.cost_s == 1e-4 and wrapped.kind == "sleep" and len(wrapped) == len(dataset)


def test_works_with_dataloader_workers(dataset):
    loader = DataLoader(DecodeCostDataset(dataset, cost_s=0.0), batch_size=64, num_workers=2)
    assert iterate_epoch(loader) == len(dataset)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"cost_s": -1.0}, ValueError, "cost_s"),
    ({"cost_s": "1"}, ValueError, "cost_s"),
    ({"cost_s": True}, ValueError, "cost_s"),
    ({"cost_s": float("nan")}, ValueError, "cost_s"),
    ({"cost_s": 0.0, "kind": "io"}, ValueError, "sleep"),
])
def test_bad_arguments(dataset, kwargs, error, match):
    with pytest.raises(error, match=match):
        DecodeCostDataset(dataset, **kwargs)


def test_not_a_map_style_dataset():
    with pytest.raises(TypeError, match="map-style"):
        DecodeCostDataset(iter(range(3)), cost_s=0.0)


def test_iterate_epoch_counts_samples(tiny_data):
    x, y = tiny_data
    assert iterate_epoch(TensorLoader(x, y, batch_size=100)) == 256
    assert iterate_epoch(DataLoader(TensorDataset(x, y), batch_size=100, drop_last=True)) == 200
    assert iterate_epoch(TensorLoader(x, y, batch_size=64), device="cpu") == 256


def test_iterate_epoch_empty_loader():
    with pytest.raises(ValueError, match="no batches"):
        iterate_epoch([])
