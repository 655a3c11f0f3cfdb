"""Tests for course_utils.plots.plot_trajectories (Agg backend, set in conftest)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils.optim import SGD
from course_utils.plots import plot_trajectories
from course_utils.surfaces import SURFACES, trajectory


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("key", list(SURFACES))
def test_plot_trajectories_draws_each_path(key):
    surface = SURFACES[key]
    path = trajectory(surface, lambda params: SGD(params, lr=1e-3), steps=5)
    ax = plot_trajectories(surface, {"SGD": path, "fixed": np.array([[0.0, 0.0], [0.5, 0.5]])})
    labelled = [line for line in ax.lines if not line.get_label().startswith("_")]
    assert [line.get_label() for line in labelled] == ["SGD", "fixed"]
    np.testing.assert_allclose(labelled[0].get_xydata(), path.numpy())
    assert ax.get_xlim() == surface.xlim and ax.get_ylim() == surface.ylim
    assert ax.get_title() == surface.name
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["SGD", "fixed"]


def test_plot_trajectories_on_given_axes_without_paths():
    _, ax = plt.subplots()
    assert plot_trajectories(SURFACES["saddle"], {}, ax=ax, title="empty", resolution=10) is ax
    assert ax.get_title() == "empty" and ax.get_legend() is None


def test_plot_trajectories_bad_input():
    with pytest.raises(ValueError, match="shape \\(k, 2\\)"):
        plot_trajectories(SURFACES["quadratic"], {"bad": torch.zeros(4, 3)})
    with pytest.raises(ValueError, match="resolution"):
        plot_trajectories(SURFACES["quadratic"], {}, resolution=1)
