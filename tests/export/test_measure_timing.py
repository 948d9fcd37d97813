"""Tests for export.measure.timing: percentiles and the bounds of the timing loop."""

import time

import numpy as np
import pytest

from export.measure import timing


def test_latency_summary_matches_numpy_percentiles():
    samples = np.random.default_rng(0).integers(1_000, 1_000_000, 501)
    summary = timing.latency_summary(samples, batch_size=8)
    p50, p90, p99 = np.percentile(samples / 1e6, [50, 90, 99])
    assert summary["p50_ms"] == pytest.approx(p50)
    assert summary["p90_ms"] == pytest.approx(p90)
    assert summary["p99_ms"] == pytest.approx(p99)
    assert summary["max_ms"] == pytest.approx(samples.max() / 1e6)
    assert summary["throughput_sps"] == pytest.approx(8 * 501 / (samples.sum() / 1e9))


# No minimum time and no warm-up time: the loop stops at its other bounds.
UNTIMED = {"min_time_s": 0.0, "warmup_s": 0.0}


@pytest.mark.parametrize("calls_per_sample,samples_taken", [(1, 50), (4, 13)])
def test_time_call_counts_only_the_calls(calls_per_sample, samples_taken):
    """3 warm-up calls, then 50 calls timed one a sample or in blocks of 4."""
    calls = []
    samples, warmup = timing.time_call(
        calls.append,
        (1,),
        min_iterations=50,
        max_time_s=10.0,
        calls_per_sample=calls_per_sample,
        **UNTIMED,
    )
    assert len(samples) == samples_taken and warmup == 3
    assert len(calls) == 3 + samples_taken * calls_per_sample


def test_time_call_is_bounded_in_time():
    samples, _ = timing.time_call(
        time.sleep, (0.02,), min_iterations=1000, max_time_s=0.1, **UNTIMED
    )
    assert 3 <= len(samples) <= 6  # the time bound wins over min_iterations
    assert min(samples) >= 0.02e9


def busy_wait(microseconds):
    """A runtime stub: spins for a fixed wall time (preemption cannot shorten it)."""
    end = time.perf_counter_ns() + microseconds * 1000
    while time.perf_counter_ns() < end:
        pass


@pytest.mark.parametrize("delay_us", [5, 20])
def test_block_timing_reports_a_known_per_call_delay(delay_us):
    k = timing.calls_per_sample(busy_wait, (delay_us,))
    assert k >= 2  # shorter than MIN_SAMPLE_S: timed in blocks
    assert k * delay_us >= timing.MIN_SAMPLE_S * 1e6 * 0.5
    samples, _ = timing.time_call(
        busy_wait,
        (delay_us,),
        min_iterations=2000,
        min_time_s=0.05,
        max_time_s=2.0,
        warmup_s=0.01,
        calls_per_sample=k,
    )
    summary = timing.latency_summary(samples, batch_size=1, calls_per_sample=k)
    # Never below the delay; the loop adds well under a microsecond per call.
    assert summary["min_ms"] >= delay_us / 1e3
    assert summary["p50_ms"] == pytest.approx(delay_us / 1e3, rel=0.15)
    assert summary["calls_per_sample"] == k
    assert summary["samples"] == len(samples)
    assert summary["iterations"] == k * len(samples) >= 2000


def test_slow_calls_stay_one_call_a_sample():
    assert timing.calls_per_sample(busy_wait, (200,)) == 1
    assert timing.calls_per_sample(busy_wait, (5,), min_sample_s=0.0) == 1


def test_latency_summary_of_blocks_counts_calls_not_samples():
    summary = timing.latency_summary(
        [2_000, 4_000, 6_000], batch_size=2, calls_per_sample=10
    )
    assert summary["iterations"] == 30 and summary["samples"] == 3
    assert summary["p50_ms"] == pytest.approx(0.004)
    assert summary["timed_s"] == pytest.approx(10 * 12_000 / 1e9)
    assert summary["throughput_sps"] == pytest.approx(2 / 4e-6)


@pytest.mark.parametrize("calls_per_sample", [0, -3])
def test_time_call_rejects_a_non_positive_block(calls_per_sample):
    with pytest.raises(
        ValueError, match="`calls_per_sample` must be a positive integer"
    ):
        timing.time_call(
            sum, ([1],), 5, 0.0, 1.0, 0.0, calls_per_sample=calls_per_sample
        )
