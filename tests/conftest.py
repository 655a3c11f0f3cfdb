"""Shared fixtures: tiny synthetic data and models, and an isolated data cache per test."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")  # before anything imports matplotlib

import pytest
import torch

from course_utils.data import TensorLoader


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own empty course cache and no COURSE_DATA_DIR unless it sets one."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("COURSE_CACHE_DIR", str(cache))
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    return cache


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
