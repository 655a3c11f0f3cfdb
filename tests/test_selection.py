"""Tests for course_utils.selection: the per-arm grid search of notebooks 06 and 07."""

import functools
import math

import pytest

from course_utils.selection import Selection, select, select_on_ladder


def test_select_keeps_the_best_mean_over_seeds():
    table = {0.1: (0.80, 0.82), 0.3: (0.85, 0.83), 1.0: (0.90, 0.60)}  # 1.0: a lucky seed, worse mean
    result = select(list(table), lambda lr, seed: table[lr][seed], seeds=(0, 1))
    assert isinstance(result, Selection)
    assert result.best == 0.3
    assert result.scores == table
    assert result.mean(0.3) == pytest.approx(0.84)
    assert result.edges == ()


def test_select_calls_score_once_per_setting_and_seed():
    calls = []
    select((1, 2), lambda s, seed: calls.append((s, seed)) or 0.0, seeds=(5, 6, 7))
    assert calls == [(1, 5), (1, 6), (1, 7), (2, 5), (2, 6), (2, 7)]


@pytest.mark.parametrize(("scores", "edge"), [((3, 2, 1), "smallest"), ((1, 2, 3), "largest")])
def test_edges_are_reported(scores, edge):
    grid = (0.01, 0.1, 1.0)
    result = select(grid, lambda lr, seed: scores[grid.index(lr)], seeds=(0,))
    assert len(result.edges) == 1 and edge in result.edges[0] and "lr=" in result.edges[0]
    assert "note:" in result.describe()


def test_two_dimensional_grid_and_its_edges():
    grid = [(lr, wd) for lr in (0.01, 0.1) for wd in (0.0, 1e-3, 1e-2)]
    result = select(grid, lambda s, seed: -abs(s[0] - 0.1) - abs(s[1] - 1e-3), seeds=(0, 1),
                    names=("lr", "weight_decay"))
    assert result.best == (0.1, 1e-3)
    assert result.edges == ("lr=0.1 is the largest value of the grid; a larger one may be better",)
    text = result.describe()
    assert "lr=0.1, weight_decay=0.001" in text and "<- chosen" in text


def test_diverged_settings_never_win_and_show_as_diverged():
    result = select((0.1, 1.0), lambda lr, seed: math.nan if lr == 1.0 else 0.5, seeds=(0, 1))
    assert result.best == 0.1
    assert math.isnan(result.mean(1.0))
    assert "diverged" in result.describe()


def test_ties_go_to_the_first_setting():
    assert select((0.3, 0.1), lambda lr, seed: 0.5, seeds=(0,)).best == 0.3


@pytest.mark.parametrize("kwargs", [dict(grid=(), seeds=(0,)), dict(grid=(0.1,), seeds=()),
                                    dict(grid=(0.1, 0.1), seeds=(0,)),
                                    dict(grid=((0.1, 1.0),), seeds=(0,))])
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        select(kwargs["grid"], lambda s, seed: 0.0, seeds=kwargs["seeds"])


def test_all_diverged_raises():
    with pytest.raises(ValueError, match="diverged"):
        select((0.1, 1.0), lambda lr, seed: math.inf * 0, seeds=(0,))


LADDER = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def peaked_at(peak, diverge_above=math.inf):
    """A validation score that peaks at ``peak`` on the ladder; NaN above ``diverge_above``."""
    calls = []

    def score(lr, seed):
        calls.append(lr)
        return math.nan if lr > diverge_above else 1.0 - abs(LADDER.index(lr) - LADDER.index(peak)) / 10
    return score, calls


@pytest.mark.parametrize("peak", [0.001, 0.01, 0.03, 0.1, 1.0])
def test_the_ladder_window_grows_until_the_best_is_inside_or_at_the_ladders_end(peak):
    score, calls = peaked_at(peak)
    choice = select_on_ladder(LADDER, functools.cache(score), start=(0.01, 0.03, 0.1), seeds=[0])
    assert choice.best == peak
    if LADDER.index(peak) in (0, len(LADDER) - 1):
        assert choice.edges  # the best on an end of the ladder: still reported as an edge
    else:
        assert choice.edges == ()
    assert set(choice.scores) >= {0.01, 0.03, 0.1}


def test_when_every_lr_diverges_the_window_steps_down():
    score, _ = peaked_at(0.001, diverge_above=0.003)
    choice = select_on_ladder(LADDER, functools.cache(score), start=(0.03, 0.1, 0.3), seeds=[0, 1])
    assert choice.best == 0.001 and math.isnan(choice.mean(0.01))


def test_ladder_errors_say_what_is_wrong():
    score, _ = peaked_at(0.01)
    with pytest.raises(ValueError, match="start must begin and end on the ladder"):
        select_on_ladder(LADDER, score, start=(0.02, 0.1), seeds=[0])
    with pytest.raises(ValueError, match="from low to high"):
        select_on_ladder(LADDER, score, start=(0.1, 0.01), seeds=[0])
    with pytest.raises(ValueError, match="extend the ladder downwards"):
        select_on_ladder(LADDER, lambda lr, seed: math.nan, start=(0.01, 0.1), seeds=[0])
