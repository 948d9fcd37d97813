"""An independent timer of one model file, written without any code from `export/`.

`benchmarks.inference_latency` compares what the report records with what this timer
measures. For the comparison to mean anything, both must time the same quantity the
same way, so this timer takes the report's settings as arguments and applies them
itself: the batch size, the runtime's thread count (LiteRT `num_threads`, ONNX
Runtime `intra_op_num_threads` with one inter-op thread, TensorFlow's intra-op pool
with one inter-op thread), the warm-up, and the block size: a timed sample is a block
of `calls_per_sample` consecutive calls with one `perf_counter_ns` pair around it, its
figure the block's time per call (as the report times calls shorter than 50 µs, and as
LiteRT's `benchmark_model` does). The call is the runtime's own (`set_tensor; invoke;
get_tensor` for LiteRT, `session.run` for ONNX Runtime), the input a float32 batch drawn
uniformly from [0, 1) and quantised by the file's own input parameters when its input
is integer.

The child process (`python benchmarks/independent_timer.py FORMAT PATH THREADS
[USER_MODULES]`, run by path with `-P` so that nothing of the repository is on its
import path; `USER_MODULES` names the user's modules to import first) loads the
file once, says `{"ready": true}`, then for each JSON line `{"batch_size",
"calls_per_sample", "seconds", "warmup_s"}` on its stdin times one window and answers
`{"samples_ms": [...], "calls_per_sample": k}`, then waits until its thread pools stop
spinning so that whatever runs next has the cores.

`release_settings` reads a `--release-dir`'s `release.json`: per batch size the
recorded p50, calls per sample and threads; `IndependentTimer` is the parent's handle.

Example:
    >>> samples = time_blocks(sum, ([1, 2],), calls_per_sample=4, seconds=0.01,
    ...                       warmup_s=0.0)
    >>> len(samples) >= 3 and all(s > 0 for s in samples)
    True
"""

import json
import os
import subprocess
import sys
import time

# The report's defaults (export.measure.artifacts), used when release.json predates
# the recorded timing settings. Written out here: this module imports nothing of export/.
DEFAULT_WARMUP_S = 0.5
DEFAULT_REWARM_S = 0.05


def time_blocks(call, args, calls_per_sample, seconds, warmup_s):
    """Times `call(*args)` in blocks; returns milliseconds per call, one per block.

    Warm-up: at least 3 calls and `warmup_s` seconds. Then blocks of
    `calls_per_sample` calls, one `perf_counter_ns` pair around each block, until
    `seconds` have passed (at least 3 blocks).
    """
    clock = time.perf_counter_ns
    k = int(calls_per_sample)
    start, warm = clock(), 0
    while warm < 3 or clock() - start < warmup_s * 1e9:
        call(*args)
        warm += 1
    block = range(k)
    samples = []
    start = clock()
    while len(samples) < 3 or clock() - start < seconds * 1e9:
        t0 = clock()
        for _ in block:
            call(*args)
        samples.append((clock() - t0) / k / 1e6)
    return samples


def settle(intervals=50, interval_s=0.01):
    """Returns once this process's CPU time stops growing (spinning thread pools).

    Checks every `interval_s` seconds, at most `intervals` times.
    """
    for _ in range(intervals):
        cpu = time.process_time()
        time.sleep(interval_s)
        if time.process_time() - cpu < 0.1 * interval_s:
            break


def release_settings(record):
    """What the report recorded for the released file, per batch size.

    Args:
        record: The parsed `release.json`.

    Returns:
        `{batch_size: {"p50_ms", "calls_per_sample", "threads"}}`; `calls_per_sample`
        is 1 and `threads` the lineage's (else the measured entry's) where a batch
        size's entry does not record them; `p50_spread_ms` (the min and max of the
        report's per-round p50s) where recorded.
    """
    measured = record["measured"]
    default_threads = (record.get("lineage") or {}).get("threads") or measured.get(
        "threads"
    )
    settings = {}
    for batch, stats in measured["latency"].items():
        threads = stats.get("threads") or default_threads
        if threads is None:
            raise ValueError(
                f"release.json must record the threads of batch {batch}. "
                f"Received: {stats}"
            )
        settings[int(batch)] = {
            "p50_ms": float(stats["p50_ms"]),
            "calls_per_sample": int(stats.get("calls_per_sample") or 1),
            "threads": int(threads),
        }
        spread = stats.get("p50_spread_ms")
        if spread is not None:
            settings[int(batch)]["p50_spread_ms"] = [float(v) for v in spread]
    return dict(sorted(settings.items()))


def release_timing(record):
    """The report's warm-up settings for the released file: `(warmup_s, rewarm_s)`."""
    timing = record.get("timing") or {}
    return (
        float(timing.get("warmup_s", DEFAULT_WARMUP_S)),
        float(timing.get("rewarm_s", DEFAULT_REWARM_S)),
    )


