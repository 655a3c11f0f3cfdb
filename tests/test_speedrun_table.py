"""Reading time-to-accuracy summaries: table cells, goals, the baseline speed-up, worth, compounding."""

import math

import pytest

from course_utils.speedrun_table import (
    common_accuracy,
    compound_share,
    goals_met,
    goals_over_budgets,
    reproduction,
    seconds_to,
    speedup_at_baseline_best,
    table_markdown,
    time_or_budget,
    tip_worth,
)
from course_utils.verdicts import HOLDS


def summary(curves, rate=1000.0, flops=1e6):
    return {"curves": curves, "train_seconds": [c[-1][0] for c in curves],
            "final_acc": [c[-1][1] for c in curves], "best_acc": [max(a for _, a in c) for c in curves],
            "images_per_s": [rate] * len(curves), "flops_per_image": flops}


FAST = summary([[(1.0, 0.86), (2.0, 0.91), (3.0, 0.93)], [(1.1, 0.87), (2.2, 0.90), (3.3, 0.925)]])
SLOW = summary([[(10.0, 0.80), (20.0, 0.86)], [(11.0, 0.79), (22.0, 0.84)]])


def test_seconds_to_and_budget():
    assert seconds_to(FAST, 0.90) == [2.0, 2.2]
    assert seconds_to(FAST, 0.93) == [3.0, None]
    assert time_or_budget(FAST, 0.93) == [3.0, 3.3]


def test_table_cells():
    table = table_markdown({"fast": FAST}, ["fast"], (0.90, 0.93, 0.95), peak_flops=1e10)
    row = table.splitlines()[2]
    assert "2.1 ± 0.1" in row and "3.0 (1/2)" in row and "—" in row
    assert "1,000" in row and "10%" in row  # 1e6 FLOPs x 1,000 img/s of a 1e10 peak


def test_goals_need_every_seed_in_time():
    met = goals_met(FAST, {0.90: 2.5, 0.93: 5.0})
    assert met["90% in 2.5 s"] == (True, [2.0, 2.2])
    assert met["93% in 5 s"][0] is False  # one seed never got there


def test_goals_over_budgets_take_the_row_that_meets_them():
    short = summary([[(0.5, 0.90), (1.0, 0.91)], [(0.6, 0.905), (1.2, 0.91)]])
    met = goals_over_budgets({"long": FAST, "short": short}, {0.90: 1.0, 0.93: 5.0, 0.95: 1.0})
    assert met["90% in 1 s"] == (True, "short", [0.5, 0.6])  # the long budget gets there at 2 s
    assert met["93% in 5 s"] == (False, "long", [3.0, None])  # one seed of 'long' in time beats none
    assert met["95% in 1 s"][0] is False
    with pytest.raises(ValueError, match="no rows"):
        goals_over_budgets({}, {0.9: 1.0})


def test_speedup_at_the_baselines_best():
    best, ratio = speedup_at_baseline_best(SLOW, FAST)
    # the baseline's seed 1 never reaches 85%: it counts with its whole budget, 22 s
    assert best == pytest.approx(0.85) and ratio == pytest.approx((20.0 + 22.0) / 2 / ((1.0 + 1.1) / 2))
    assert speedup_at_baseline_best(FAST, SLOW)[1] is None


def test_common_accuracy_and_worth():
    assert common_accuracy(FAST, (0.85, 0.90, 0.93)) == 0.90
    assert common_accuracy(SLOW, (0.90,)) is None
    speed, accuracy = tip_worth("tip", SLOW, FAST, 0.85)
    assert speed.verdict == HOLDS and math.exp(speed.numbers["mean"]) > 10
    assert accuracy.numbers["differences"] == pytest.approx([7.0, 8.5])


def test_compound_share_is_one_for_independent_tips():
    base = summary([[(8.0, 0.85)], [(8.0, 0.85)]])
    final = summary([[(1.0, 0.85)], [(1.0, 0.85)]])
    halves = [summary([[(math.sqrt(8), 0.85)], [(math.sqrt(8), 0.85)]])] * 2  # each tip worth half the log
    assert compound_share(base, final, halves) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="not faster"):
        compound_share(final, final, halves)


def seeded(seeds, curves, rates):
    out = summary(curves)
    out.update(seeds=list(seeds), images_per_s=list(rates))
    return out


RECORD = seeded([0, 1, 2],
                [[(1.0, 0.86), (2.0, 0.91)], [(1.2, 0.87), (2.4, 0.90)], [(1.1, 0.85), (2.2, 0.905)]],
                [1000.0, 1000.0, 1000.0])


def test_the_same_curves_on_a_slower_sitting_reproduce_at_the_records_throughput():
    # the same seeds' curves, every time 1.5x longer because the machine runs at 2/3 of its speed
    slower = seeded([2, 0], [[(t * 1.5, a) for t, a in RECORD["curves"][i]] for i in (2, 0)], [2000 / 3] * 2)
    result = reproduction(RECORD, slower, (0.85, 0.90, 0.95))
    assert result.seeds == (2, 0) and result.identical_accuracy
    assert result.speed_ratio == pytest.approx(2 / 3)
    checks = {c.metric: c for c in result.checks}
    assert "seconds to 95% (as measured)" not in checks  # no recorded seed got there: no spread stated
    adjusted = checks["seconds to 90% (at the record's throughput)"]
    assert adjusted.difference == pytest.approx(0.0) and adjusted.holds and adjusted.judged
    raw = checks["seconds to 90% (as measured)"]
    assert raw.difference == pytest.approx(0.5 * (2.2 + 2.0) / 2) and not raw.holds  # 1.1 s > 2 x 0.2 s
    assert not raw.judged  # shown beside the verdict, not part of it: the verdict still holds
    assert result.holds and "reproduces the record" in str(result) and "OUTSIDE" in str(result)


def test_a_rerun_with_other_accuracies_or_a_missed_target_does_not_reproduce():
    worse = seeded([0, 1], [[(1.0, 0.80), (2.0, 0.84)], [(1.2, 0.81), (2.4, 0.83)]], [1000.0] * 2)
    result = reproduction(RECORD, worse, (0.85, 0.90))
    checks = {c.metric: c for c in result.checks}
    assert checks["final test accuracy"].difference == pytest.approx(-7.0)  # 84 - 91 and 83 - 90 points
    assert checks["seconds to 90% (at the record's throughput)"].difference is None
    assert not result.holds and "does NOT reproduce" in str(result)


def test_reproduction_needs_a_shared_seed_and_a_recorded_spread():
    with pytest.raises(ValueError, match="run at least one of the record's seeds"):
        reproduction(RECORD, seeded([7], RECORD["curves"][:1], [1000.0]), (0.9,))
    with pytest.raises(ValueError, match="states no spread"):
        one = seeded([0], RECORD["curves"][:1], [1000.0])
        reproduction(one, one, (0.9,))
