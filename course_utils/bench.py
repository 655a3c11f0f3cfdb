"""Timing done properly: warm-up, device synchronization, repeats, median and spread.

Every speed number in the course comes from here (notebooks 03, 11, 12, 13), never from a
bare ``time.time()`` around a GPU call: CUDA kernels run asynchronously, so without a
synchronize the clock stops before the work is done.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued work on ``device`` (a no-op on the CPU)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@dataclass(frozen=True)
class BenchResult:
    """Seconds per call over ``repeats`` timed calls (after ``warmup`` untimed ones)."""

    times_s: tuple[float, ...]
    warmup: int

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def min_s(self) -> float:
        return min(self.times_s)

    @property
    def iqr_s(self) -> float:
        """Interquartile range: the spread of the middle half of the timings."""
        if len(self.times_s) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.times_s, n=4, method="inclusive")
        return q3 - q1

    def __str__(self) -> str:
        return (f"median {self.median_s * 1e3:.3f} ms (IQR {self.iqr_s * 1e3:.3f} ms, "
                f"min {self.min_s * 1e3:.3f} ms, {len(self.times_s)} repeats)")


def _check_counts(warmup: int, repeats: int) -> None:
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")


def benchmark(fn: Callable[[], object], *, warmup: int = 3, repeats: int = 10,
              device: torch.device | str | None = None) -> BenchResult:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones, each synchronized."""
    _check_counts(warmup, repeats)
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return BenchResult(tuple(times), warmup)


@dataclass(frozen=True)
class Throughput:
    """Items per second, from the median time per call (and the fastest/slowest quartile)."""

    items_per_s: float
    low: float
    high: float
    result: BenchResult

    def __str__(self) -> str:
        return f"{self.items_per_s:,.0f} items/s (IQR {self.low:,.0f}-{self.high:,.0f})"


def throughput(fn: Callable[[], object], items_per_call: int, *, warmup: int = 3,
               repeats: int = 10, device: torch.device | str | None = None) -> Throughput:
    """Items processed per second by ``fn`` (e.g. images per training epoch)."""
    if items_per_call < 1:
        raise ValueError(f"items_per_call must be >= 1, got {items_per_call!r}")
    result = benchmark(fn, warmup=warmup, repeats=repeats, device=device)
    if len(result.times_s) >= 2:
        q1, _, q3 = statistics.quantiles(result.times_s, n=4, method="inclusive")
    else:
        q1 = q3 = result.median_s
    return Throughput(items_per_call / result.median_s, items_per_call / q3,
                      items_per_call / q1, result)


@dataclass(frozen=True)
class PairedResult:
    """Interleaved A/B timings; ``ratio`` is the median of the per-pair ratios B/A."""

    a_s: tuple[float, ...]
    b_s: tuple[float, ...]

    @property
    def ratios(self) -> tuple[float, ...]:
        return tuple(b / a for a, b in zip(self.a_s, self.b_s, strict=True))

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def __str__(self) -> str:
        return (f"B/A = {self.ratio:.3f} (median of {len(self.a_s)} pairs; "
                f"A {statistics.median(self.a_s) * 1e3:.2f} ms, "
                f"B {statistics.median(self.b_s) * 1e3:.2f} ms)")


def compare(fn_a: Callable[[], object], fn_b: Callable[[], object], *, pairs: int = 20,
            warmup: int = 2, device: torch.device | str | None = None) -> PairedResult:
    """Time A and B alternately (A, B, B, A, ...) so drifting machine load hits both alike."""
    _check_counts(warmup, pairs)
    for _ in range(warmup):
        fn_a()
        fn_b()
    a_s, b_s = [], []
    for pair in range(pairs):
        order = ((fn_a, a_s), (fn_b, b_s)) if pair % 2 == 0 else ((fn_b, b_s), (fn_a, a_s))
        for fn, sink in order:
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            sink.append(time.perf_counter() - start)
    return PairedResult(tuple(a_s), tuple(b_s))