class IndependentTimer:
    """The parent's handle on one timer process (one file, one thread count).

    Args:
        fmt: `tflite`, `onnx`, `numpy`, `savedmodel` or `keras`.
        path: The file (or SavedModel folder).
        threads: Threads the runtime may use.
        imports: Modules the child imports before loading a `.keras` file
            (the user's registered classes, `--import`), and `import_path`
            the folders it finds them in (the repository stays off its path).
    """

    def __init__(self, fmt, path, threads, imports=(), import_path=()):
        environment = dict(os.environ)
        blas = str(threads) if fmt == "numpy" else "1"
        environment.update(
            OPENBLAS_NUM_THREADS=blas, OMP_NUM_THREADS=blas, MKL_NUM_THREADS=blas
        )
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        environment.pop("PYTHONPATH", None)
        self.fmt, self.threads = fmt, int(threads)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-P",
                os.path.abspath(__file__),
                fmt,
                path,
                str(threads),
                json.dumps({"imports": list(imports), "path": list(import_path)}),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=environment,
            text=True,
        )
        self.samples = {}

    def read(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(
                f"independent {self.fmt} timer exited with code {self.process.wait()}"
            )
        return json.loads(line)

    def wait_ready(self):
        self.read()

    def time(self, batch_size, calls_per_sample, seconds, warmup_s):
        """Times one window; returns its per-call samples (ms), also pooled per batch."""
        command = {
            "batch_size": int(batch_size),
            "calls_per_sample": int(calls_per_sample),
            "seconds": float(seconds),
            "warmup_s": float(warmup_s),
        }
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        samples = self.read()["samples_ms"]
        self.samples.setdefault(int(batch_size), []).append(samples)
        return samples

    def close(self):
        self.process.kill()
        self.process.wait()


def load_runtime(fmt, path, threads):
    """Loads `path`; returns `prepare(batch_size) -> (call, args)`."""
    import numpy as np

    rng = np.random.default_rng(0)
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path, num_threads=threads)
        detail = interpreter.get_input_details()[0]
        output = interpreter.get_output_details()[0]["index"]

        inputs, allocated = {}, [None]

        def prepare(batch):
            shape = [batch] + [int(d) for d in detail["shape_signature"][1:]]
            shape = [d if d > 0 else 1 for d in shape]
            if batch not in inputs:
                x = rng.random(shape, dtype=np.float32)
                if np.issubdtype(detail["dtype"], np.integer):
                    scale, zero = detail["quantization"]
                    info = np.iinfo(detail["dtype"])
                    x = np.clip(np.round(x / scale) + zero, info.min, info.max)
                inputs[batch] = np.ascontiguousarray(x, dtype=detail["dtype"])
            if allocated[0] != batch:  # another batch size may have run in between
                interpreter.resize_tensor_input(detail["index"], shape)
                interpreter.allocate_tensors()
                allocated[0] = batch
            x = inputs[batch]

            def call():
                interpreter.set_tensor(detail["index"], x)
                interpreter.invoke()
                return interpreter.get_tensor(output)

            return call, ()

        return prepare
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        first = session.get_inputs()[0]

        def prepare(batch):
            dims = [d if isinstance(d, int) and d > 0 else 1 for d in first.shape[1:]]
            x = rng.random([batch] + dims, dtype=np.float32)
            return session.run, (None, {first.name: x})

        return prepare
    if fmt == "numpy":
        data = np.load(path)
        count = int(data["num_layers"])
        activations = [str(a) for a in data["activations"]]
        kernels = [np.ascontiguousarray(data[f"kernel_{i}"]) for i in range(count)]
        biases = [np.ascontiguousarray(data[f"bias_{i}"]) for i in range(count)]

        def prepare(batch):
            h0 = rng.random((batch, kernels[0].shape[0]), dtype=np.float32)
            outs = [np.empty((batch, w.shape[1]), np.float32) for w in kernels]

            def call():
                h = h0
                for w, b, a, o in zip(kernels, biases, activations, outs, strict=True):
                    np.matmul(h, w, out=o)
                    o += b
                    if a == "relu":
                        np.maximum(o, 0, out=o)
                    h = o
                return h

            return call, ()

        return prepare
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if fmt == "savedmodel":
        function = tf.saved_model.load(path).signatures["serving_default"]
        (name, spec), *_ = function.structured_input_signature[1].items()
        dims = [d or 1 for d in spec.shape[1:]]

        def prepare(batch):
            x = tf.constant(rng.random([batch] + dims, dtype=np.float32))
            return (lambda: function(**{name: x})), ()

        return prepare
    import keras

    model = keras.saving.load_model(path, safe_mode=True)
    function = tf.function(lambda t: model(t, training=False))
    dims = [d or 1 for d in model.inputs[0].shape[1:]]

    def prepare(batch):
        x = tf.constant(rng.random([batch] + dims, dtype=np.float32))
        return function, (x,)

    return prepare


def serve(fmt, path, threads, user_modules="{}"):
    """The child: loads the file, then times windows as the parent asks.

    `user_modules` is JSON `{"imports": [module, ...], "path": [folder, ...]}`:
    the modules registering the user's classes, imported first.
    """
    import importlib

    user_modules = json.loads(user_modules)
    sys.path[:0] = user_modules.get("path", [])
    for module in user_modules.get("imports", []):
        importlib.import_module(module)
    prepare = load_runtime(fmt, path, int(threads))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        batch = command["batch_size"]
        call, args = prepare(batch)
        samples = time_blocks(
            call,
            args,
            command["calls_per_sample"],
            command["seconds"],
            command["warmup_s"],
        )
        settle()
        answer = {
            "samples_ms": samples,
            "calls_per_sample": command["calls_per_sample"],
        }
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    serve(*sys.argv[1:5])


def inside_spread(value, spread):
    """Whether a later p50 `value` falls in a recorded `[low, high]` spread.

    The report records, per batch size, the p50 of each of its interleaved
    rounds; a later, independent timing of the same file agrees with the
    record when it falls between the slowest and the fastest of those rounds.

    Returns:
        True or False; None when no spread was recorded.

    Example:
        >>> inside_spread(0.105, [0.1, 0.11]), inside_spread(0.2, [0.1, 0.11])
        (True, False)
    """
    if not spread:
        return None
    low, high = spread
    return low <= value <= high
