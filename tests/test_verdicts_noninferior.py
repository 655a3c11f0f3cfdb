"""The non-inferiority part of the verdict protocol, and speed-ups counted in steps."""

import pytest

from course_utils.verdicts import HOLDS, INCONCLUSIVE, NOT_HERE, judge, noninferior, speedup


def test_noninferior_holds_when_the_interval_clears_the_margin():
    ev = noninferior("B alone vs B + A", [0.80, 0.81, 0.79, 0.80, 0.82], [0.801, 0.81, 0.79, 0.80, 0.819],
                     margin=0.5, scale=100, unit=" pp")
    assert ev.verdict == HOLDS and ev.kind == "noninferior"
    assert ev.numbers["margin"] == 0.5 and ev.numbers["ci"][0] > -0.5
    assert "margin -0.5 pp" in ev.summary and "above -0.5 pp" in ev.rule


def test_noninferior_does_not_hold_when_clearly_worse():
    ev = noninferior("x", [0.80, 0.81, 0.79, 0.80], [0.77, 0.78, 0.76, 0.77], margin=0.5, scale=100)
    assert ev.verdict == NOT_HERE


def test_noninferior_inconclusive_inside_the_noise():
    ev = noninferior("x", [0.80, 0.81, 0.79], [0.81, 0.78, 0.80], margin=0.5, scale=100)
    assert ev.verdict == INCONCLUSIVE
    assert judge("C19", ev).verdict == INCONCLUSIVE


@pytest.mark.parametrize("margin", [-0.1, float("nan"), float("inf")])
def test_noninferior_bad_margin(margin):
    with pytest.raises(ValueError):
        noninferior("x", [1.0, 2.0], [1.0, 2.0], margin=margin)


def test_speedup_names_what_is_paired():
    ev = speedup("steps to 85%", [40, 60, 50], [20, 25, 30], min_effect=1.0, what="seeds")
    assert ev.summary.endswith("3 seeds)")
    assert speedup("t", [2.0, 2.1], [1.0, 1.1]).summary.endswith("2 timed pairs)")
