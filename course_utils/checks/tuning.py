"""Checks for notebook 10: log-uniform sampling, a smoothed loss curve, and when to stop."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from course_utils.checks._base import CheckResult, _call, _number


def check_log_uniform(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(rng, low, high)``: one draw, uniform on a log scale between ``low`` and ``high``.

    ``rng`` is a ``random.Random``. Draws 2,000 values in [1e-4, 1] and expects each of the four
    decades to get about a quarter of them (a plain uniform draw puts 90% in the top decade).
    Notebook 10.
    """
    low, high, draws = 1e-4, 1.0, 2000
    rng = random.Random(0)
    values = []
    for _ in range(draws):
        got, failure = _call(fn, rng, low, high)
        if failure is not None:  # a CheckResult that failed is falsy
            return failure
        value = _number(got)
        if value is None:
            return CheckResult(False, f"return a number, got {got!r}")
        values.append(value)
    outside = [v for v in values if not low <= v <= high]
    if outside:
        return CheckResult(False, f"{len(outside)} of {draws} draws fall outside [{low:g}, {high:g}], "
                                  f"e.g. {outside[0]:.3g}: draw the exponent between log10(low) and "
                                  "log10(high), then raise 10 to it")
    if len(set(values)) < draws // 2:
        return CheckResult(False, "most draws repeat: draw a new random number for every call")
    shares = [sum(10.0 ** -(k + 1) <= v < 10.0 ** -k for v in values) / draws for k in range(4)]
    if shares[0] > 0.6:
        return CheckResult(False, f"{shares[0]:.0%} of the draws land in the top decade [0.1, 1]: "
                                  "that is a uniform draw; draw the *exponent* uniformly instead")
    if any(abs(share - 0.25) > 0.05 for share in shares):
        return CheckResult(False, "the four decades of [1e-4, 1] got "
                                  f"{', '.join(f'{s:.0%}' for s in reversed(shares))} of the draws "
                                  "(lowest first); each should get about 25%")
    return CheckResult(True, f"{fn.__name__}: {draws} draws inside [1e-4, 1], about a quarter in each "
                             f"decade ({', '.join(f'{s:.0%}' for s in reversed(shares))}).")


def _reference_smooth(values: list[float], beta: float) -> list[float]:
    out, average, count = [], 0.0, 0
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        count += 1
        average = beta * average + (1 - beta) * value
        out.append(average / (1 - beta ** count))
    return out


def _same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all((math.isnan(x) and math.isnan(y)) or abs(x - y) <= 1e-9 * max(1, abs(y))
                                    for x, y in zip(a, b, strict=True))


def check_smooth(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(values, beta) -> list``: the bias-corrected exponential moving average.

    ``average = beta * average + (1 - beta) * value``, reported as ``average / (1 - beta ** n)``
    after ``n`` finite values; a NaN/Inf value is passed through and left out of the average.
    Names the usual mistakes: no bias correction, ``beta`` and ``1 - beta`` swapped. Notebook 10.
    """
    cases = (([2.0] * 6, 0.9), ([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0], 0.8),
             ([2.0, 1.0, math.nan, 0.5], 0.5))
    for values, beta in cases:
        got, failure = _call(fn, list(values), beta)
        if failure is not None:
            return failure
        try:
            got = [float(v) for v in got]
        except (TypeError, ValueError):
            return CheckResult(False, f"return a list of numbers, got {got!r}")
        expected = _reference_smooth(values, beta)
        if _same(got, expected):
            continue
        case = f"values={values}, beta={beta}"
        uncorrected, average = [], 0.0
        for value in values:
            average = beta * average + (1 - beta) * value if math.isfinite(value) else average
            uncorrected.append(average)
        if len(got) != len(values):
            hint = f"return one smoothed value per input value ({len(values)}), got {len(got)}"
        elif _same(got[:2], uncorrected[:2]):
            hint = (f"the first values are too small ({got[0]:.3g} instead of {expected[0]:.3g}): the "
                    "average starts at 0; divide it by (1 - beta ** n) after n values")
        elif _same(got, _reference_smooth(values, 1 - beta)):
            hint = "beta and 1 - beta are swapped: the old average keeps the weight beta"
        elif any(math.isnan(v) for v in values):
            hint = ("a NaN must be passed through without entering the average (count only finite "
                    "values in n)")
        else:
            hint = f"expected {[round(v, 4) for v in expected]}, got {[round(v, 4) for v in got]}"
        return CheckResult(False, f"{case}: {hint}")
    return CheckResult(True, f"{fn.__name__} matches the bias-corrected moving average in {len(cases)} "
                             "cases, a NaN included.")


def _reference_stop(accuracies: list[float], patience: int, *, ties_improve: bool = False,
                    late: int = 0, first: int = 1) -> tuple[int | None, int]:
    best, best_epoch = -math.inf, 0
    for epoch, accuracy in enumerate(accuracies, start=first):
        if accuracy > best or (ties_improve and accuracy == best):
            best, best_epoch = accuracy, epoch
        elif epoch - best_epoch >= patience + late:
            return epoch, best_epoch
    return None, best_epoch


def check_stop_epoch(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(val_accs, patience) -> (stop_epoch, best_epoch)`` (epochs counted from 1).

    Training stops after the first epoch that ends ``patience`` epochs without a strictly higher
    validation accuracy than the best so far, and keeps the best epoch's weights;
    ``stop_epoch`` is None when that never happens (then ``best_epoch`` is the best overall).
    Notebook 10.
    """
    cases = (([0.50, 0.60, 0.70, 0.65, 0.66, 0.69, 0.80], 3),
             ([0.50, 0.60, 0.60, 0.60, 0.70], 2),
             ([0.10, 0.20, 0.30, 0.40], 1),
             ([0.80, 0.70, 0.75], 1))
    for accuracies, patience in cases:
        got, failure = _call(fn, list(accuracies), patience)
        if failure is not None:
            return failure
        expected = _reference_stop(accuracies, patience)
        if isinstance(got, (tuple, list)) and len(got) == 2 and tuple(got) == expected:
            continue
        case = f"val_accs={accuracies}, patience={patience}"
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return CheckResult(False, f"{case}: return (stop_epoch, best_epoch), got {got!r}")
        got = tuple(got)
        mistakes = {
            "an equal accuracy is not an improvement: compare with >, not >=":
                _reference_stop(accuracies, patience, ties_improve=True),
            "epochs are counted from 1 (epoch 1 is the first), not from 0":
                _reference_stop(accuracies, patience, first=0),
            "one epoch early: wait until `patience` epochs in a row brought no improvement":
                _reference_stop(accuracies, patience, late=-1),
            "one epoch late: stop as soon as `patience` epochs in a row brought no improvement":
                _reference_stop(accuracies, patience, late=1),
        }
        hint = next((text for text, wrong in mistakes.items() if got == wrong and wrong != expected),
                    f"expected {expected}, got {got}")
        return CheckResult(False, f"{case}: {hint}")
    return CheckResult(True, f"{fn.__name__} stops at the right epoch and keeps the best one in "
                             f"{len(cases)} cases.")
