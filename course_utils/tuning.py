"""Hyperparameter search: search spaces, trials, random and grid search, coarse-to-fine.

A search space is a dict of named dimensions (:class:`LogUniform`, :class:`Uniform`,
:class:`Choice`); an objective is a plain function ``params -> float`` (e.g. the validation
accuracy after a short training run). :func:`random_search` draws each trial's parameters with
Python's ``random.Random(seed)`` in the space's order, exactly as the 15-line search written
from scratch in notebook 10 does, so the two give identical trials; :func:`grid_search` tries
every combination of a few points per dimension; :func:`narrow` and :func:`coarse_to_fine`
shrink the space around the best trial. A trial whose objective is NaN (a run that diverged)
is kept as a result and ranks last. ``course_utils.studies`` maps the same spaces onto Optuna.
Taught in notebook 10.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DIRECTIONS = ("maximize", "minimize")


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _check_bounds(kind: str, low: Any, high: Any) -> tuple[float, float]:
    low, high = _number(low, f"{kind} low"), _number(high, f"{kind} high")
    if low > high:
        raise ValueError(f"{kind}(low={low:g}, high={high:g}) is inverted: low must be <= high "
                         "(swap the two bounds)")
    return low, high


@dataclass(frozen=True)
class LogUniform:
    """A positive number drawn uniformly on a log scale (learning rates, weight decays)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        low, high = _check_bounds("LogUniform", self.low, self.high)
        if low <= 0:
            raise ValueError(f"LogUniform needs 0 < low, got low={low:g}: a log scale never "
                             "reaches 0 (use Choice to include 0, e.g. Choice((0.0, 1e-5, 1e-4)))")

    def sample(self, rng: random.Random) -> float:
        return 10 ** rng.uniform(math.log10(self.low), math.log10(self.high))

    def grid(self, points: int) -> tuple[float, ...]:
        """``points`` values evenly spaced on the log scale, both bounds included."""
        low, high = math.log10(self.low), math.log10(self.high)
        if points == 1:
            return (10 ** ((low + high) / 2),)
        return tuple(10 ** (low + (high - low) * k / (points - 1)) for k in range(points))


