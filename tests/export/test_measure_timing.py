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


def test_time_call_is_bounded_and_counts_only_the_call():
    calls = []

    def call(value):
        calls.append(value)

    samples, warmup = timing.time_call(call, (1,), min_iterations=50, min_time_s=0.0,
                                        max_time_s=10.0, warmup_s=0.0)
    assert len(samples) == 50 and warmup == 3 and len(calls) == 53
    samples, _ = timing.time_call(time.sleep, (0.02,), min_iterations=1000, min_time_s=0.0,
                                   max_time_s=0.1, warmup_s=0.0)
    assert 3 <= len(samples) <= 6  # the time bound wins over min_iterations
    assert min(samples) >= 0.02e9


