"""The timing loop of a measurement: warm up, time the raw call, summarise.

Example:
    >>> samples, warmup = time_call(
    ...     sum, ([1, 2, 3],), min_iterations=10, min_time_s=0.0,
    ...     max_time_s=1.0, warmup_s=0.0)
    >>> len(samples) >= 10 and warmup >= 3
    True
    >>> summary = latency_summary([1_000_000, 2_000_000, 3_000_000], 8)
    >>> summary["p50_ms"], summary["iterations"]
    (2.0, 3)
"""

import time


def time_call(call, args, min_iterations, min_time_s, max_time_s, warmup_s):
    """Times `call(*args)` alone; returns the samples in nanoseconds and warm-up count.

    Warm-up (excluded from the samples) runs at least 3 calls and `warmup_s` seconds.
    Measurement runs until both `min_iterations` calls and `min_time_s` seconds of
    timed calls (the samples' sum) are reached, or `max_time_s` seconds have passed (with at least 3 calls), so that slow
    calls such as `model.predict` stay time-bounded. Only the call itself sits between
    the two `perf_counter_ns` reads.
    """
    clock = time.perf_counter_ns
    warmup = 0
    start = clock()
    while warmup < 3 or clock() - start < warmup_s * 1e9:
        call(*args)
        warmup += 1
    samples = []
    append = samples.append
    min_ns, max_ns = min_time_s * 1e9, max_time_s * 1e9
    start = clock()
    timed = 0
    while True:
        t0 = clock()
        call(*args)
        t1 = clock()
        append(t1 - t0)
        timed += t1 - t0
        if t1 - start >= max_ns and len(samples) >= 3:
            break
        if len(samples) >= min_iterations and timed >= min_ns:
            break
    return samples, warmup


def settle(max_s=0.5, interval_s=0.01):
    """Waits until this process uses no CPU; returns the seconds waited.

    Thread pools keep spinning after their last task, waiting for the next one
    (OpenBLAS' and ONNX Runtime's do; `benchmarks/machine_noise.py` measures
    for how long, BENCHMARKS.md has the figures). A worker replies to its parent only once its own
    CPU time stops growing (less than 10% of an interval), so that the runtime timed
    next does not share the cores with a spinning pool. Bounded by `max_s`.
    """
    start = time.perf_counter()
    while time.perf_counter() - start < max_s:
        cpu = time.process_time()
        time.sleep(interval_s)
        if time.process_time() - cpu < 0.1 * interval_s:
            break
    return time.perf_counter() - start


def latency_summary(samples_ns, batch_size):
    """Percentiles (ms), mean ± std, throughput (samples/s), calls and seconds timed."""
    import numpy as np

    samples = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p90, p95, p99 = np.percentile(samples, [50, 90, 95, 99])
    return {
        "batch_size": int(batch_size),
        "iterations": int(samples.size),
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(samples.max()),
        "mean_ms": float(samples.mean()),
        "min_ms": float(samples.min()),
        "std_ms": float(samples.std()),
        "timed_s": float(samples.sum() / 1e3),
        "throughput_sps": float(batch_size * samples.size / (samples.sum() / 1e3)),
    }
