import math
import random

import pytest

from course_utils.tuning import (
    Choice,
    LogUniform,
    SearchResult,
    Trial,
    Uniform,
    check_space,
    coarse_to_fine,
    grid_points,
    grid_search,
    narrow,
    parse_space,
    random_points,
    random_search,
)

SPACE = {"lr": LogUniform(1e-3, 1.0), "weight_decay": Choice((1e-4, 1e-5, 0.0))}


def bowl(params):
    """Best at lr = 0.05; weight decay barely matters (as for a short training run)."""
    return 0.9 - 0.1 * math.log10(params["lr"] / 0.05) ** 2 - params["weight_decay"]


def test_random_search_equals_the_from_scratch_loop():
    rng = random.Random(3)
    expected = []
    for _ in range(7):
        params = {"lr": 10 ** rng.uniform(-3, 0), "weight_decay": rng.choice([1e-4, 1e-5, 0.0])}
        expected.append((bowl(params), params))
    result = random_search(bowl, SPACE, n_trials=7, seed=3)
    assert [(t.value, t.params) for t in result.trials] == expected
    assert result.best.value == max(v for v, _ in expected)
    assert [t.number for t in result.trials] == list(range(7))


def test_random_points_stay_inside_the_space():
    points = random_points({"lr": LogUniform(1e-4, 1e-2), "m": Uniform(0.8, 0.99),
                            "opt": Choice(("sgd", "adam"))}, 200, seed=0)
    assert all(1e-4 <= p["lr"] <= 1e-2 and 0.8 <= p["m"] <= 0.99 for p in points)
    assert {p["opt"] for p in points} == {"sgd", "adam"}
    assert len({p["lr"] for p in points}) == 200  # every random trial tries a new LR


def test_grid_points_exact_values():
    points = grid_points(SPACE, 3)
    assert len(points) == 9
    lrs = sorted({p["lr"] for p in points})
    assert lrs == pytest.approx([1e-3, 10 ** -1.5, 1.0])
    assert LogUniform(1e-4, 1e-2).grid(1) == pytest.approx((1e-3,))
    assert Uniform(0.0, 1.0).grid(3) == (0.0, 0.5, 1.0)
    assert Choice((1, 2)).grid(5) == (1, 2)


def test_grid_search_tests_fewer_distinct_values_of_the_important_axis():
    grid = grid_search(bowl, {"lr": LogUniform(1e-3, 1.0), "weight_decay": LogUniform(1e-6, 1e-2)},
                       points_per_axis=3)
    rand = random_search(bowl, {"lr": LogUniform(1e-3, 1.0), "weight_decay": LogUniform(1e-6, 1e-2)},
                         n_trials=9, seed=0)
    assert len({t.params["lr"] for t in grid.trials}) == 3
    assert len({t.params["lr"] for t in rand.trials}) == 9


def test_nan_trials_rank_last_in_both_directions():
    trials = (Trial(0, {"lr": 1.0}, math.nan), Trial(1, {"lr": 0.1}, 0.5), Trial(2, {"lr": 0.2}, 0.7))
    assert SearchResult(trials, "maximize").best.number == 2
    assert SearchResult(trials, "minimize").best.number == 1
    assert math.isnan(SearchResult(trials).best_so_far()[0])
    assert SearchResult(trials).best_so_far()[1:] == [0.5, 0.7]


def test_search_reports_a_diverged_objective_as_nan():
    result = random_search(lambda p: math.nan if p["lr"] > 0.3 else bowl(p), SPACE, n_trials=20, seed=1)
    assert any(math.isnan(t.value) for t in result.trials)
    assert math.isfinite(result.best.value)


def test_narrow_and_coarse_to_fine():
    fine = narrow(SPACE, {"lr": 0.05, "weight_decay": 1e-5}, factor=3)
    assert (fine["lr"].low, fine["lr"].high) == pytest.approx((0.05 / 3, 0.15))
    assert fine["weight_decay"] == Choice((1e-5,))
    clipped = narrow({"lr": LogUniform(1e-3, 0.1), "m": Uniform(0.0, 1.0)}, {"lr": 0.09, "m": 0.9})
    assert clipped["lr"].high == 0.1 and clipped["m"].high == 1.0
    assert clipped["m"].low == pytest.approx(0.9 - 1 / 6)
    rounds = coarse_to_fine(bowl, SPACE, rounds=3, n_trials=6, seed=0)
    assert len(rounds) == 3
    assert rounds[-1].best.value >= rounds[0].best.value - 1e-9
    assert abs(math.log10(rounds[-1].best.params["lr"] / 0.05)) < 0.3


def test_parse_space():
    space = parse_space({"lr": ["log", 1e-3, 1], "m": ["uniform", 0.8, 0.99], "wd": ["choice", 0, 1e-5]})
    assert space == {"lr": LogUniform(1e-3, 1), "m": Uniform(0.8, 0.99), "wd": Choice((0, 1e-5))}


@pytest.mark.parametrize("spec, words", [
    ({}, "empty"),
    ({"lr": ["log", 1.0, 1e-3]}, "inverted"),
    ({"m": ["uniform", 0.9, 0.1]}, "inverted"),
    ({"lr": ["log", 0.0, 1.0]}, "0 < low"),
    ({"lr": ["cubic", 1, 2]}, "is not"),
    ({"wd": ["choice"]}, "expected"),
    ({"lr": "log"}, "expected"),
])
def test_parse_space_errors_name_the_problem(spec, words):
    with pytest.raises(ValueError, match=words):
        parse_space(spec)


def test_bad_spaces_and_arguments():
    with pytest.raises(ValueError, match="empty"):
        check_space({})
    with pytest.raises(ValueError, match="inverted"):
        LogUniform(1.0, 1e-3)
    with pytest.raises(ValueError, match="finite"):
        Uniform(0.0, math.inf)
    with pytest.raises(ValueError, match="non-empty"):
        Choice(())
    with pytest.raises(TypeError, match="LogUniform, Uniform or Choice"):
        check_space({"lr": (1e-3, 1.0)})
    with pytest.raises(ValueError, match="n_trials"):
        random_search(bowl, SPACE, n_trials=0, seed=0)
    with pytest.raises(ValueError, match="direction"):
        random_search(bowl, SPACE, n_trials=2, seed=0, direction="up")
    with pytest.raises(TypeError, match="must return a number"):
        random_search(lambda p: "good", SPACE, n_trials=1, seed=0)
    with pytest.raises(ValueError, match="factor"):
        narrow(SPACE, {"lr": 0.1, "weight_decay": 0.0}, factor=1.0)
    with pytest.raises(ValueError, match="no value"):
        narrow(SPACE, {"lr": 0.1}, factor=2.0)
