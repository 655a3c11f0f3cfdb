"""What a notebook cell shows for an explorer: the widget view, a picture and a sentence, never a repr."""

from __future__ import annotations

import base64
import re

import pytest
import torch

from course_utils.widgets import (
    WIDGET_VIEW,
    Explorer,
    augmentation_explorer,
    optimizer_explorer,
    schedule_explorer,
)

REPRS = ("VBox(", "HBox(", "interactive(", "Dropdown(", "Slider(", "Image(")


def explorers():
    return {
        "optimizer": optimizer_explorer(surface="quadratic", optimizer="momentum", lr=0.05, steps=20),
        "schedule": schedule_explorer(total_steps=200),
        "augmentation": augmentation_explorer(torch.rand(2, 1, 8, 8), name="translate", strength=0.5),
    }


@pytest.mark.parametrize("name", ["optimizer", "schedule", "augmentation"])
def test_bundle_has_the_live_view_a_picture_and_a_sentence(name):
    explorer = explorers()[name]
    assert isinstance(explorer, Explorer)
    bundle = explorer._repr_mimebundle_()
    assert set(bundle) == {WIDGET_VIEW, "text/html", "text/plain"}
    assert bundle[WIDGET_VIEW]["model_id"] == explorer.widget.model_id
    assert bundle["text/plain"].startswith("Interactive explorer: run this cell in JupyterLab to change")
    assert repr(explorer) == bundle["text/plain"]
    page = bundle["text/html"]
    png = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert png and base64.b64decode(png[1]) == explorer.preview
    assert bundle["text/plain"] in page and "starting state" in page
    for text in (bundle["text/plain"], page):
        assert not any(r in text for r in REPRS), text[:200]


def test_optimizer_sentence_names_what_changes():
    text = explorers()["optimizer"]._repr_mimebundle_()["text/plain"]
    assert text == ("Interactive explorer: run this cell in JupyterLab to change the optimizer and "
                    "learning rate.")


def test_bundle_is_deterministic_apart_from_the_model_id():
    def static(explorer):
        bundle = explorer._repr_mimebundle_()
        return bundle["text/plain"], bundle["text/html"]

    assert static(optimizer_explorer(lr=0.05, steps=20)) == static(optimizer_explorer(lr=0.05, steps=20))
    assert static(schedule_explorer(300)) == static(schedule_explorer(300))


def test_the_preview_stays_the_starting_state_after_a_change():
    explorer = explorers()["optimizer"]
    before = explorer._repr_mimebundle_()["text/html"]
    explorer.controls["optimizer"].value = "Adam"
    assert explorer.image.value != explorer.preview
    assert explorer._repr_mimebundle_()["text/html"] == before
