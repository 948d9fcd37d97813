"""The release's own timing: the chosen file, timed alone, in many short windows.

The report chooses its release on interleaved rounds (`export.measure.worker`):
every variant timed in the same few windows, so that their ranking holds under
the same machine conditions. Those rounds are short (a fifth of `min_time_s`
per window by default), which is right for a ranking but little to give the
released file an absolute figure. As LiteRT's `benchmark_model` and MLPerf's
performance run do for the model they report, `confirm_release` times the
winner's file again, alone, with the same measurement worker: at each batch
size with the thread count the report chose for it, in `CONFIRM_ROUNDS`
windows of the report's window length, a pause of one window between rounds
(a step of the machine's speed moves a few windows, not the figure), warmed up
as the report warms up. `release.json` records these figures
(`export.report.choose.write_release`); `latency_violations` checks them
against the budget's latency limits before anything is released.

Example (the NumPy floor of a small dense network stands in for a release):
    >>> import os, tempfile
    >>> import numpy as np
    >>> from export import measure
    >>> rng = np.random.default_rng(0)
    >>> kernel = rng.standard_normal((16, 4), dtype=np.float32)
    >>> path = measure.save_dense_layers(
    ...     [(kernel, None, "linear")], os.path.join(tempfile.mkdtemp(), "mlp.npz"))
    >>> entry = {"artifact": path, "format": "numpy", "threads": 1,
    ...          "latency": {"1": {"p50_ms": 0.01, "threads": 1},
    ...                      "8": {"p50_ms": 0.02, "threads": 2}}}
    >>> timing = {"min_time_s": 0.02, "min_iterations": 4, "max_time_s": 0.2,
    ...           "warmup_s": 0.01, "rounds": 2}
    >>> confirmation = confirm_release(entry, timing, rounds=3)
    >>> confirmation["rounds"], confirmation["window_s"]
    (3, 0.01)
    >>> [(b, s["threads"], s["windows"]) for b, s in confirmation["latency"].items()]
    [('1', 1, 3), ('8', 2, 3)]
    >>> all(0 < s["p50_ms"] <= s["p99_ms"] for s in confirmation["latency"].values())
    True
"""

import datetime
import math
import os
import tempfile
import time

from export import measure
from export.measure import worker
from export.measure.artifacts import check_validity
from export.report import budgets
from export.report import choose

# Windows per batch size in the confirmation run (each as long as one of the
# report's windows).
CONFIRM_ROUNDS = 20


def thread_plan(entry):
    """The thread count the report chose per batch size: `{batch (str): threads}`.

    A searched format records its choice per batch size (`latency[b]["threads"]`,
    `export.measure.best_of_threads`); the others ran at `entry["threads"]`.
    """
    plan = {}
    for batch, stats in entry["latency"].items():
        threads = stats.get("threads") or entry.get("threads")
        if threads is None:
            raise ValueError(
                f"`entry` must record the threads of batch {batch}. "
                f"Received: latency[{batch!r}]={stats}"
            )
        plan[str(batch)] = int(threads)
    return plan


