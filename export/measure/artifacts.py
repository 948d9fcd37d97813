"""Size, memory, latency, throughput and accuracy of exported models.

One API serves every format of `export.runtimes`: `keras` (a `.keras` file),
`savedmodel` (a directory), `tflite` (LiteRT with XNNPACK), `onnx` (ONNX
Runtime, CPU) and `numpy` (the float32 NumPy forward pass of a dense network's
weights, `export.measure.floor`: the BLAS floor every runtime should beat).

Every runtime runs in its own subprocess (`export.measure.child`), so that its
peak resident memory is its own and runtimes cannot slow each other down
through shared thread pools. The child times exactly the raw runtime call,
`time.perf_counter_ns()` on either side of it, with the input preallocated
(`export.runtimes` says what "the call" is per runtime). Artifacts measured
together (`measure_artifacts`) are timed in interleaved windows, so that all
of them see the same machine conditions (`export.measure.worker`).

Example:
    >>> import os
    >>> import tempfile
    >>> import keras
    >>> from export.measure import measure_artifact
    >>> path = os.path.join(tempfile.mkdtemp(), "student.keras")
    >>> keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).save(path)
    >>> result = measure_artifact(path, batch_sizes=(1, 8), min_time_s=0.05)
    >>> result["format"], sorted(result["latency"]), result["peak_rss_bytes"] > 0
    ('keras', ['1', '8'], True)
"""

import os
import tempfile
import time

import numpy as np

from export import loading
from export import runtimes
from export import staging
from export.measure import environment
from export.measure import floor
from export.measure import sizes
from export.measure import timing as timing_lib
from export.measure import worker

FORMATS = runtimes.FORMATS
EXTENSIONS = {".keras": "keras", ".tflite": "tflite", ".onnx": "onnx", ".npz": "numpy"}

DEFAULT_BATCH_SIZES = (1, 64)
DEFAULT_MIN_TIME_S = 0.5
DEFAULT_MIN_ITERATIONS = 200
DEFAULT_MAX_TIME_S = 3.0
# Per batch size: a short warm-up leaves batch 1, timed first, slow.
DEFAULT_WARMUP_S = 0.5
# Timing windows per artifact and batch size, interleaved with the other
# artifacts' (`export.measure.worker`): a shared machine's speed moves in
# steps lasting seconds.
DEFAULT_ROUNDS = 5


def infer_format(path):
    """The measurement format of `path` from its extension (a directory: savedmodel).

    Raises:
        ValueError: when the extension is not one of `EXTENSIONS`.
    """
    if os.path.isdir(path):
        return "savedmodel"
    extension = os.path.splitext(path)[1].lower()
    if extension not in EXTENSIONS:
        raise ValueError(
            f"`path` must end in one of {sorted(EXTENSIONS)} or be a SavedModel directory. "
            f"Received: path={path!r}"
        )
    return EXTENSIONS[extension]