@dataclass(frozen=True)
class Uniform:
    """A number drawn uniformly between ``low`` and ``high`` (momentum, dropout)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_bounds("Uniform", self.low, self.high)

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)

    def grid(self, points: int) -> tuple[float, ...]:
        if points == 1:
            return ((self.low + self.high) / 2,)
        return tuple(self.low + (self.high - self.low) * k / (points - 1) for k in range(points))


@dataclass(frozen=True)
class Choice:
    """One of a few values (weight decay in {1e-4, 1e-5, 0}, an optimizer name)."""

    values: tuple

    def __post_init__(self) -> None:
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Sequence) \
                or len(self.values) == 0:
            raise ValueError(f"Choice needs a non-empty tuple of values, got {self.values!r}")
        object.__setattr__(self, "values", tuple(self.values))

    def sample(self, rng: random.Random) -> Any:
        return rng.choice(self.values)

    def grid(self, points: int) -> tuple:
        """Every value (a grid over a choice tries them all, whatever ``points`` says)."""
        return self.values


Dimension = LogUniform | Uniform | Choice


def check_space(space: Mapping[str, Dimension]) -> dict[str, Dimension]:
    """Return ``space`` as a dict after checking it (the dimensions check their own bounds).

    Raises:
        ValueError: the space is empty, or a name is not a non-empty string.
        TypeError: a dimension is not a LogUniform, Uniform or Choice.
    """
    if not isinstance(space, Mapping) or len(space) == 0:
        raise ValueError(f"the search space is empty ({space!r}): give at least one dimension, "
                         "e.g. {'lr': LogUniform(1e-3, 1.0)}")
    for name, dimension in space.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"dimension names must be non-empty strings, got {name!r}")
        if not isinstance(dimension, (LogUniform, Uniform, Choice)):
            raise TypeError(f"dimension {name!r} must be a LogUniform, Uniform or Choice, got "
                            f"{type(dimension).__name__}")
    return dict(space)


def parse_space(spec: Mapping[str, Sequence[Any]]) -> dict[str, Dimension]:
    """A search space from plain data (e.g. JSON): ``{"lr": ["log", 1e-3, 1.0], "momentum":
    ["uniform", 0.8, 0.99], "weight_decay": ["choice", 0, 1e-5, 1e-4]}``.

    Raises:
        ValueError: an empty space, an unknown kind, wrong bounds (inverted, log <= 0).
    """
    if not isinstance(spec, Mapping) or len(spec) == 0:
        raise ValueError(f"the search space is empty ({spec!r}): give at least one dimension, "
                         'e.g. {"lr": ["log", 0.001, 1.0]}')
    kinds = {"log": LogUniform, "uniform": Uniform}
    space: dict[str, Dimension] = {}
    for name, entry in spec.items():
        if isinstance(entry, (str, bytes)) or not isinstance(entry, Sequence) or len(entry) < 2:
            raise ValueError(f"dimension {name!r}: expected [kind, ...], got {entry!r}")
        kind, *args = entry
        try:
            if kind == "choice":
                space[name] = Choice(tuple(args))
            elif kind in kinds and len(args) == 2:
                space[name] = kinds[kind](*args)
        except ValueError as err:
            raise ValueError(f"dimension {name!r}: {err}") from None
        if name not in space:
            raise ValueError(f"dimension {name!r}: {entry!r} is not [\"log\", low, high], "
                             "[\"uniform\", low, high] or [\"choice\", value, ...]")
    return check_space(space)


@dataclass(frozen=True)
class Trial:
    """One evaluated point: its number, parameters and objective value (NaN: it diverged)."""

    number: int
    params: dict[str, Any]
    value: float


@dataclass(frozen=True)
class SearchResult:
    """The trials of a search, in the order they ran, and which direction is better."""

    trials: tuple[Trial, ...]
    direction: str = "maximize"

    def _key(self, trial: Trial) -> float:
        if not math.isfinite(trial.value):
            return -math.inf  # a diverged trial ranks last in either direction
        return trial.value if self.direction == "maximize" else -trial.value

    @property
    def best(self) -> Trial:
        """The best trial (the first one among equals)."""
        return max(self.trials, key=self._key)

    def best_so_far(self) -> list[float]:
        """After each trial, the best value found up to it (NaN until a finite one appears)."""
        out, best = [], None
        for trial in self.trials:
            if best is None or self._key(trial) > self._key(best):
                best = trial
            out.append(best.value if math.isfinite(best.value) else math.nan)
        return out


Objective = Callable[[dict[str, Any]], float]


def _run(objective: Objective, points: Sequence[dict[str, Any]], direction: str) -> SearchResult:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r}; choose one of {DIRECTIONS}")
    if not callable(objective):
        raise TypeError(f"objective must be a function params -> float, got {type(objective).__name__}")
    trials = []
    for number, params in enumerate(points):
        value = objective(dict(params))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"the objective must return a number (NaN for a run that diverged), "
                            f"got {type(value).__name__} for {params}")
        trials.append(Trial(number, dict(params), float(value)))
    return SearchResult(tuple(trials), direction)


def _check_count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value


def random_points(space: Mapping[str, Dimension], n_trials: int, *, seed: int) -> list[dict[str, Any]]:
    """``n_trials`` parameter dicts drawn from ``random.Random(seed)``, dimension by dimension."""
    space = check_space(space)
    rng = random.Random(seed)
    return [{name: dim.sample(rng) for name, dim in space.items()}
            for _ in range(_check_count(n_trials, "n_trials"))]


def grid_points(space: Mapping[str, Dimension], points_per_axis: int) -> list[dict[str, Any]]:
    """Every combination of ``points_per_axis`` values per dimension (all values of a Choice)."""
    space = check_space(space)
    axes = [dim.grid(_check_count(points_per_axis, "points_per_axis")) for dim in space.values()]
    return [dict(zip(space, values, strict=True)) for values in itertools.product(*axes)]


def random_search(objective: Objective, space: Mapping[str, Dimension], *, n_trials: int,
                  seed: int, direction: str = "maximize") -> SearchResult:
    """Evaluate ``objective`` at ``n_trials`` random points of ``space`` (see :func:`random_points`).

    Raises:
        ValueError: an empty or invalid space, ``n_trials`` < 1, an unknown ``direction``, or an
            objective that returns something other than a number.
    """
    return _run(objective, random_points(space, n_trials, seed=seed), direction)


def grid_search(objective: Objective, space: Mapping[str, Dimension], *, points_per_axis: int,
                direction: str = "maximize") -> SearchResult:
    """Evaluate ``objective`` at every point of the grid (see :func:`grid_points`)."""
    return _run(objective, grid_points(space, points_per_axis), direction)


def narrow(space: Mapping[str, Dimension], best: Mapping[str, Any], *,
           factor: float = 3.0) -> dict[str, Dimension]:
    """A smaller space centred on ``best``, clipped to ``space``: the "fine" of coarse-to-fine.

    A LogUniform becomes ``[best / factor, best * factor]``; a Uniform keeps ``1 / factor`` of its
    width around ``best``; a Choice keeps only the best value (a choice has no "near").

    Raises:
        ValueError: ``factor`` <= 1, or ``best`` lacks a dimension of ``space``.
    """
    space = check_space(space)
    if not _number(factor, "factor") > 1:
        raise ValueError(f"factor must be > 1, got {factor!r}")
    missing = sorted(set(space) - set(best))
    if missing:
        raise ValueError(f"best has no value for {missing}")
    out: dict[str, Dimension] = {}
    for name, dim in space.items():
        value = best[name]
        if isinstance(dim, LogUniform):
            out[name] = LogUniform(max(dim.low, value / factor), min(dim.high, value * factor))
        elif isinstance(dim, Uniform):
            half = (dim.high - dim.low) / (2 * factor)
            out[name] = Uniform(max(dim.low, value - half), min(dim.high, value + half))
        else:
            out[name] = Choice((value,))
    return out


def coarse_to_fine(objective: Objective, space: Mapping[str, Dimension], *, rounds: int,
                   n_trials: int, seed: int, factor: float = 3.0,
                   direction: str = "maximize") -> list[SearchResult]:
    """``rounds`` random searches, each in the previous round's space narrowed around its best.

    Round ``k`` uses seed ``seed + k``. Returns one :class:`SearchResult` per round.
    """
    results: list[SearchResult] = []
    for k in range(_check_count(rounds, "rounds")):
        results.append(random_search(objective, space, n_trials=n_trials, seed=seed + k,
                                     direction=direction))
        space = narrow(space, results[-1].best.params, factor=factor)
    return results
