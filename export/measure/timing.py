"""The timing loop of a measurement: warm up, time the raw call, summarise.

A timed sample is one call, or, for calls shorter than `MIN_SAMPLE_S`, a block of
`calls_per_sample` consecutive calls with one clock pair around the block (as
LiteRT's `benchmark_model` and `onnxruntime_perf_test` time tiny models): the
sample's figure is the block's time divided by its calls. A pair of
`perf_counter_ns` reads and the loop around them cost a fraction of a microsecond,
which a call of a few microseconds would otherwise carry in every sample. For block
samples the percentiles are those of per-call averages over `calls_per_sample`
calls: p50 is what a user's loop sees per call, p90/p99 the slow tail of such short
stretches (a stall of the machine raises one sample; it is spread over its block).

Example:
    >>> samples, warmup = time_call(
    ...     sum, ([1, 2, 3],), min_iterations=10, min_time_s=0.0,
    ...     max_time_s=1.0, warmup_s=0.0)
    >>> len(samples) >= 10 and warmup >= 3
    True
    >>> samples, _ = time_call(
    ...     sum, ([1, 2, 3],), min_iterations=10, min_time_s=0.0,
    ...     max_time_s=1.0, warmup_s=0.0, calls_per_sample=5)
    >>> len(samples) >= 2
    True
    >>> summary = latency_summary([1_000_000, 2_000_000, 3_000_000], 8)
    >>> summary["p50_ms"], summary["iterations"], summary["calls_per_sample"]
    (2.0, 3, 1)
"""

import math
import time

# Calls shorter than this are timed in blocks lasting about this long.
MIN_SAMPLE_S = 50e-6
# At most this many calls in one timed sample.
MAX_CALLS_PER_SAMPLE = 1000


def calls_per_sample(call, args, min_sample_s=MIN_SAMPLE_S, probe_s=0.02):
    """How many calls one timed sample holds so that it lasts at least `min_sample_s`.

    Times consecutive calls for about `probe_s` seconds (at least 3); the median of
    those single calls estimates one call. 1 when a call takes `min_sample_s` or
    longer (or when `min_sample_s` is 0), else `ceil(min_sample_s / call)`, at most
    `MAX_CALLS_PER_SAMPLE`.

    Args:
        call: The timed callable.
        args: Its positional arguments.
        min_sample_s: The shortest timed sample, in seconds.
        probe_s: Seconds spent estimating the call's duration.

    Returns:
        A positive int.

    Example:
        >>> calls_per_sample(sum, ([1, 2],), min_sample_s=0.0)
        1
        >>> calls_per_sample(sum, ([1, 2],), min_sample_s=50e-6) > 1
        True
    """
    if min_sample_s <= 0:
        return 1
    clock = time.perf_counter_ns
    single = []
    start = clock()
    while len(single) < 3 or clock() - start < probe_s * 1e9:
        t0 = clock()
        call(*args)
        single.append(clock() - t0)
    single.sort()
    median_ns = max(single[len(single) // 2], 1)
    if median_ns >= min_sample_s * 1e9:
        return 1
    return int(min(MAX_CALLS_PER_SAMPLE, math.ceil(min_sample_s * 1e9 / median_ns)))


def time_call(
    call, args, min_iterations, min_time_s, max_time_s, warmup_s, calls_per_sample=1
):
    """Times `call(*args)` alone; returns the samples in nanoseconds and warm-up count.

    Warm-up (excluded from the samples) runs at least 3 calls and `warmup_s` seconds.
    Measurement runs until both `min_iterations` calls and `min_time_s` seconds of
    timed calls (the samples' sum) are reached, or `max_time_s` seconds have passed
    (with at least 3 samples), so that slow calls such as `model.predict` stay
    time-bounded. Only the calls themselves sit between the two `perf_counter_ns`
    reads: one call, or a block of `calls_per_sample` calls in a bare loop.

    Returns:
        `(samples, warmup)`: per sample the nanoseconds per call (a block's time
        divided by `calls_per_sample`), and the number of warm-up calls.
    """
    k = int(calls_per_sample)
    if k < 1:
        raise ValueError(
            f"`calls_per_sample` must be a positive integer. "
            f"Received: calls_per_sample={calls_per_sample}"
        )
    clock = time.perf_counter_ns
    warmup = warm_up(call, args, warmup_s)
    samples = []
    append = samples.append
    min_ns, max_ns = min_time_s * 1e9, max_time_s * 1e9
    min_samples = math.ceil(min_iterations / k)
    timed = 0
    # One loop for every block size: a `for` over range(1) costs tens of nanoseconds,
    # nothing next to a call of 50 µs or more (the only calls timed one by one).
    block = range(k)
    start = clock()
    while True:
        t0 = clock()
        for _ in block:
            call(*args)
        t1 = clock()
        append((t1 - t0) / k)
        timed += t1 - t0
        if t1 - start >= max_ns and len(samples) >= 3:
            break
        if len(samples) >= min_samples and timed >= min_ns:
            break
    return samples, warmup


def warm_up(call, args, warmup_s):
    """Calls `call(*args)` at least 3 times and for `warmup_s` seconds; returns the count.

    Example:
        >>> warm_up(sum, ([1, 2],), 0.0)
        3
    """
    clock = time.perf_counter_ns
    count = 0
    start = clock()
    while count < 3 or clock() - start < warmup_s * 1e9:
        call(*args)
        count += 1
    return count


def settle(max_s=0.5, interval_s=0.01):
    """Waits until this process uses no CPU; returns the seconds waited.

    Thread pools keep spinning after their last task, waiting for the next one
    (OpenBLAS' and ONNX Runtime's do; `benchmarks/machine_noise.py` measures
    for how long, BENCHMARKS.md has the figures). A worker replies to its parent only
    once its own CPU time stops growing (less than 10% of an interval), so that the
    runtime timed next does not share the cores with a spinning pool. Bounded by
    `max_s`.
    """
    start = time.perf_counter()
    while time.perf_counter() - start < max_s:
        cpu = time.process_time()
        time.sleep(interval_s)
        if time.process_time() - cpu < 0.1 * interval_s:
            break
    return time.perf_counter() - start


def latency_summary(samples_ns, batch_size, calls_per_sample=1):
    """Percentiles (ms), mean ± std, throughput (samples/s), calls and seconds timed.

    `samples_ns` are nanoseconds per call, one figure per timed sample of
    `calls_per_sample` calls (`time_call`). The percentiles, min, max and std are over
    those per-sample figures; `iterations` counts calls (`samples` times
    `calls_per_sample`), `timed_s` the seconds of all of them.
    """
    import numpy as np

    k = int(calls_per_sample)
    samples = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p90, p95, p99 = np.percentile(samples, [50, 90, 95, 99])
    timed_ms = float(samples.sum()) * k
    return {
        "batch_size": int(batch_size),
        "iterations": int(samples.size) * k,
        "samples": int(samples.size),
        "calls_per_sample": k,
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(samples.max()),
        "mean_ms": float(samples.mean()),
        "min_ms": float(samples.min()),
        "std_ms": float(samples.std()),
        "timed_s": timed_ms / 1e3,
        "throughput_sps": float(batch_size * samples.size * k / (timed_ms / 1e3)),
    }