def check_arguments(path, fmt, batch_sizes, threads, min_time_s, x, y, options=None):
    if fmt not in FORMATS:
        raise ValueError(f"`fmt` must be one of {FORMATS}. Received: fmt={fmt!r}")
    if not os.path.exists(path):
        raise ValueError(f"`path` must exist. Received: path={path!r}")
    if fmt == "savedmodel" and not os.path.isdir(path):
        raise ValueError(
            f"`path` must be a SavedModel directory for fmt='savedmodel'. Received: path={path!r}"
        )
    if fmt != "savedmodel" and not os.path.isfile(path):
        raise ValueError(
            f"`path` must be a file for fmt={fmt!r}. Received: path={path!r}"
        )
    batch_sizes = tuple(batch_sizes)
    if not batch_sizes or not all(
        isinstance(b, (int, np.integer)) and not isinstance(b, bool) and b > 0
        for b in batch_sizes
    ):
        raise ValueError(
            f"`batch_sizes` must be positive integers. Received: batch_sizes={batch_sizes!r}"
        )
    if threads is not None and (
        not isinstance(threads, (int, np.integer))
        or isinstance(threads, bool)
        or threads < 1
    ):
        raise ValueError(
            f"`threads` must be a positive integer or None. Received: threads={threads!r}"
        )
    unknown = sorted(set(options or {}) - set(runtimes.OPTIONS[fmt]))
    if unknown:
        raise ValueError(
            f"`options` for {fmt} must be among {list(runtimes.OPTIONS[fmt])}. Received: {unknown}"
        )
    if not min_time_s > 0:
        raise ValueError(
            f"`min_time_s` must be > 0. Received: min_time_s={min_time_s!r}"
        )
    if (x is None) != (y is None):
        raise ValueError(
            "`x` and `y` must be given together (labelled data) or both be None. Received: one of them"
        )
    if x is not None:
        y = np.asarray(y)
        if isinstance(x, dict):
            shapes = {k: np.shape(v) for k, v in x.items()}
            counts = {len(v) for v in x.values()}
            count = counts.pop() if len(counts) == 1 else -1
        else:
            x = np.asarray(x)
            shapes, count = x.shape, len(x)
        if y.ndim != 1 or count != len(y) or not len(y):
            raise ValueError(
                f"`y` must be 1-D integer labels, one per example of x. Received: x {shapes}, y {y.shape}"
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise TypeError(
                f"`y` must hold integer class labels. Received: dtype {y.dtype}"
            )
    return tuple(int(b) for b in batch_sizes)


def build_spec(
    path,
    fmt,
    batch_sizes,
    threads,
    scratch,
    *,
    options=None,
    timing=None,
    labelled=None,
    seed=0,
    eval_batch_size=500,
    name="spec",
):
    """The spec a measurement worker (`export.measure.worker.MeasurementWorker`) runs from.

    Args:
        path: The artifact, as `measure_artifact` takes it; a dense `.keras` model for
            `numpy` has its weights extracted to `scratch` here.
        fmt, batch_sizes, threads, options: As `measure_artifact` (checked there).
        scratch: A folder that outlives the worker (weights extracted for `numpy`).
        timing: `min_time_s`, `min_iterations`, `max_time_s`, `warmup_s` (defaults
            `DEFAULT_*`), `min_sample_s` (default `timing.MIN_SAMPLE_S`: shorter
            calls are timed in blocks of `calls_per_sample` calls).
        labelled: Optional `{"path": .npz with x (or x_<input name>) and y,
            "example_shape": [...]}`.
        seed: Seed of the random timing inputs.
        eval_batch_size: Batch size of the accuracy pass.
        name: Stem of the extracted weight file, unique within `scratch`.

    Returns:
        `(spec, runtime_path)`: the spec dict and the file the runtime loads.
    """
    runtime_path = path
    if fmt == "numpy" and not path.lower().endswith(".npz"):
        import keras

        model = keras.saving.load_model(path, safe_mode=True, compile=False)
        runtime_path = floor.save_dense_layers(
            floor.dense_layers(model), os.path.join(scratch, f"{name}.npz")
        )
    spec = {
        "format": fmt,
        "path": os.path.abspath(runtime_path),
        "batch_sizes": [int(b) for b in batch_sizes],
        "threads": int(threads),
        "options": dict(options or {}),
        "eval_batch_size": int(eval_batch_size),
        "seed": int(seed),
        "example_shape": None,
        "min_time_s": DEFAULT_MIN_TIME_S,
        "min_iterations": DEFAULT_MIN_ITERATIONS,
        "max_time_s": DEFAULT_MAX_TIME_S,
        "warmup_s": DEFAULT_WARMUP_S,
        "min_sample_s": timing_lib.MIN_SAMPLE_S,
        # The modules registering the user's classes (`--import`): the child
        # imports them before loading a `.keras` file.
        "imports": list(loading.imported_modules()),
        "import_path": list(loading.imported_module_roots()),
        **(timing or {}),
    }
    if labelled is not None:
        if labelled.get("example_shape") is not None:
            spec["example_shape"] = list(labelled["example_shape"])
        spec["data_path"] = labelled["path"]
    return spec, runtime_path


def measure_artifacts(
    jobs,
    batch_sizes=DEFAULT_BATCH_SIZES,
    min_time_s=DEFAULT_MIN_TIME_S,
    x=None,
    y=None,
    *,
    rounds=DEFAULT_ROUNDS,
    min_iterations=DEFAULT_MIN_ITERATIONS,
    max_time_s=DEFAULT_MAX_TIME_S,
    warmup_s=DEFAULT_WARMUP_S,
    eval_batch_size=500,
    seed=0,
    timeout_s=900,
    on_step=None,
    return_outputs=False,
    input_spec=None,
):
    """Measures several artifacts, each in its own subprocess, timed interleaved.

    Every artifact's runtime is loaded in its own process first; then the processes are
    timed in `rounds` rounds of short windows, one at a time, in rotating order (see
    `export.measure.worker.measure_interleaved`): each runtime is timed under the same machine
    conditions as the others, so their ratios are fair even on a machine whose speed
    drifts. Each batch size's percentiles are over all of its windows.

    Args:
        jobs: Sequence of `export.measure.worker.Job(path, fmt, threads, options,
            evaluate)`; a job with `evaluate` False has `accuracy` None; `fmt` None
            infers it from `path`, `threads` None means every available core. `path` is a
            `.keras`, `.tflite`, `.onnx` file or SavedModel directory; for `numpy` a dense
            `.keras` model (its weights are extracted here) or an `.npz` from
            `save_dense_layers`.
        batch_sizes: Batch sizes to time; each is timed separately.
        min_time_s: Each batch size is timed for at least this long in all (split over
            the rounds) *and* at least `min_iterations` calls, unless `max_time_s`
            passes first.
        x: Optional labelled inputs (N, ...) for test-set accuracy; for a model with
            several inputs, a dict of such arrays by input name.
        y: Integer labels (N,) matching `x`.
        rounds: Windows per artifact and batch size (1: one contiguous window each).
        min_iterations: Minimum timed calls per batch size (see `min_time_s`).
        max_time_s: Upper bound on timing one batch size (keeps `model.predict` bounded).
        warmup_s: Untimed warm-up of each batch size right after the artifact is
            loaded (at least 3 calls); every window warms up for
            `export.measure.worker.REWARM_S` first.
        eval_batch_size: Batch size of the accuracy pass.
        seed: Seed of the random timing inputs.
        timeout_s: A subprocess is killed after this many seconds loading, or on one
            window.
        on_step: Optional `callable(label)` told of each phase (a progress bar).
        return_outputs: With `x`, each result also holds `outputs`: the runtime's
            float32 outputs on `x` (from the accuracy pass), for parity checks.
        input_spec: The models' `export.inputs.InputSpec` (one for every job, or a
            list with one per job): the random timing inputs are drawn from it
            (every input, integers in their range). None: one float input, drawn
            uniform in [0, 1) in the runtime's input shape.

    Returns:
        One entry per job, in order: a result dict as `measure_artifact` returns, or the
        `RuntimeError` that ended that artifact's measurement (the others go on). Each
        batch size's `latency` entry holds a `validity` record (`check_validity`).

    Raises:
        ValueError / TypeError: for bad arguments (one line naming the argument).
    """
    jobs = [worker.Job(*job) for job in jobs]
    if not jobs:
        raise ValueError("`jobs` must name at least one artifact. Received: jobs=[]")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(
            f"`rounds` must be an integer >= 1. Received: rounds={rounds!r}"
        )
    checked = []
    for job in jobs:
        fmt = infer_format(job.path) if job.fmt is None else job.fmt
        checked_batch_sizes = check_arguments(
            job.path, fmt, batch_sizes, job.threads, min_time_s, x, y, job.options
        )
        threads = (
            environment.available_threads() if job.threads is None else int(job.threads)
        )
        checked.append(job._replace(fmt=fmt, threads=threads))
    if not max_time_s >= min_time_s:
        raise ValueError(
            f"`max_time_s` must be >= min_time_s. Received: max_time_s={max_time_s!r} < {min_time_s!r}"
        )
    timing = {
        "min_time_s": float(min_time_s),
        "min_iterations": int(min_iterations),
        "max_time_s": float(max_time_s),
        "warmup_s": float(warmup_s),
        "min_sample_s": timing_lib.MIN_SAMPLE_S,
    }
    with tempfile.TemporaryDirectory(prefix="kdkeras-measure-") as scratch:
        labelled = None
        if isinstance(x, dict):
            labelled = {
                "example_shape": None,
                "path": os.path.join(scratch, "labelled.npz"),
                "length": _sequence_length(x),
            }
            np.savez(
                labelled["path"],
                **{f"x_{name}": np.ascontiguousarray(v) for name, v in x.items()},
                y=np.asarray(y, dtype=np.int64),
            )
        elif x is not None:
            x = np.ascontiguousarray(x, dtype=np.float32)
            labelled = {
                "example_shape": list(x.shape[1:]),
                "path": os.path.join(scratch, "labelled.npz"),
            }
            np.savez(labelled["path"], x=x, y=np.asarray(y, dtype=np.int64))
        job_specs = (
            list(input_spec)
            if isinstance(input_spec, (list, tuple))
            else [input_spec] * len(checked)
        )
        specs, runtime_paths = [], []
        for index, job in enumerate(checked):
            spec, runtime_path = build_spec(
                job.path,
                job.fmt,
                checked_batch_sizes,
                job.threads,
                scratch,
                options=job.options,
                timing=timing,
                labelled=labelled,
                seed=seed,
                eval_batch_size=eval_batch_size,
                name=f"dense_layers_{index}",
            )
            if job_specs[index] is not None:
                spec["inputs"] = (
                    job_specs[index]
                    if isinstance(job_specs[index], dict)
                    else job_specs[index].to_json()
                )
                spec["input_length"] = (labelled or {}).get("length")
            if not job.evaluate:
                spec.pop("data_path", None)
            elif return_outputs and labelled is not None:
                spec["outputs_path"] = os.path.join(scratch, f"outputs_{index}.npy")
            specs.append(spec)
            runtime_paths.append(runtime_path)
        started = time.perf_counter()
        outcomes = worker.measure_interleaved(
            specs, scratch, rounds=rounds, timeout_s=timeout_s, on_step=on_step
        )
        wall_s = time.perf_counter() - started
        for job, spec, runtime_path, outcome in zip(
            checked, specs, runtime_paths, outcomes, strict=True
        ):
            if isinstance(outcome, Exception):
                continue
            if spec.get("outputs_path"):
                outcome["outputs"] = np.load(spec["outputs_path"], allow_pickle=False)
            # Size of what the runtime loaded: for the NumPy floor, the weight file.
            outcome["size_bytes"] = staging.artifact_size_bytes(runtime_path)
            outcome["gzip_bytes"] = sizes.gzip_size(runtime_path)
            outcome["path"] = job.path
            outcome["measurement_wall_s"] = wall_s
            for stats in outcome["latency"].values():
                stats["validity"] = check_validity(stats, timing)
            outcome["timing"] = {
                **timing,
                "rounds": rounds,
                "interleaved_with": len(checked) - 1,
                "clock": (
                    "time.perf_counter_ns around the call only; calls shorter than "
                    "min_sample_s in blocks of calls_per_sample calls, one clock pair "
                    "per block, figures per call"
                ),
            }
    return outcomes


def _sequence_length(x):
    """Length of the second axis shared by the inputs of `x` (a dict), or None."""
    lengths = {np.shape(v)[1] for v in x.values() if np.ndim(v) > 1}
    return int(lengths.pop()) if len(lengths) == 1 else None


def check_validity(stats, timing):
    """Whether one batch size's timing met its minimum duration and call count.

    As LiteRT's `benchmark_model` (`min_secs`, `num_runs`), `onnxruntime_perf_test` and
    MLPerf's run rules (minimum duration and query count, VALID/INVALID): a run that
    stopped at `max_time_s` before both minimums is marked invalid, its tail figures
    rest on few samples.

    Args:
        stats: A `latency` entry (`iterations`, `timed_s`).
        timing: `min_time_s`, `min_iterations`.

    Returns:
        `{"valid", "calls", "min_calls", "timed_s", "min_time_s", "reason"}`.
    """
    calls_met = stats["iterations"] >= timing["min_iterations"]
    # Seconds of timed calls (the samples' sum); the windows split `min_time_s` into
    # `rounds` shares, whose sum may round below it by an ulp.
    time_met = stats["timed_s"] >= timing["min_time_s"] * (1 - 1e-9)
    reasons = []
    if not calls_met:
        reasons.append(f"{stats['iterations']} calls < {timing['min_iterations']}")
    if not time_met:
        reasons.append(f"{stats['timed_s']:.3f} s timed < {timing['min_time_s']} s")
    return {
        "valid": calls_met and time_met,
        "calls": int(stats["iterations"]),
        "min_calls": int(timing["min_iterations"]),
        "timed_s": float(stats["timed_s"]),
        "min_time_s": float(timing["min_time_s"]),
        "reason": "; ".join(reasons) or "minimum duration and call count met",
    }


def measure_artifact(
    path,
    fmt=None,
    batch_sizes=DEFAULT_BATCH_SIZES,
    threads=None,
    min_time_s=DEFAULT_MIN_TIME_S,
    x=None,
    y=None,
    *,
    options=None,
    **kwargs,
):
    """Measures one artifact in a fresh subprocess.

    Args:
        path: The artifact: `.keras`, `.tflite`, `.onnx` file, SavedModel directory; for
            `fmt="numpy"` a dense `.keras` model (its weights are extracted here) or an
            `.npz` from `save_dense_layers`.
        fmt: One of `FORMATS`; None infers it from `path`.
        batch_sizes: Batch sizes to time; each is timed separately.
        threads: Threads the runtime may use (TFLite `num_threads`, ORT
            `intra_op_num_threads`, TF intra-op threads, BLAS threads for NumPy).
            None: every core this process may run on.
        min_time_s: Each batch size is timed for at least this long *and* at least
            `min_iterations` calls, unless `max_time_s` passes first.
        x: Optional labelled inputs (N, ...) for test-set accuracy.
        y: Integer labels (N,) matching `x`.
        options: Runtime-specific settings (`export.runtimes.OPTIONS`), e.g.
            `{"allow_spinning": False, "execution_mode": "parallel", "io_binding": True}`
            for ONNX Runtime, `{"jit_compile": True}` for Keras.
        **kwargs: Timing and other settings of `measure_artifacts`: `rounds` (the batch
            sizes' windows alternate), `min_iterations`, `max_time_s`, `warmup_s`,
            `eval_batch_size`, `seed`, `timeout_s`.

    Returns:
        A dict: `format`, `path`, `pid` (the child's), `runtime`, `timed_call`,
        `threads`, `runtime_settings`, `parameters`, `size_bytes`, `gzip_bytes`,
        `baseline_rss_bytes` (runtime imported, nothing loaded), `peak_rss_bytes`,
        `latency` (per batch size as a string: `p50_ms`, `p90_ms`, `p95_ms`, `p99_ms`,
        `max_ms`, `mean_ms`, `std_ms`, `min_ms`, `throughput_sps`, `iterations`,
        `timed_s`, `warmup_iterations`, `validity` from `check_validity`),
        `alternatives` (other calls timed the same way, e.g. Keras `model.predict`),
        `samples_ms` (every timed sample), `accuracy` (None without `x`/`y`),
        `accuracy_examples`, `load_s` (runtime import + artifact load, in the child;
        split into `import_s` and `init_s`), `first_inference_ms` (the first call after
        loading, at `first_inference_batch_size`; not in the percentiles),
        `measurement_wall_s` (the whole measurement), `timing` (the settings above).

    Raises:
        ValueError / TypeError: for bad arguments (one line naming the argument).
        RuntimeError: when the runtime fails in the child (last line of its error).
    """
    (outcome,) = measure_artifacts(
        [(path, fmt, threads, options)], batch_sizes, min_time_s, x, y, **kwargs
    )
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def thread_counts(threads=None):
    """The thread counts a search tries: 1 and `threads` (None: every available core)."""
    threads = environment.available_threads() if threads is None else int(threads)
    return sorted({1, threads})


def best_of_threads(runs):
    """Per batch size, the run with the lowest p50, from runs of one artifact.

    Multi-threaded kernels can lose to one thread on small products, and lose badly when
    other processes compete for the cores (a worker thread that is descheduled stalls
    every call), so the thread count is chosen per batch size by measurement.

    Args:
        runs: `measure_artifact` results of one artifact at different thread counts.

    Returns:
        A result whose `latency`/`samples_ms` come from the winning run per batch size;
        `latency[b]["threads"]` records which; `threads` is the winner at the first batch
        size; `peak_rss_bytes` the larger of the runs; `pid` the list of child PIDs;
        `runtime_settings["threads_tried"]`, `runtime_settings["threads_per_batch"]` and
        `thread_runs` (p50 per thread count) record the search.
    """
    best = dict(runs[0])
    best["latency"], best["samples_ms"] = {}, {}
    for batch in runs[0]["latency"]:
        winner = min(runs, key=lambda run: run["latency"][batch]["p50_ms"])
        best["latency"][batch] = dict(
            winner["latency"][batch], threads=winner["threads"]
        )
        best["samples_ms"][batch] = winner["samples_ms"][batch]
        for label, per_batch in winner.get("alternatives", {}).items():
            best.setdefault("alternatives", {}).setdefault(label, {})[batch] = (
                per_batch[batch]
            )
    best["threads"] = next(iter(best["latency"].values()))["threads"]
    best["peak_rss_bytes"] = max(run["peak_rss_bytes"] for run in runs)
    best["pid"] = [run["pid"] for run in runs]
    settings = dict(runs[-1]["runtime_settings"])
    for name in (
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "num_threads",
        "intra_op_num_threads",
        "intra_op_parallelism_threads",
    ):
        settings.pop(name, None)
    settings["threads_tried"] = [run["threads"] for run in runs]
    settings["threads_per_batch"] = {
        b: stats["threads"] for b, stats in best["latency"].items()
    }
    best["runtime_settings"] = settings
    best["thread_runs"] = {
        str(run["threads"]): {b: stats["p50_ms"] for b, stats in run["latency"].items()}
        for run in runs
    }
    return best


def measure_best_threads(
    path,
    fmt=None,
    batch_sizes=DEFAULT_BATCH_SIZES,
    threads=None,
    *,
    options=None,
    **kwargs,
):
    """`measure_artifact` with 1 and with `threads` threads; per batch size the faster.

    The thread counts run in separate processes, timed interleaved (`measure_artifacts`),
    and `best_of_threads` keeps the faster per batch size.

    Args:
        path, fmt, batch_sizes: As `measure_artifact`.
        threads: Largest thread count tried; None: all available cores.
        options: Runtime options, as `measure_artifact`.
        **kwargs: Passed to `measure_artifacts` (`x`, `y`, timing settings...).

    Returns:
        See `best_of_threads`.

    Raises:
        RuntimeError: when the runtime fails at any thread count.
    """
    jobs = [(path, fmt, count, options) for count in thread_counts(threads)]
    runs = measure_artifacts(jobs, batch_sizes, **kwargs)
    for run in runs:
        if isinstance(run, Exception):
            raise run
    return best_of_threads(runs)


def measure_floor(path, batch_sizes=DEFAULT_BATCH_SIZES, threads=None, **kwargs):
    """The NumPy floor at its best BLAS thread count per batch size.

    The floor is the reference every runtime is compared with, so it must not be
    sandbagged: see `measure_best_threads`.

    Args:
        path: Dense `.keras` model or `.npz` from `save_dense_layers`.
        batch_sizes, threads, **kwargs: As `measure_best_threads`.
    """
    return measure_best_threads(path, "numpy", batch_sizes, threads, **kwargs)


def summarize(result):
    """A few human-readable lines for one `measure_artifact` result (CLIs print this)."""
    lines = [
        f"{result['format']}: {result['path']}  ({result['runtime']}, {result['threads']} threads)",
        f"  parameters {result['parameters']}, size {result['size_bytes'] / 1e6:.3f} MB, "
        f"gzip {result['gzip_bytes'] / 1e6:.3f} MB, peak RSS {result['peak_rss_bytes'] / 1e6:.1f} MB",
    ]
    for batch, stats in result["latency"].items():
        lines.append(
            f"  batch {batch}: p50 {stats['p50_ms']:.3f} ms, p90 {stats['p90_ms']:.3f}, "
            f"p99 {stats['p99_ms']:.3f}, max {stats['max_ms']:.3f} ms, "
            f"{stats['throughput_sps']:.0f} samples/s ({stats['iterations']} calls)"
        )
    if result.get("accuracy") is not None:
        lines.append(
            f"  accuracy {result['accuracy']:.4f} on {result['accuracy_examples']} examples"
        )
    return "\n".join(lines)
