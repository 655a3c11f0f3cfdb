"""Choose each arm's setting on validation data before comparing arms: a fair comparison.

The Deep Learning Tuning Playbook's rule for comparing two recipes: tune each arm's nuisance
hyperparameters (above all the learning rate) *for that arm*, on validation data, then compare the
arms at their best on data no choice has seen (the test set), paired by seed. :func:`select` is
that grid search: it scores every setting of a small grid with a few seeds and keeps the best
mean, and it says when the best lies on the edge of the grid (the optimum may lie beyond it).

Notebook 06 writes the one-line version from scratch (``max`` over mean validation scores);
notebooks 06 and 07 use this helper. :func:`select_on_ladder` grows the grid along a ladder of
settings until the best lies inside it (notebook 01).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Selection:
    """The result of :func:`select`: the best setting and every score behind the choice.

    Attributes:
        best: the chosen setting (an element of the grid).
        scores: setting -> per-seed validation scores (NaN for a run that diverged).
        names: the hyperparameters a setting holds, e.g. ``("lr",)`` or ``("lr", "weight_decay")``.
        edges: one sentence per hyperparameter whose chosen value is the smallest or largest of
            the grid (empty when the best is inside the grid in every direction).
    """

    best: Hashable
    scores: dict[Hashable, tuple[float, ...]]
    names: tuple[str, ...]
    edges: tuple[str, ...]

    def mean(self, setting: Hashable) -> float:
        """The mean validation score of ``setting`` over the tuning seeds (NaN if any diverged)."""
        values = self.scores[setting]
        return math.nan if any(math.isnan(v) for v in values) else statistics.mean(values)

    def describe(self, *, scale: float = 100.0, digits: int = 1) -> str:
        """One line per setting (scores times ``scale``), the chosen one marked, then edge notes."""
        lines = []
        for setting, values in self.scores.items():
            label = ", ".join(f"{n}={v:g}" for n, v in zip(self.names, _as_tuple(setting), strict=True))
            per_seed = " ".join(f"{scale * v:.{digits}f}" for v in values)
            mean = self.mean(setting)
            shown = "diverged" if math.isnan(mean) else f"mean {scale * mean:.{digits}f}"
            chosen = "  <- chosen" if setting == self.best else ""
            lines.append(f"  {label:28s} {per_seed:>18s}  {shown}{chosen}")
        lines += [f"  note: {edge}" for edge in self.edges]
        return "\n".join(lines)


def _as_tuple(setting: Hashable) -> tuple:
    return setting if isinstance(setting, tuple) else (setting,)


def _edges(grid: Sequence[Hashable], best: Hashable, names: Sequence[str]) -> tuple[str, ...]:
    notes = []
    chosen = _as_tuple(best)
    for k, name in enumerate(names):
        values = sorted({_as_tuple(s)[k] for s in grid})
        if len(values) < 2:
            continue
        if chosen[k] == values[0]:
            notes.append(f"{name}={chosen[k]:g} is the smallest value of the grid; a smaller one "
                         "may be better")
        elif chosen[k] == values[-1]:
            notes.append(f"{name}={chosen[k]:g} is the largest value of the grid; a larger one "
                         "may be better")
    return tuple(notes)


def select(grid: Sequence[Hashable], score: Callable[[Hashable, int], float], *,
           seeds: Sequence[int], names: Sequence[str] = ("lr",)) -> Selection:
    """Score every setting of ``grid`` with every seed and keep the best mean (higher is better).

    Args:
        grid: the settings to try, e.g. ``(0.03, 0.1, 0.3)`` or ``[(lr, wd), ...]`` (tuples for
            several hyperparameters, one value per name in ``names``).
        score: ``score(setting, seed) -> float``, a validation score where higher is better
            (accuracy; pass ``-loss`` for a loss). NaN marks a diverged run, which never wins.
        seeds: the tuning seeds (at least 1; 2 or more so one lucky seed does not decide).
        names: the name of each hyperparameter in a setting, for the printout and edge notes.

    Returns:
        A :class:`Selection`; its ``edges`` say if the best lies on the border of the grid.

    Raises:
        ValueError: an empty grid, no seeds, a setting whose length differs from ``names``, or a
            grid in which every setting diverged.
    """
    grid, seeds, names = list(grid), list(seeds), tuple(names)
    if not grid or not seeds:
        raise ValueError(f"select needs a non-empty grid and at least one seed, got {len(grid)} "
                         f"settings and {len(seeds)} seeds")
    if len(set(grid)) != len(grid):
        raise ValueError(f"the grid repeats a setting: {grid}")
    if any(len(_as_tuple(s)) != len(names) for s in grid):
        raise ValueError(f"every setting must hold one value per name in {names}, got {grid}")
    scores: dict[Hashable, tuple[float, ...]] = {}
    for setting in grid:
        scores[setting] = tuple(float(score(setting, seed)) for seed in seeds)
    means = {s: (statistics.mean(v) if all(math.isfinite(x) for x in v) else -math.inf)
             for s, v in scores.items()}
    best = max(grid, key=means.__getitem__)  # the first of equal means wins: grids list small first
    if means[best] == -math.inf:
        raise ValueError("every setting of the grid diverged or scored non-finite: try smaller values")
    scores = {s: tuple(x if math.isfinite(x) else math.nan for x in v) for s, v in scores.items()}
    return Selection(best, scores, names, _edges(grid, best, names))


def select_on_ladder(ladder: Sequence[Hashable], score: Callable[[Hashable, int], float], *,
                     start: Sequence[Hashable], seeds: Sequence[int],
                     names: Sequence[str] = ("lr",)) -> Selection:
    """:func:`select` on a window of ``ladder`` that grows until the best lies inside it.

    Starts with the settings from ``start[0]`` to ``start[-1]`` (a stretch of the ladder, e.g.
    three learning rates). While the best is the window's lowest or highest rung and the ladder
    goes further, the window grows by one rung that way and the search repeats; when every
    setting tried diverged, it steps one rung down. Only new settings cost runs if ``score``
    caches its results (``functools.cache``).

    Args:
        ladder: every setting the search may reach, in increasing order (e.g. LRs 3x apart).
        start: the first window's lowest and highest settings, both on the ladder.

    Returns:
        The :class:`Selection` of the last window, whose best lies inside it or on an end of the
        ladder (then its ``edges`` say so).

    Raises:
        ValueError: ``start`` is not on the ladder or is in the wrong order, or every setting
            down to the ladder's lowest diverged.
    """
    ladder = list(ladder)
    if len(set(ladder)) != len(ladder):
        raise ValueError(f"the ladder repeats a setting: {ladder}")
    if not start or any(s not in ladder for s in (start[0], start[-1])):
        raise ValueError(f"start must begin and end on the ladder {ladder}, got {list(start)}")
    low, high = ladder.index(start[0]), ladder.index(start[-1])
    if low > high:
        raise ValueError(f"start must run from low to high on the ladder, got {list(start)}")
    while True:
        try:
            choice = select(ladder[low:high + 1], score, seeds=seeds, names=names)
        except ValueError:  # every setting tried so far diverged: one rung down
            if low == 0:
                raise ValueError(f"every setting from {ladder[0]} to {ladder[high]} diverged, down to the "
                                 "lowest of the ladder: extend the ladder downwards") from None
            low -= 1
            continue
        best = ladder.index(choice.best)
        if best == low and low > 0:
            low -= 1
        elif best == high and high < len(ladder) - 1:
            high += 1
        else:
            return choice
