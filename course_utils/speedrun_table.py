"""Reading time-to-accuracy summaries: the capstone's table, goals, ablation and compounding.

A *summary* is what :func:`course_utils.speedrun.summarize` returns for one row (several seeds):
per-seed accuracy curves on the training clock, final accuracies, images per second. These
functions turn summaries into the table of notebook 13 and into the numbers its verdicts judge,
whether the summaries come from the benchmark's record or from a live run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from course_utils.results import format_mean_std
from course_utils.verdicts import Evidence, effect

Summary = Mapping[str, object]


def seconds_to(summary: Summary, accuracy: float) -> list[float | None]:
    """Per seed, the training seconds at which test accuracy first reached ``accuracy``."""
    return [next((t for t, a in curve if a >= accuracy), None) for curve in summary["curves"]]


def time_or_budget(summary: Summary, accuracy: float) -> list[float]:
    """Like :func:`seconds_to`, with a seed that never got there counted at its whole budget
    (a lower bound on its time)."""
    return [t if t is not None else total
            for t, total in zip(seconds_to(summary, accuracy), summary["train_seconds"], strict=True)]


def _times_cell(times: Sequence[float | None]) -> str:
    reached = [t for t in times if t is not None]
    if not reached:
        return "—"
    text = format_mean_std(reached, digits=1) if len(reached) > 1 else f"{reached[0]:.1f}"
    return text + ("" if len(reached) == len(times) else f" ({len(reached)}/{len(times)})")


def table_markdown(summaries: Mapping[str, Summary], names: Sequence[str], targets: Sequence[float],
                   peak_flops: float) -> str:
    """A Markdown table: per row, seconds to each target (mean ± std; reached/seeds when not
    all seeds got there; "—" when none did), final accuracy, median images/s and the share of
    ``peak_flops`` that training used (FLOPs per image x images per second)."""
    header = ["row", *(f"s to {t:.0%}" for t in targets), "final acc %", "img/s", "of peak"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        summary = summaries[name]
        rate = statistics.median(summary["images_per_s"])
        cells = [name, *(_times_cell(seconds_to(summary, t)) for t in targets),
                 format_mean_std(summary["final_acc"], scale=100, digits=1), f"{rate:,.0f}",
                 f"{100 * summary['flops_per_image'] * rate / peak_flops:.0f}%"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goals_met(summary: Summary, goals: Mapping[float, float]) -> dict[str, tuple[bool, list[float | None]]]:
    """For each ``{accuracy: seconds}`` goal: met (every seed got there in time) and the times."""
    out = {}
    for accuracy, limit in goals.items():
        times = seconds_to(summary, accuracy)
        ok = all(t is not None and t <= limit for t in times)
        out[f"{accuracy:.0%} in {limit:g} s"] = (ok, times)
    return out


def goals_over_budgets(summaries: Mapping[str, Summary],
                       goals: Mapping[float, float]) -> dict[str, tuple[bool, str, list[float | None]]]:
    """For each ``{accuracy: seconds}`` goal, judged over several budgets of one recipe (row
    name -> summary): met if some row has every seed there in time. Returns (met, the row, its
    times): the first row that meets it, else the row with the most seeds in time (the first
    such row on a tie)."""
    if not summaries:
        raise ValueError("no rows to judge the goals on")
    out = {}
    for accuracy, limit in goals.items():
        key = f"{accuracy:.0%} in {limit:g} s"
        judged = {name: goals_met(summary, {accuracy: limit})[key] for name, summary in summaries.items()}
        in_time = {name: sum(t is not None and t <= limit for t in times)
                   for name, (_, times) in judged.items()}
        name = next((n for n in judged if judged[n][0]), None) or max(judged, key=in_time.__getitem__)
        out[key] = (judged[name][0], name, judged[name][1])
    return out


def speedup_at_baseline_best(baseline: Summary, final: Summary) -> tuple[float, float | None]:
    """The baseline's best accuracy (mean over seeds) and how many times faster ``final``
    reaches it (mean seconds over mean seconds), or None if some seed of ``final`` never does."""
    best = statistics.mean(baseline["best_acc"])
    slow = time_or_budget(baseline, best)
    fast = seconds_to(final, best)
    if any(t is None for t in fast):
        return best, None
    return best, statistics.mean(slow) / statistics.mean(fast)


def common_accuracy(final: Summary, targets: Sequence[float]) -> float | None:
    """The highest target that every seed of ``final`` reached (None if none)."""
    reached = [t for t in targets if all(s is not None for s in seconds_to(final, t))]
    return max(reached) if reached else None


def tip_worth(label: str, without: Summary, final: Summary, accuracy: float, *,
              min_speedup: float = 0.05, min_points: float = 0.2) -> tuple[Evidence, Evidence]:
    """What a tip is worth in the full recipe, paired by seed: the speed-up to ``accuracy``
    (log-ratio of the recipe without the tip over the full recipe; a seed that never gets
    there counts at its budget) and the final accuracy difference in points."""
    logs = [math.log(a / b) for a, b in zip(time_or_budget(without, accuracy),
                                           time_or_budget(final, accuracy), strict=True)]
    speed = effect(f"{label}: speed-up to {accuracy:.0%} (log)", logs, min_effect=math.log1p(min_speedup))
    points = [100 * (a - b) for a, b in zip(final["final_acc"], without["final_acc"], strict=True)]
    return speed, effect(f"{label}: final test accuracy", points, min_effect=min_points, unit=" pp")


def compound_share(baseline: Summary, final: Summary, ablated: Sequence[Summary]) -> list[float]:
    """Per seed, the sum of the tips' log-worths in the full recipe (ablation) over the log of
    the stack's total speed-up, both to the baseline's best accuracy: 1 if the tips were
    independent, below 1 if they overlap, above 1 if each needs the others."""
    best = statistics.mean(baseline["best_acc"])
    full = time_or_budget(final, best)
    total = [math.log(a / b) for a, b in zip(time_or_budget(baseline, best), full, strict=True)]
    worths = [[math.log(a / b) for a, b in zip(time_or_budget(row, best), full, strict=True)]
              for row in ablated]
    if any(t <= 0 for t in total):
        raise ValueError("the full recipe is not faster than the baseline in every seed: there is "
                         "no speed-up to share out")
    return [sum(w[s] for w in worths) / total[s] for s in range(len(total))]


# How a re-run of a recorded row is judged (``benchmarks/time_to_accuracy.py --check`` and
# notebook 13's live row). Stated before any re-run, and the same for every metric:
# - seeds are paired: a re-run seed is compared with the same seed of the record;
# - the record's spread of a metric is twice the standard deviation over the record's seeds
#   (about 95% of single runs under a normal model); a re-run holds when the mean of its paired
#   differences lies within it;
# - time scales with the machine's speed at the sitting, which a busy or throttled machine
#   changes by tens of percent, so each re-run time is also shown at the record's throughput
#   (times the seed's images/s now over its images/s in the record). On the same hardware and
#   torch the accuracy curves repeat, and this adjusted time is what must hold; the raw time
#   holds only if the machine is as fast as when the record was made.
SPREAD_SDS = 2.0


@dataclass(frozen=True)
class Check:
    """One metric of a re-run against the record: the record's mean and spread (± ``spread``)
    over its seeds, the mean paired difference of the re-run, and whether it lies within."""

    metric: str
    recorded: float
    spread: float
    difference: float | None  # None: a re-run seed never got there
    unit: str
    judged: bool = True  # False: shown beside the judged metrics (raw times), not part of the verdict

    @property
    def holds(self) -> bool:
        return self.difference is not None and abs(self.difference) <= self.spread


@dataclass(frozen=True)
class Reproduction:
    """A re-run of one recorded row, metric by metric (see :func:`reproduction`)."""

    seeds: tuple[int, ...]
    speed_ratio: float  # the re-run's images/s over the record's, paired seeds, median
    identical_accuracy: bool
    checks: tuple[Check, ...]

    @property
    def holds(self) -> bool:
        """Every metric within the record's spread, times taken at the record's throughput."""
        return all(c.holds for c in self.checks if c.judged)

    def __str__(self) -> str:
        lines = [f"re-run of seeds {list(self.seeds)} against the record; this sitting's speed: "
                 f"{self.speed_ratio:.2f}x the record's images/s"]
        for c in self.checks:
            step = " pp" if c.unit == " %" else c.unit  # a difference of percentages is in points
            got = "never got there" if c.difference is None else f"{c.difference:+.2f}{step}"
            lines.append(f"  {c.metric:<44} record {c.recorded:8.2f}{c.unit} ± {c.spread:.2f}{step}   "
                         f"re-run {got:>16}   {'within' if c.holds else 'OUTSIDE'}"
                         + ("" if c.judged else "  (shown, not judged)"))
        if self.identical_accuracy:
            lines.append("the final accuracies are identical to the record's, seed by seed")
        lines.append("verdict: "
                     + ("reproduces the record within its spread" if self.holds else
                        "does NOT reproduce the record within its spread"))
        return "\n".join(lines)


def reproduction(recorded: Summary, rerun: Summary, targets: Sequence[float]) -> Reproduction:
    """Judge a re-run of a recorded row by the rule above (``SPREAD_SDS`` standard deviations
    of the record's seeds, seeds paired, times also at the record's throughput).

    Checks the final accuracy and the seconds to every target that all the record's seeds
    reached. Raises ValueError when the re-run shares no seed with the record or the record
    has fewer than two seeds (no spread to judge against)."""
    index = {seed: i for i, seed in enumerate(recorded["seeds"])}
    pairs = [(index[seed], j) for j, seed in enumerate(rerun["seeds"]) if seed in index]
    if not pairs:
        raise ValueError(f"the re-run ran seeds {list(rerun['seeds'])} and the record holds "
                         f"{list(recorded['seeds'])}: run at least one of the record's seeds")
    if len(recorded["seeds"]) < 2:
        raise ValueError("the record holds one seed: it states no spread to reproduce within")

    def spread(values: Sequence[float]) -> float:
        return SPREAD_SDS * statistics.stdev(values)

    def mean_difference(pairs_of_values: Sequence[tuple[float, float | None]]) -> float | None:
        if any(b is None for _, b in pairs_of_values):
            return None
        return statistics.mean(b - a for a, b in pairs_of_values)

    rec_acc, new_acc = recorded["final_acc"], rerun["final_acc"]
    checks = [Check("final test accuracy", 100 * statistics.mean(rec_acc), 100 * spread(rec_acc),
                    mean_difference([(100 * rec_acc[i], 100 * new_acc[j]) for i, j in pairs]), " %")]
    rates = [rerun["images_per_s"][j] / recorded["images_per_s"][i] for i, j in pairs]
    for target in targets:
        rec_times, new_times = seconds_to(recorded, target), seconds_to(rerun, target)
        if any(t is None for t in rec_times):
            continue  # not every recorded seed got there: the record states no time for it
        raw = [(rec_times[i], new_times[j]) for i, j in pairs]
        adjusted = [(a, None if b is None else b * rate) for (a, b), rate in zip(raw, rates, strict=True)]
        shown = (("at the record's throughput", adjusted, True), ("as measured", raw, False))
        for label, values, judged in shown:
            checks.append(Check(f"seconds to {target:.0%} ({label})", statistics.mean(rec_times),
                                spread(rec_times), mean_difference(values), " s", judged))
    return Reproduction(seeds=tuple(rerun["seeds"][j] for _, j in pairs),
                        speed_ratio=statistics.median(rates),
                        identical_accuracy=all(rec_acc[i] == new_acc[j] for i, j in pairs),
                        checks=tuple(checks))
