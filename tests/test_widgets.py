"""Tests for course_utils.widgets that need no browser: the control mapping and the redraw wiring."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")

from course_utils.schedules import SCHEDULES  # noqa: E402
from course_utils.widgets import schedule_explorer, schedule_from_controls  # noqa: E402


@pytest.mark.parametrize("kind", sorted(SCHEDULES))
def test_every_schedule_peaks_at_the_chosen_lr(kind):
    schedule = schedule_from_controls(kind, lr=0.2, total_steps=300, warmup_fraction=0.2,
                                      gamma=0.5, cycles=3)
    lrs = [schedule(step) for step in range(300)]
    assert max(lrs) == pytest.approx(0.2, rel=1e-2)
    assert min(lrs) >= 0


def test_decays_land_where_documented():
    step = schedule_from_controls("step", lr=1.0, total_steps=300, gamma=0.1)
    exponential = schedule_from_controls("exponential", lr=1.0, total_steps=300, gamma=0.1)
    assert step(100) == pytest.approx(0.1) and exponential(100) == pytest.approx(0.1)
    warmup = schedule_from_controls("warmup_cosine", lr=1.0, total_steps=300, warmup_fraction=0.2)
    assert warmup(60) == pytest.approx(1.0) and warmup(0) == 0.0


def test_bad_controls_raise_value_error():
    with pytest.raises(ValueError, match="choose one of"):
        schedule_from_controls("linear", lr=0.1, total_steps=100)
    with pytest.raises(ValueError, match="cycles must be"):
        schedule_from_controls("triangular", lr=0.1, total_steps=100, cycles=40)
    with pytest.raises(ValueError, match="total_steps must be"):
        schedule_from_controls("cosine", lr=0.1, total_steps=5)


def test_explorer_redraws_when_a_control_changes():
    explorer = schedule_explorer(total_steps=400)
    image, status = explorer.image, explorer.widget.children[-2]
    first = image.value
    assert first[:4] == b"\x89PNG"
    explorer.controls["schedule"].value = "one_cycle"
    assert image.value != first
    assert "at the last step" in status.value
    assert explorer.preview == first  # the book's picture is the starting state


def test_every_slider_combination_at_the_extremes_is_valid():
    explorer = schedule_explorer(total_steps=100)
    controls = dict(explorer.controls)
    kind = controls.pop("schedule")
    for name in kind.options:
        kind.value = name
        for control in controls.values():
            control.value = control.min  # each change redraws; none may raise
            control.value = control.max
        assert explorer.image.value[:4] == b"\x89PNG"
