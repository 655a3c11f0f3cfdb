"""Tests for course_utils.bench, on a fake clock: no assertion depends on real elapsed time."""

from __future__ import annotations

import pytest

from course_utils import bench
from course_utils.bench import BenchResult, benchmark, compare, throughput


class FakeClock:
    """``time.perf_counter`` that only moves when a timed function (or a sync) advances it."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(bench.time, "perf_counter", fake)
    return fake


def scripted(clock: FakeClock, durations: list[float], log: list | None = None, name: str = ""):
    """A function whose n-th call takes ``durations[n]`` seconds of fake time."""
    remaining = list(durations)

    def fn():
        if log is not None:
            log.append(name)
        clock.now += remaining.pop(0)

    fn.remaining = remaining
    return fn


def test_benchmark_times_repeats_after_untimed_warmup(clock):
    fn = scripted(clock, [100.0, 200.0, 3.0, 1.0, 4.0, 1.0, 5.0])  # 2 warm-up calls, then 5 timed
    result = benchmark(fn, warmup=2, repeats=5)
    assert fn.remaining == []  # called warmup + repeats times
    assert result.times_s == (3.0, 1.0, 4.0, 1.0, 5.0)  # the warm-up calls are not timed
    assert result.warmup == 2
    assert result.median_s == 3.0
    assert result.min_s == 1.0
    assert result.iqr_s == 3.0  # quartiles of 1, 1, 3, 4, 5 (inclusive): 1 and 4


def test_benchmark_stops_the_clock_after_synchronizing(clock, monkeypatch):
    synced = []

    def slow_sync(device=None):  # like a GPU finishing queued work: 0.5 s more
        synced.append(device)
        clock.now += 0.5

    monkeypatch.setattr(bench, "synchronize", slow_sync)
    result = benchmark(scripted(clock, [1.0, 2.0, 4.0]), warmup=1, repeats=2, device="cpu")
    assert result.times_s == (2.5, 4.5)
    assert synced == ["cpu"] * 3  # once after the warm-up, once per timed call


def test_single_repeat_has_zero_spread(clock):
    result = benchmark(scripted(clock, [2.0]), warmup=0, repeats=1)
    assert result.times_s == (2.0,)
    assert result.iqr_s == 0.0
    assert "2000.000 ms" in str(result)


def test_bench_result_statistics_from_given_timings():
    result = BenchResult((0.4, 0.1, 0.3, 0.2), warmup=0)
    assert result.median_s == pytest.approx(0.25)
    assert result.min_s == 0.1
    assert result.iqr_s == pytest.approx(0.325 - 0.175)  # inclusive quartiles of 0.1, 0.2, 0.3, 0.4


def test_throughput_is_items_per_median_second(clock):
    fn = scripted(clock, [9.0, 1.0, 4.0, 2.0])
    result = throughput(fn, 10, warmup=1, repeats=3)
    assert result.result.times_s == (1.0, 4.0, 2.0)
    assert result.items_per_s == pytest.approx(10 / 2.0)
    # Inclusive quartiles of 1, 2, 4 are 1.5 and 3: the slow quartile gives the low rate.
    assert result.low == pytest.approx(10 / 3.0)
    assert result.high == pytest.approx(10 / 1.5)
    assert result.low <= result.items_per_s <= result.high


def test_throughput_with_one_repeat(clock):
    result = throughput(scripted(clock, [4.0]), 8, warmup=0, repeats=1)
    assert result.items_per_s == result.low == result.high == pytest.approx(2.0)


def test_compare_alternates_a_and_b_and_ratio_is_median_of_pair_ratios(clock):
    calls: list[str] = []
    fn_a = scripted(clock, [50.0, 1.0, 2.0, 4.0], calls, "a")  # 1 warm-up, then 3 timed
    fn_b = scripted(clock, [70.0, 3.0, 2.0, 4.0], calls, "b")
    result = compare(fn_a, fn_b, pairs=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then A B, B A, A B
    assert result.a_s == (1.0, 2.0, 4.0)
    assert result.b_s == (3.0, 2.0, 4.0)
    assert result.ratios == (3.0, 1.0, 1.0)
    assert result.ratio == 1.0  # the median of the ratios, not median(B) / median(A) = 1.5


def test_compare_excludes_the_sync_before_each_call(clock, monkeypatch):
    def slow_sync(device=None):
        clock.now += 0.5

    monkeypatch.setattr(bench, "synchronize", slow_sync)
    result = compare(scripted(clock, [1.0, 1.0]), scripted(clock, [2.0, 2.0]), pairs=2, warmup=0)
    assert result.a_s == (1.5, 1.5)  # the call and the sync after it, not the one before
    assert result.b_s == (2.5, 2.5)


@pytest.mark.parametrize("kwargs", [
    {"warmup": -1}, {"warmup": 1.5}, {"warmup": "2"}, {"repeats": 0}, {"repeats": -3}, {"repeats": "5"},
])
def test_benchmark_bad_counts_raise_before_calling(clock, kwargs):
    fn = scripted(clock, [])  # any call would fail with IndexError
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        benchmark(fn, **kwargs)


@pytest.mark.parametrize("items", [0, -5])
def test_throughput_bad_items_raise_before_calling(clock, items):
    with pytest.raises(ValueError, match="items_per_call"):
        throughput(scripted(clock, []), items)


@pytest.mark.parametrize("kwargs", [{"pairs": 0}, {"warmup": -1}])
def test_compare_bad_counts_raise_before_calling(clock, kwargs):
    with pytest.raises(ValueError):
        compare(scripted(clock, []), scripted(clock, []), **kwargs)
