"""Size, memory, latency, throughput and accuracy of one exported model.

One module serves every format: `keras` (a `.keras` file), `savedmodel` (a directory),
`tflite` (LiteRT with XNNPACK), `onnx` (ONNX Runtime, CPU) and `numpy` (a float32 NumPy
forward pass of a dense network's weights: the BLAS floor every runtime should beat).

Every runtime runs in its own subprocess (`export/_runner.py`), so that its peak resident
memory is its own and runtimes cannot slow each other down through shared thread pools.
The child times exactly the raw runtime call, `time.perf_counter_ns()` on either side of
it, with the input preallocated; see `export._runner` for what "the call" is per runtime.
Artifacts measured together (`measure_artifacts`) are timed in interleaved windows, so
that all of them see the same machine conditions (`export.worker`).

Example:
    >>> from export.measure import measure_artifact
    >>> result = measure_artifact("student.onnx", "onnx", batch_sizes=(1, 64))
    >>> result["latency"]["1"]["p50_ms"], result["peak_rss_bytes"]
"""

import io
import os
import tarfile
import tempfile
import time
import zlib

import numpy as np

FORMATS = ("keras", "savedmodel", "tflite", "onnx", "numpy")
EXTENSIONS = {".keras": "keras", ".tflite": "tflite", ".onnx": "onnx", ".npz": "numpy"}

DEFAULT_BATCH_SIZES = (1, 64)
DEFAULT_MIN_TIME_S = 0.5
DEFAULT_MIN_ITERATIONS = 200
DEFAULT_MAX_TIME_S = 3.0
DEFAULT_WARMUP_S = 0.5  # per batch size: a 0.1 s warm-up left batch 1, timed first, 10-30% slow
# Timing windows per artifact and batch size, interleaved with the other artifacts'
# (`export.worker`): a shared machine's speed moves in steps lasting seconds.
DEFAULT_ROUNDS = 5

# Layers that compute the identity at inference (training-only noise, augmentation).
_IDENTITY_LAYERS = {
    "InputLayer",
    "Dropout",
    "AlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "ActivityRegularization",
    "RandomTranslation",
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "RandomContrast",
    "RandomBrightness",
}


