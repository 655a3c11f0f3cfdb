"""Shared fixtures: tiny synthetic data and models, and an isolated data cache per test."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")  # before anything imports matplotlib

import dataclasses

import pytest
import torch

import course_utils.datasets as ds
from course_utils.data import TensorLoader


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own empty course cache and no COURSE_DATA_DIR unless it sets one."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("COURSE_CACHE_DIR", str(cache))
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    return cache


@pytest.fixture(autouse=True)
def synthetic_specs(monkeypatch):
    """Tests write tiny synthetic MNIST and CIFAR-10 files, which cannot match the published md5s
    and example counts: those two specs drop them (the structural checks stay). Fashion-MNIST
    keeps its md5s, so synthetic files must fail there. Returns the published specs, for the
    tests that check the md5s and counts themselves."""
    published = dict(ds.SPECS)
    for name in ("mnist", "cifar10"):
        monkeypatch.setitem(ds.SPECS, name, dataclasses.replace(ds.SPECS[name], md5={}, counts={}))
    return published


@pytest.fixture
def tiny_data():
    """256 separable 2-class examples of shape (1, 4, 4) and their labels."""
    generator = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (256,), generator=generator)
    x = torch.randn(256, 1, 4, 4, generator=generator) * 0.5 + (2 * y - 1).view(-1, 1, 1, 1)
    return x, y


@pytest.fixture
def tiny_loader(tiny_data):
    x, y = tiny_data
    return TensorLoader(x, y, batch_size=32, shuffle=True, seed=0)
