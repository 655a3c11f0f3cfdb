"""Tests for course_utils.widgets without a browser: the controls and the function they drive."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pytest
import torch

from course_utils.augment import AUGMENTATIONS
from course_utils.widgets import augmentation_controls, augmentation_explorer, render_augmentations


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_controls_offer_every_augmentation():
    controls = augmentation_controls("shear", 0.25)
    assert tuple(controls["name"].options) == AUGMENTATIONS
    assert controls["name"].value == "shear"
    assert (controls["strength"].min, controls["strength"].max, controls["strength"].value) == (0, 1, 0.25)
    assert isinstance(controls["seed"], widgets.IntSlider)


def test_controls_bad_input():
    with pytest.raises(ValueError, match="hflip"):
        augmentation_controls("mirror")
    with pytest.raises(ValueError, match="strength"):
        augmentation_controls("shear", 1.5)


def test_explorer_draws_and_redraws_on_change():
    images = torch.rand(3, 1, 10, 10)
    figures = set(plt.get_fignums())
    explorer = augmentation_explorer(images, name="hflip", strength=1.0)
    assert [c.description for c in explorer.controls.values()] == ["transform", "strength", "random draw"]
    first = bytes(explorer.image.value)
    assert first.startswith(b"\x89PNG") and explorer.preview == first
    explorer.controls["name"].value = "rotate"
    assert bytes(explorer.image.value) != first
    explorer.controls["seed"].value = 7
    assert explorer.image.value[:4] == b"\x89PNG"
    assert set(plt.get_fignums()) == figures  # drawn off-screen: nothing left for the notebook


def test_render_augmentations_is_deterministic_and_leaves_the_rng_alone():
    images = torch.rand(2, 1, 8, 8)
    state = torch.get_rng_state()
    first = render_augmentations(images, "translate", 0.5, 3)
    assert render_augmentations(images, "translate", 0.5, 3) == first
    assert render_augmentations(images, "translate", 0.5, 4) != first
    assert torch.equal(torch.get_rng_state(), state)


def test_explorer_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        augmentation_explorer(torch.rand(1, 10, 10))
