"""Tests for course_utils.plots.plot_confusion_matrix (Agg backend, set in conftest)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.axes import Axes

from course_utils.plots import plot_confusion_matrix


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_plot_confusion_matrix_draws_row_normalized_cells():
    matrix = torch.tensor([[3, 1], [0, 4]])
    ax = plot_confusion_matrix(matrix, ["a", "b"], title="cm")
    assert isinstance(ax, Axes)
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["0.75", "0.25", "0.00", "1.00"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]


def test_plot_confusion_matrix_counts_on_given_axes():
    _, ax = plt.subplots()
    assert plot_confusion_matrix(torch.tensor([[3, 1], [0, 4]]), normalize=False, ax=ax) is ax
    assert [t.get_text() for t in ax.texts] == ["3", "1", "0", "4"]


def test_plot_confusion_matrix_bad_input():
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="classes"):
        plot_confusion_matrix(torch.zeros(2, 2), ["a"])