def available_threads():
    """CPU cores this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


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
            f"path must end in one of {sorted(EXTENSIONS)} or be a SavedModel directory, got {path!r}"
        )
    return EXTENSIONS[extension]


def _files(path):
    if os.path.isfile(path):
        return [path]
    found = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        found.extend(os.path.join(root, name) for name in sorted(names))
    return found


def artifact_size(path):
    """Bytes on disk: the file's size, or the sum over a directory's files."""
    return int(sum(os.path.getsize(name) for name in _files(path)))


class _GzipCountingSink(io.RawIOBase):
    """A write-only stream that gzips what it is given and only counts the bytes."""

    def __init__(self, level):
        self.compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip container
        self.count = 0

    def writable(self):
        return True

    def write(self, data):
        self.count += len(self.compressor.compress(data))
        return len(data)

    def finish(self):
        self.count += len(self.compressor.flush())
        return self.count


def gzip_size(path, level=6):
    """Bytes after gzip (level 6, gzip's default): how much it costs to ship.

    A directory is measured as one gzipped tar stream (`.tar.gz`) of its files in sorted
    order. Nothing is written to disk.
    """
    sink = _GzipCountingSink(level)
    if os.path.isfile(path):
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sink.write(block)
        return sink.finish()
    with tarfile.open(fileobj=sink, mode="w|") as tar:
        for name in _files(path):
            tar.add(name, arcname=os.path.relpath(name, path), recursive=False)
    return sink.finish()


# ------------------------------------------------------------------- NumPy floor


def _activation_name(function):
    name = getattr(function, "__name__", None)
    return {"linear": "linear", None: None}.get(name, name)


def dense_layers(model, verify=True):
    """The `(kernel, bias, activation)` stack of a dense Keras network, for NumPy.

    Accepts a single-input, single-output chain of `Flatten`, `Dense`, `Activation`,
    `ReLU`, `Softmax`, `BatchNormalization` directly after a linear `Dense` (folded into
    it), and layers that are the identity at inference (dropout, noise, augmentation).

    Args:
        model: A built `keras.Model`.
        verify: Check the extracted stack against `model(x)` on random inputs.

    Returns:
        A list of `(kernel, bias, activation)` with float32 arrays.

    Raises:
        ValueError: naming the first layer the NumPy floor cannot compute.
    """
    from export._runner import SUPPORTED_ACTIVATIONS

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError("model must have one input and one output for the NumPy floor")
    import keras

    sequential = isinstance(model, keras.Sequential)
    stack = []
    flat = len(model.inputs[0].shape) == 2
    tensor = model.inputs[0]

    def refuse(layer, why):
        raise ValueError(
            f"model is not a dense network: the NumPy floor cannot compute layer "
            f"{layer.name!r} ({type(layer).__name__}): {why}"
        )

    def set_activation(layer, name):
        if name not in SUPPORTED_ACTIVATIONS:
            refuse(layer, f"activation {name!r} not in {SUPPORTED_ACTIVATIONS}")
        if not stack or stack[-1][2] != "linear":
            refuse(layer, "an activation must follow a Dense layer without one")
        kernel, bias, _ = stack[-1]
        stack[-1] = (kernel, bias, name)

    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        if not sequential and len(getattr(layer, "_inbound_nodes", ())) == 1:
            # Functional graph: each layer must consume the previous layer's output.
            if layer.input is not tensor:
                refuse(layer, "the model is not a single chain of layers")
            tensor = layer.output
        if kind in _IDENTITY_LAYERS:
            continue
        if kind == "Flatten" or (kind == "Reshape" and len(layer.output.shape) == 2):
            if stack:
                refuse(layer, "flattening is only supported before the first Dense layer")
            flat = True
        elif kind == "Dense":
            if not flat or len(layer.input.shape) != 2:
                refuse(layer, "Dense must see a flat (batch, features) input")
            kernel = np.asarray(layer.kernel, dtype=np.float32)
            bias = np.asarray(layer.bias, dtype=np.float32) if layer.use_bias else None
            if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
                refuse(layer, "LoRA or quantized Dense layers are not supported")
            stack.append((kernel, bias, "linear"))
            set_activation(layer, _activation_name(layer.activation))
        elif kind == "Activation":
            name = _activation_name(layer.activation)
            if name != "linear":
                set_activation(layer, name)
        elif kind == "ReLU":
            if layer.negative_slope or layer.threshold:
                refuse(layer, "only plain ReLU (no slope, no threshold) is supported")
            set_activation(layer, "relu" if layer.max_value is None else "relu6")
            if layer.max_value not in (None, 6, 6.0):
                refuse(layer, "ReLU max_value must be None or 6")
        elif kind == "Softmax":
            set_activation(layer, "softmax")
        elif kind == "BatchNormalization":
            if not stack or stack[-1][2] != "linear" or layer.axis not in (-1, 1, [-1], [1]):
                refuse(layer, "BatchNormalization must directly follow a linear Dense layer")
            kernel, bias, _ = stack[-1]
            mean = np.asarray(layer.moving_mean, np.float64)
            variance = np.asarray(layer.moving_variance, np.float64)
            gamma = np.asarray(layer.gamma, np.float64) if layer.scale else 1.0
            beta = np.asarray(layer.beta, np.float64) if layer.center else 0.0
            scale = gamma / np.sqrt(variance + layer.epsilon)
            bias64 = np.zeros_like(mean) if bias is None else bias.astype(np.float64)
            stack[-1] = (
                (kernel.astype(np.float64) * scale).astype(np.float32),
                ((bias64 - mean) * scale + beta).astype(np.float32),
                "linear",
            )
        else:
            refuse(layer, "only Flatten, Dense, activations, folded BatchNormalization "
                   "and inference-time identity layers are supported")
    if not stack:
        raise ValueError("model is not a dense network: it has no Dense layer")
    if verify:
        _verify_dense_layers(model, stack)
    return stack


def _verify_dense_layers(model, stack):
    """Checks the extracted stack against Keras on random inputs (catches graphs that
    are not a plain chain, custom call() methods, ...)."""
    from export._runner import NumpyDenseForward

    shape = tuple(8 if d is None else int(d) for d in model.inputs[0].shape)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    expected = np.asarray(model(x, training=False), dtype=np.float64).reshape(len(x), -1)
    actual = NumpyDenseForward(stack)(x).astype(np.float64)
    scale = max(1.0, float(np.abs(expected).max()))
    if actual.shape != expected.shape or not np.allclose(actual, expected, rtol=1e-4, atol=1e-4 * scale):
        raise ValueError(
            "model is not a dense network the NumPy floor reproduces: its forward pass differs "
            "from Keras on random inputs"
        )


def save_dense_layers(layers, path):
    """Writes `dense_layers(...)` output to `path` (`.npz`) atomically; returns `path`."""
    arrays = {
        "num_layers": np.asarray(len(layers)),
        "activations": np.asarray([a for _, _, a in layers]),
    }
    for i, (kernel, bias, _) in enumerate(layers):
        arrays[f"kernel_{i}"] = np.ascontiguousarray(kernel, np.float32)
        if bias is not None:
            arrays[f"bias_{i}"] = np.ascontiguousarray(bias, np.float32)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(suffix=".npz", dir=directory)
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, **arrays)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def numpy_forward(model, transposed_gemv=False):
    """A `NumpyDenseForward` of a dense Keras `model` (see `dense_layers`)."""
    from export._runner import NumpyDenseForward

    return NumpyDenseForward(dense_layers(model), transposed_gemv=transposed_gemv)


# ------------------------------------------------------------------- measurement


def _check_arguments(path, fmt, batch_sizes, threads, min_time_s, x, y, options=None):
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if not os.path.exists(path):
        raise ValueError(f"path must exist, got {path!r}")
    if fmt == "savedmodel" and not os.path.isdir(path):
        raise ValueError(f"path must be a SavedModel directory for fmt='savedmodel', got {path!r}")
    if fmt != "savedmodel" and not os.path.isfile(path):
        raise ValueError(f"path must be a file for fmt={fmt!r}, got {path!r}")
    batch_sizes = tuple(batch_sizes)
    if not batch_sizes or not all(
        isinstance(b, (int, np.integer)) and not isinstance(b, bool) and b > 0 for b in batch_sizes
    ):
        raise ValueError(f"batch_sizes must be positive integers, got {batch_sizes!r}")
    if threads is not None and (
        not isinstance(threads, (int, np.integer)) or isinstance(threads, bool) or threads < 1
    ):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    from export._runner import RUNTIME_OPTIONS

    unknown = sorted(set(options or {}) - set(RUNTIME_OPTIONS[fmt]))
    if unknown:
        raise ValueError(
            f"options for {fmt} must be among {list(RUNTIME_OPTIONS[fmt])}, got {unknown}"
        )
    if not min_time_s > 0:
        raise ValueError(f"min_time_s must be > 0, got {min_time_s!r}")
    if (x is None) != (y is None):
        raise ValueError("x and y must be given together (labelled data) or both be None")
    if x is not None:
        x, y = np.asarray(x), np.asarray(y)
        if y.ndim != 1 or len(x) != len(y) or not len(y):
            raise ValueError(
                f"y must be 1-D integer labels, one per example of x; got x {x.shape}, y {y.shape}"
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    return tuple(int(b) for b in batch_sizes)


def build_spec(path, fmt, batch_sizes, threads, scratch, *, options=None, timing=None, labelled=None,
               seed=0, eval_batch_size=500, name="spec"):
    """The spec a measurement worker (`export.worker.MeasurementWorker`) runs from.

    Args:
        path: The artifact, as `measure_artifact` takes it; a dense `.keras` model for
            `numpy` has its weights extracted to `scratch` here.
        fmt, batch_sizes, threads, options: As `measure_artifact` (checked there).
        scratch: A folder that outlives the worker (weights extracted for `numpy`).
        timing: `min_time_s`, `min_iterations`, `max_time_s`, `warmup_s` (defaults
            `DEFAULT_*`).
        labelled: Optional `{"path": .npz with x and y, "example_shape": [...]}`.
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
        runtime_path = save_dense_layers(dense_layers(model), os.path.join(scratch, f"{name}.npz"))
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
        **(timing or {}),
    }
    if labelled is not None:
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
):
    """Measures several artifacts, each in its own subprocess, timed interleaved.

    Every artifact's runtime is loaded in its own process first; then the processes are
    timed in `rounds` rounds of short windows, one at a time, in rotating order (see
    `export.worker.measure_interleaved`): each runtime is timed under the same machine
    conditions as the others, so their ratios are fair even on a machine whose speed
    drifts. Each batch size's percentiles are over all of its windows.

    Args:
        jobs: Sequence of `export.worker.Job(path, fmt, threads, options)`; `fmt` None
            infers it from `path`, `threads` None means every available core. `path` is a
            `.keras`, `.tflite`, `.onnx` file or SavedModel directory; for `numpy` a dense
            `.keras` model (its weights are extracted here) or an `.npz` from
            `save_dense_layers`.
        batch_sizes: Batch sizes to time; each is timed separately.
        min_time_s: Each batch size is timed for at least this long in all (split over
            the rounds) *and* at least `min_iterations` calls, unless `max_time_s`
            passes first.
        x: Optional labelled inputs (N, ...) for test-set accuracy.
        y: Integer labels (N,) matching `x`.
        rounds: Windows per artifact and batch size (1: one contiguous window each).
        min_iterations: Minimum timed calls per batch size (see `min_time_s`).
        max_time_s: Upper bound on timing one batch size (keeps `model.predict` bounded).
        warmup_s: Untimed warm-up before an artifact's first window of each batch size
            (at least 3 calls); later windows warm up for `export.worker.REWARM_S`.
        eval_batch_size: Batch size of the accuracy pass.
        seed: Seed of the random timing inputs.
        timeout_s: A subprocess is killed after this many seconds loading, or on one
            window.
        on_step: Optional `callable(label)` told of each phase (a progress bar).

    Returns:
        One entry per job, in order: a result dict as `measure_artifact` returns, or the
        `RuntimeError` that ended that artifact's measurement (the others go on).

    Raises:
        ValueError / TypeError: for bad arguments (one line naming the argument).
    """
    from export import worker

    jobs = [worker.Job(*job) for job in jobs]
    if not jobs:
        raise ValueError("jobs must name at least one artifact, got none")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}")
    checked = []
    for job in jobs:
        fmt = infer_format(job.path) if job.fmt is None else job.fmt
        sizes = _check_arguments(job.path, fmt, batch_sizes, job.threads, min_time_s, x, y, job.options)
        threads = available_threads() if job.threads is None else int(job.threads)
        checked.append(job._replace(fmt=fmt, threads=threads))
    if not max_time_s >= min_time_s:
        raise ValueError(f"max_time_s must be >= min_time_s, got {max_time_s!r} < {min_time_s!r}")
    timing = {
        "min_time_s": float(min_time_s),
        "min_iterations": int(min_iterations),
        "max_time_s": float(max_time_s),
        "warmup_s": float(warmup_s),
    }
    with tempfile.TemporaryDirectory(prefix="kdkeras-measure-") as scratch:
        labelled = None
        if x is not None:
            x = np.ascontiguousarray(x, dtype=np.float32)
            labelled = {"example_shape": list(x.shape[1:]), "path": os.path.join(scratch, "labelled.npz")}
            np.savez(labelled["path"], x=x, y=np.asarray(y, dtype=np.int64))
        specs, runtime_paths = [], []
        for index, job in enumerate(checked):
            spec, runtime_path = build_spec(
                job.path, job.fmt, sizes, job.threads, scratch, options=job.options, timing=timing,
                labelled=labelled, seed=seed, eval_batch_size=eval_batch_size, name=f"dense_layers_{index}",
            )
            specs.append(spec)
            runtime_paths.append(runtime_path)
        started = time.perf_counter()
        outcomes = worker.measure_interleaved(specs, scratch, rounds=rounds, timeout_s=timeout_s, on_step=on_step)
        wall_s = time.perf_counter() - started
        for job, runtime_path, outcome in zip(checked, runtime_paths, outcomes):
            if isinstance(outcome, Exception):
                continue
            # Size of what the runtime loaded: for the NumPy floor, the weight file.
            outcome["size_bytes"] = artifact_size(runtime_path)
            outcome["gzip_bytes"] = gzip_size(runtime_path)
            outcome["path"] = job.path
            outcome["measurement_wall_s"] = wall_s
            outcome["timing"] = {
                **timing,
                "rounds": rounds,
                "interleaved_with": len(checked) - 1,
                "clock": "time.perf_counter_ns around the call only",
            }
    return outcomes


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
        options: Runtime-specific settings (`export._runner.RUNTIME_OPTIONS`), e.g.
            `{"allow_spinning": False, "execution_mode": "parallel", "io_binding": True}`
            for ONNX Runtime, `{"jit_compile": True}` for Keras.
        **kwargs: Timing and other settings of `measure_artifacts`: `rounds` (the batch
            sizes' windows alternate), `min_iterations`, `max_time_s`, `warmup_s`,
            `eval_batch_size`, `seed`, `timeout_s`.

    Returns:
        A dict: `format`, `path`, `pid` (the child's), `runtime`, `timed_call`,
        `threads`, `runtime_settings`, `parameters`, `size_bytes`, `gzip_bytes`,
        `baseline_rss_bytes` (runtime imported, nothing loaded), `peak_rss_bytes`,
        `latency` (per batch size as a string: `p50_ms`, `p90_ms`, `p99_ms`, `max_ms`,
        `mean_ms`, `min_ms`, `throughput_sps`, `iterations`, `warmup_iterations`),
        `alternatives` (other calls timed the same way, e.g. Keras `model.predict`),
        `samples_ms` (every timed sample), `accuracy` (None without `x`/`y`),
        `accuracy_examples`, `load_s` (runtime import + artifact load, in the child),
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
    threads = available_threads() if threads is None else int(threads)
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
        best["latency"][batch] = dict(winner["latency"][batch], threads=winner["threads"])
        best["samples_ms"][batch] = winner["samples_ms"][batch]
        for label, per_batch in winner.get("alternatives", {}).items():
            best.setdefault("alternatives", {}).setdefault(label, {})[batch] = per_batch[batch]
    best["threads"] = next(iter(best["latency"].values()))["threads"]
    best["peak_rss_bytes"] = max(run["peak_rss_bytes"] for run in runs)
    best["pid"] = [run["pid"] for run in runs]
    settings = dict(runs[-1]["runtime_settings"])
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "num_threads",
                 "intra_op_num_threads", "intra_op_parallelism_threads"):
        settings.pop(name, None)
    settings["threads_tried"] = [run["threads"] for run in runs]
    settings["threads_per_batch"] = {b: stats["threads"] for b, stats in best["latency"].items()}
    best["runtime_settings"] = settings
    best["thread_runs"] = {
        str(run["threads"]): {b: stats["p50_ms"] for b, stats in run["latency"].items()}
        for run in runs
    }
    return best


def measure_best_threads(path, fmt=None, batch_sizes=DEFAULT_BATCH_SIZES, threads=None, *, options=None, **kwargs):
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
        lines.append(f"  accuracy {result['accuracy']:.4f} on {result['accuracy_examples']} examples")
    return "\n".join(lines)
