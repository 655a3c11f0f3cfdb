"""Tests for the optimizer explorer in course_utils.widgets, without a browser."""

from __future__ import annotations

import io

import pytest

widgets = pytest.importorskip("ipywidgets")

from course_utils.widgets import optimizer_explorer, render_trajectory  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def test_render_trajectory_returns_png():
    png = render_trajectory("rosenbrock", "Adam", lr=0.05, momentum=0.9, beta1=0.9, beta2=0.999, steps=20)
    assert png.startswith(PNG)


def test_render_trajectory_diverging_run_is_drawn():
    png = render_trajectory("quadratic", "SGD", lr=1.0, momentum=0.0, beta1=0.9, beta2=0.999, steps=400)
    assert png.startswith(PNG)


def test_render_trajectory_bad_names():
    with pytest.raises(ValueError, match="choose one of"):
        render_trajectory("bowl", "SGD", lr=0.1, momentum=0.0, beta1=0.9, beta2=0.999, steps=10)
    with pytest.raises(ValueError, match="choose one of"):
        render_trajectory("quadratic", "Lion", lr=0.1, momentum=0.0, beta1=0.9, beta2=0.999, steps=10)


def test_explorer_has_its_controls_and_redraws_on_change():
    explorer = optimizer_explorer(steps=20)
    found, image = explorer.controls, explorer.image
    assert set(found) == {"surface", "optimizer", "lr", "momentum", "beta1", "beta2", "steps"}
    assert isinstance(image, widgets.Image) and bytes(image.value).startswith(PNG)
    assert found["optimizer"].value == "momentum" and found["surface"].value == "quadratic"
    before = image.value
    found["lr"].value = 0.01
    assert bytes(image.value).startswith(PNG) and bytes(image.value) != bytes(before)
    for name in ("surface", "optimizer"):
        for option in found[name].options:  # every choice renders
            found[name].value = option
            assert bytes(image.value).startswith(PNG)


def test_explorer_picture_is_readable_at_the_book_width():
    from PIL import Image

    width, height = Image.open(io.BytesIO(optimizer_explorer(steps=10).preview)).size
    assert 560 <= width <= 800 and height >= 350


def test_explorer_uses_no_output_widget():
    def walk(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from walk(child)

    assert not any(isinstance(w, widgets.Output) for w in walk(optimizer_explorer(steps=10).widget))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"surface": "bowl"}, "choose one of"), ({"optimizer": "Lion"}, "choose one of"),
    ({"lr": 2.0}, "lr must be in"), ({"lr": 0.0}, "lr must be in"), ({"steps": 5}, "steps must be"),
    ({"steps": 600}, "steps must be")])
def test_explorer_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optimizer_explorer(**kwargs)
