"""Tests for course_utils.plots (Agg backend, set in conftest); every figure is closed afterwards."""

from __future__ import annotations

import math
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes

from course_utils.plots import moving_average, plot_history, show_images
from course_utils.train import History


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# --- moving_average ----------------------------------------------------------------------------


def test_moving_average_window_one_is_the_identity():
    values = [3.0, -1.0, 2.5, 7.0]
    np.testing.assert_array_equal(moving_average(values, 1), values)


def test_moving_average_known_values():
    # trailing window of 3; the first two points average what exists so far
    np.testing.assert_allclose(moving_average([1, 2, 3, 4, 5], 3), [1.0, 1.5, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(moving_average([2, 4], 5), [2.0, 3.0])  # window longer than the data


def test_moving_average_skips_non_finite_values():
    result = moving_average([1.0, math.nan, 3.0, math.inf, 5.0], 2)
    np.testing.assert_allclose(result, [1.0, 1.0, 3.0, 3.0, 5.0])
    result = moving_average([math.nan, math.nan, 4.0], 2)
    assert np.isnan(result[0]) and np.isnan(result[1])  # nothing finite to average yet
    assert result[2] == 4.0


def test_moving_average_of_nothing():
    assert moving_average([], 3).shape == (0,)


@pytest.mark.parametrize("window", [0, -2, 2.5, "3", None])
def test_moving_average_bad_window(window):
    with pytest.raises(ValueError, match="window"):
        moving_average([1.0, 2.0], window)


# --- plot_history ------------------------------------------------------------------------------


def small_history(validation: bool = True) -> History:
    history = History(step=list(range(12)), lr=[0.1] * 12,
                      train_loss=[1.0 / (1 + s) for s in range(12)],
                      epoch=[1, 2, 3], epoch_train_loss=[0.5, 0.2, 0.1], epoch_seconds=[1.0] * 3)
    if validation:
        history.val_loss = [0.6, 0.3, 0.2]
        history.val_acc = [0.5, 0.75, 0.9]
    return history


def test_plot_history_with_validation():
    history = small_history()
    axes = plot_history(history, smooth=4)
    assert len(axes) == 2
    loss_ax, acc_ax = axes
    assert isinstance(loss_ax, Axes) and isinstance(acc_ax, Axes)
    assert len(loss_ax.lines) == 2  # the raw curve and its moving average
    raw, smooth = loss_ax.lines
    np.testing.assert_array_equal(raw.get_xdata(), history.step)
    np.testing.assert_allclose(raw.get_ydata(), history.train_loss)
    np.testing.assert_allclose(smooth.get_ydata(), moving_average(history.train_loss, 4))
    assert len(acc_ax.lines) == 1
    np.testing.assert_array_equal(acc_ax.lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(acc_ax.lines[0].get_ydata(), [50.0, 75.0, 90.0])  # in percent
    assert loss_ax.get_legend() is None  # no label, no legend


def test_plot_history_without_validation():
    loss_ax, acc_ax = plot_history(small_history(validation=False), smooth=1)
    assert len(loss_ax.lines) == 1  # smooth=1: the raw curve only
    assert len(acc_ax.lines) == 0


def test_plot_history_with_label_overlays_runs_on_given_axes():
    _, axes = plt.subplots(1, 2)
    returned = plot_history(small_history(), smooth=4, axes=axes, label="run A")
    plot_history(small_history(), smooth=4, axes=axes, label="run B")
    assert list(returned) == list(axes)
    loss_ax, acc_ax = axes
    assert len(loss_ax.lines) == 4 and len(acc_ax.lines) == 2
    for ax in (loss_ax, acc_ax):
        assert [text.get_text() for text in ax.get_legend().get_texts()] == ["run A", "run B"]


def test_plot_history_label_without_smoothing_or_validation():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "No artists with labels found to put in legend"
        loss_ax, acc_ax = plot_history(small_history(validation=False), smooth=1, label="run A")
    assert [text.get_text() for text in loss_ax.get_legend().get_texts()] == ["run A"]
    assert acc_ax.get_legend() is None


# --- show_images -------------------------------------------------------------------------------


def test_show_images_grayscale_grid_with_class_names():
    images = torch.randn(5, 1, 6, 6)
    axes = show_images(images, torch.tensor([0, 1, 2, 1, 0]), classes=["cat", "dog", "emu"], ncols=3)
    assert isinstance(axes, np.ndarray)
    assert axes.shape == (2, 3)
    assert [ax.get_title() for ax in axes.flat] == ["cat", "dog", "emu", "dog", "cat", ""]
    for ax in axes.flat[:5]:
        picture = ax.images[0].get_array()
        assert picture.shape == (6, 6)
        assert picture.min() == pytest.approx(0.0) and picture.max() == pytest.approx(1.0)  # min-max
    assert len(axes.flat[5].images) == 0  # the spare cell stays empty


def test_show_images_colour_without_classes():
    axes = show_images(torch.rand(3, 3, 5, 5), [2, 0, 1])
    assert axes.shape == (1, 3)  # ncols shrinks to the number of images
    assert [ax.get_title() for ax in axes.flat] == ["2", "0", "1"]
    assert axes[0, 0].images[0].get_array().shape == (5, 5, 3)


def test_show_images_without_labels_and_constant_image():
    axes = show_images(torch.full((1, 1, 4, 4), 7.0))
    assert axes.shape == (1, 1)
    assert axes[0, 0].get_title() == ""
    assert np.isfinite(axes[0, 0].images[0].get_array()).all()


@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 2, 8, 8), (2, 4, 8, 8), (1, 1, 1, 8, 8)])
def test_show_images_bad_shapes(shape):
    with pytest.raises(ValueError, match="images must be"):
        show_images(torch.zeros(shape))


