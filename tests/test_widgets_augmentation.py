"""Tests for course_utils.widgets without a browser: the controls and the function they drive."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pytest
import torch

from course_utils.augment import AUGMENTATIONS
from course_utils.widgets import augmentation_controls, augmentation_explorer


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
    explorer = augmentation_explorer(images, name="hflip", strength=1.0)
    assert isinstance(explorer, widgets.interactive)
    names = [child.description for child in explorer.children[:-1]]
    assert names == ["transform", "strength", "random draw"]
    figures = set(plt.get_fignums())
    assert figures  # the initial draw happened
    explorer.children[0].value = "rotate"  # a change triggers a new figure
    assert set(plt.get_fignums()) - figures
    assert explorer.kwargs == {"name": "rotate", "strength": 1.0, "seed": 0}


def test_explorer_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        augmentation_explorer(torch.rand(1, 10, 10))