def confirm_release(
    entry, timing, *, rounds=CONFIRM_ROUNDS, options=None, timeout_s=900
):
    """Times the released file alone, in `rounds` windows per batch size.

    Args:
        entry: The winner's report entry: `artifact`, `format`, `latency` (its
            batch sizes, with the `threads` chosen for each) and `threads`.
        timing: The report's timing settings (`report["settings"]["timing"]`):
            `min_time_s`, `min_iterations`, `max_time_s` and `rounds` give the
            window (`export.measure.worker.windows`); `warmup_s` is the warm-up
            of each batch size after loading, `rewarm_s` that of every window.
            Missing keys take `export.measure`'s defaults.
        rounds: Windows per batch size (>= 1), a pause of one window between
            rounds.
        options: Runtime options the report measured the file with.
        timeout_s: Seconds a worker may take to load, or to answer one command.

    Returns:
        A dict: `rounds`, `window_s`, `pause_s`, `max_window_s`,
        `min_calls_per_window`, `warmup_s`, `rewarm_s`, `started_utc`,
        `wall_s`, `sha256` (of the file timed), `runtime`, and `latency`: per
        batch size (a string, as the report's) `p50_ms`, `p90_ms`, `p95_ms`,
        `p99_ms`, `max_ms`, `mean_ms`, `std_ms`, `min_ms`, `samples`,
        `calls_per_sample`, `iterations`, `timed_s`, `throughput_sps`,
        `threads`, `windows` and `validity` (`check_validity` against the run's
        total duration and call count).

    Raises:
        ValueError: `rounds` is not a positive integer.
        RuntimeError: the file could not be read, loaded or timed, or the entry
            does not record a batch size's threads (one line).
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(
            f"`rounds` must be an integer >= 1. Received: rounds={rounds!r}"
        )
    fmt, path = entry["format"], entry["artifact"]
    min_iterations = int(timing.get("min_iterations", measure.DEFAULT_MIN_ITERATIONS))
    window_s, _, max_window_s = worker.windows(
        int(timing.get("rounds", measure.DEFAULT_ROUNDS)),
        float(timing.get("min_time_s", measure.DEFAULT_MIN_TIME_S)),
        min_iterations,
        float(timing.get("max_time_s", measure.DEFAULT_MAX_TIME_S)),
    )
    # The run as a whole makes at least the report's calls per batch size.
    calls = max(1, math.ceil(min_iterations / rounds))
    warmup_s = float(timing.get("warmup_s", measure.DEFAULT_WARMUP_S))
    rewarm_s = float(timing.get("rewarm_s", min(warmup_s, worker.REWARM_S)))
    totals = {"min_time_s": window_s * rounds, "min_iterations": calls * rounds}
    label = f"{fmt} {os.path.basename(os.path.normpath(path))}"
    started_utc = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    try:
        plan = thread_plan(entry)
        digest = choose.file_digest(path)
        results = run_windows(
            path,
            fmt,
            plan,
            {
                **totals,
                "max_time_s": max_window_s * rounds,
                "warmup_s": warmup_s,
                **(
                    {"min_sample_s": timing["min_sample_s"]}
                    if "min_sample_s" in timing
                    else {}
                ),
            },
            (window_s, calls, max_window_s, rewarm_s),
            rounds,
            options,
            timeout_s,
        )
    except (OSError, ValueError) as error:
        raise RuntimeError(
            f"confirming {label} failed: {' '.join(str(error).split())}"
        ) from None
    latency = {}
    for batch, threads in plan.items():
        stats = results[threads]["latency"][batch]
        figures = {
            key: stats[key]
            for key in (
                "p50_ms",
                "p90_ms",
                "p95_ms",
                "p99_ms",
                "max_ms",
                "mean_ms",
                "std_ms",
                "min_ms",
                "samples",
                "calls_per_sample",
                "iterations",
                "timed_s",
                "throughput_sps",
            )
            if key in stats
        }
        figures["threads"] = int(results[threads]["threads"])  # as the worker ran
        figures["windows"] = sum(
            1 for w in results[threads]["windows"] if str(w["batch_size"]) == batch
        )
        figures["validity"] = check_validity(stats, totals)
        latency[batch] = figures
    return {
        "rounds": rounds,
        "window_s": window_s,
        "pause_s": window_s,
        "max_window_s": max_window_s,
        "min_calls_per_window": calls,
        "warmup_s": warmup_s,
        "rewarm_s": rewarm_s,
        "started_utc": started_utc,
        "wall_s": time.perf_counter() - started,
        "sha256": digest,
        "runtime": next(iter(results.values()))["runtime"],
        "latency": latency,
    }


def run_windows(path, fmt, plan, spec_timing, window, rounds, options, timeout_s):
    """One worker per thread count; `rounds` rounds of one window per batch size.

    Args:
        path, fmt: The file and its format.
        plan: `{batch (str): threads}` (`thread_plan`).
        spec_timing: The workers' timing settings (`export.measure.build_spec`);
            `warmup_s` warms every batch size up right after loading.
        window: `(min_time_s, min_iterations, max_time_s, warmup_s)` of a window.
        rounds: Rounds; the batch-size order alternates, a pause of one window
            separates them.
        options: Runtime options.
        timeout_s: Seconds a worker may take to load or answer.

    Returns:
        `{threads: the worker's result}` (`MeasurementWorker.finish`).
    """
    window_s, calls, max_window_s, rewarm_s = window
    order = list(plan)
    with tempfile.TemporaryDirectory(prefix="kdkeras-confirm-") as scratch:
        workers = {}
        try:
            for count in sorted(set(plan.values())):
                sizes = [int(b) for b in order if plan[b] == count]
                spec, _ = measure.build_spec(
                    path,
                    fmt,
                    sizes,
                    count,
                    scratch,
                    options=options,
                    timing=spec_timing,
                    name=f"confirm_{count}",
                )
                spec["warmup_at_load"] = True  # as the report's workers
                workers[count] = worker.MeasurementWorker(
                    spec,
                    os.path.join(scratch, f"confirm_{count}.json"),
                    timeout_s=timeout_s,
                )
            for handle in workers.values():
                handle.wait_ready()
            for index in range(rounds):
                if index:
                    time.sleep(window_s)
                for batch in order if index % 2 == 0 else order[::-1]:
                    workers[plan[batch]].time(
                        int(batch), window_s, calls, max_window_s, rewarm_s
                    )
            return {count: handle.finish() for count, handle in workers.items()}
        finally:
            for handle in workers.values():
                handle.close()


def latency_violations(budget, entry, confirmation):
    """The budget's latency limits broken by the confirmation's figures.

    Only `max_p99_ms` and `max_p50_ms` are checked (`budgets.check_budget` on the
    entry with its latencies replaced by the confirmation's): the other limits
    (size, memory, accuracy) are not what the confirmation measures.

    Args:
        budget: From `export.report.budgets.parse_budget`.
        entry: The winner's report entry (`model`, `format`, `variant`).
        confirmation: From `confirm_release`.

    Returns:
        The violations (`budgets.check_budget`'s records); empty when every
        latency limit holds.
    """
    limits = {key: budget[key] for key in budgets.PER_BATCH_KEYS if key in budget}
    if not limits:
        return []
    confirmed = {
        "model": entry["model"],
        "role": budgets.role(entry),
        "format": entry["format"],
        "variant": entry.get("variant", entry["format"]),
        "latency": confirmation["latency"],
    }
    return budgets.check_budget(
        {"model": "both", "formats": None, **limits}, [confirmed]
    )


def summary_line(confirmation, entry):
    """One line: the release's latencies come from the confirmation run.

    Args:
        confirmation: From `confirm_release`.
        entry: The winner's report entry (its interleaved figures).
    """
    parts = []
    for batch, stats in confirmation["latency"].items():
        interleaved = (entry.get("latency") or {}).get(batch, {}).get("p50_ms")
        shown = "n/a" if interleaved is None else f"{interleaved:.4g} ms"
        parts.append(
            f"batch {batch} {stats['p50_ms']:.4g} ms (interleaved {shown}, "
            f"{stats['threads']} thread{'s' * (stats['threads'] != 1)})"
        )
    return (
        f"Release latencies (release.json) come from a {confirmation['rounds']}-round "
        f"confirmation run of the released file, timed alone in windows of "
        f"{confirmation['window_s']:.3g} s: p50 " + "; ".join(parts) + "."
    )