def test_show_images_label_count_must_match():
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        show_images(torch.zeros(3, 1, 4, 4), [0, 1])


# --- show_image_rows / show_augmentations (notebook 02) ------------------------------------------


def test_show_image_rows_grid_and_labels():
    from course_utils.plots import show_image_rows

    rows = [torch.rand(4, 1, 8, 8), torch.rand(4, 3, 8, 8) * 2]  # values > 1 are clipped, not rescaled
    axes = show_image_rows(rows, ["grey", "colour"])
    assert axes.shape == (2, 4)
    assert axes[1, 0].get_ylabel() == "colour"
    assert axes[1, 0].images[0].get_array().max() <= 1.0


def test_show_image_rows_bad_input():
    from course_utils.plots import show_image_rows

    with pytest.raises(ValueError, match="label"):
        show_image_rows([torch.rand(2, 1, 4, 4)], [])
    with pytest.raises(ValueError, match="every row"):
        show_image_rows([torch.rand(2, 1, 4, 4), torch.rand(3, 1, 4, 4)], ["a", "b"])


def test_show_augmentations_seed_is_reproducible_and_private():
    from course_utils.plots import show_augmentations

    images = torch.rand(3, 1, 10, 10, generator=torch.Generator().manual_seed(0))
    state = torch.get_rng_state()
    first = show_augmentations(images, [("translate", 0.0), ("translate", 1.0)], seed=5)
    second = show_augmentations(images, [("translate", 0.0), ("translate", 1.0)], seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    assert first.shape == (2, 3)
    assert first[1, 0].get_ylabel() == "translate\n1"
    for a, b in zip(first.flat, second.flat, strict=True):
        np.testing.assert_array_equal(a.images[0].get_array(), b.images[0].get_array())
    np.testing.assert_allclose(first[0, 0].images[0].get_array(), images[0, 0].numpy())
    with pytest.raises(ValueError, match="augmentation"):
        show_augmentations(images, [("mirror", 0.5)])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        show_augmentations(images[0], [("hflip", 0.5)])
