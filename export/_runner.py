"""Per-runtime measurement worker: one artifact, one runtime, one process.

`export.worker` starts this file as a script (`python .../export/_runner.py SPEC.json`),
not as `python -m export._runner`, so that the child imports nothing but the runtime
under test: importing the `export` package could pull in TensorFlow and inflate the
peak resident memory of an ONNX Runtime or LiteRT process by hundreds of megabytes.

The child:
1. imports its runtime and records the resident-memory high-water mark (`baseline`);
2. loads the artifact, says it is ready, and waits (blocked, using no CPU);
3. times windows when the parent asks (`serve`): per window one batch size, its
   preallocated input, a warm-up, then exactly the raw runtime call with
   `time.perf_counter_ns` around it. The parent interleaves the windows of several
   workers, so that every runtime is timed under the same machine conditions;
4. on `finish`, records the peak resident memory (Linux `VmHWM`, see `peak_rss_bytes`)
   *before* anything else is loaded (the labelled test set, the `onnx` package for
   counting), computes test-set accuracy when labelled data was given and the stored
   parameter count, and prints the result as one JSON object on its (otherwise
   silenced) standard output.

This module only imports the standard library at module level, and NumPy in the
functions that need it, so that the NumPy floor (`NumpyDenseForward`) can be imported by
tests and by the parent without importing a deep-learning runtime.
"""

import json
import os
import platform
import resource
import sys
import time

# The activations the NumPy floor implements; `export.measure` refuses any other.
SUPPORTED_ACTIVATIONS = ("linear", "relu", "relu6", "sigmoid", "tanh", "softmax")


def peak_rss_bytes():
    """This process's resident-memory high-water mark, in bytes.

    Linux: `VmHWM` from /proc/self/status. `getrusage(RUSAGE_SELF).ru_maxrss` is not
    used there because the kernel carries it over `execve` from the forked copy of the
    parent, so a child started by a process holding TensorFlow would report the
    parent's memory. Elsewhere: `ru_maxrss`.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss) * (1 if sys.platform == "darwin" else 1024)


class NumpyDenseForward:
    """A float32 NumPy forward pass of a stack of dense layers: the BLAS floor.

    Fair by construction: weights are contiguous float32 arrays, every intermediate
    buffer is preallocated per batch size, and the bias add and activation run in place,
    so one call is exactly `len(layers)` GEMMs plus elementwise passes over the outputs.

    By default every batch size runs `x @ W` with the kernels as Keras stores them
    (`(in, out)`): the straightforward NumPy forward pass. `transposed_gemv=True` makes
    one-example calls use `(out, in)` copies of the kernels and a matrix-vector product,
    OpenBLAS' faster non-transposed GEMV (20-35% faster at batch 1 with 2 threads here):
    a tuned floor, which `benchmarks/inference_latency.py` reports beside the plain one.

    Args:
        layers: Sequence of `(kernel, bias, activation)`; `kernel` is `(in, out)`,
            `bias` is `(out,)` or None, `activation` one of `SUPPORTED_ACTIVATIONS`.
        transposed_gemv: Whether batch-1 calls use transposed kernels and GEMV.

    Example:
        >>> forward = NumpyDenseForward([(w1, b1, "relu"), (w2, b2, "linear")])
        >>> call = forward.bind(x)          # preallocates for x.shape[0]
        >>> logits = call()
    """

    def __init__(self, layers, transposed_gemv=False):
        import numpy as np

        self.transposed_gemv = bool(transposed_gemv)
        self.layers = []
        for kernel, bias, activation in layers:
            if activation not in SUPPORTED_ACTIVATIONS:
                raise ValueError(
                    f"activation must be one of {SUPPORTED_ACTIVATIONS}, got {activation!r}"
                )
            kernel = np.ascontiguousarray(kernel, dtype=np.float32)
            bias = None if bias is None else np.ascontiguousarray(bias, np.float32)
            self.layers.append((kernel, bias, activation))
        if not self.layers:
            raise ValueError("layers must hold at least one dense layer, got none")
        self.input_units = self.layers[0][0].shape[0]
        self._kernels_t = None

    @classmethod
    def from_npz(cls, path, transposed_gemv=False):
        """Loads the layers written by `export.measure.save_dense_layers`."""
        import numpy as np

        with np.load(path, allow_pickle=False) as data:
            count = int(data["num_layers"])
            activations = [str(a) for a in data["activations"]]
            layers = []
            for i in range(count):
                bias = data[f"bias_{i}"] if f"bias_{i}" in data else None
                layers.append((data[f"kernel_{i}"], bias, activations[i]))
        return cls(layers, transposed_gemv=transposed_gemv)

    def parameters(self):
        """Number of weights and biases."""
        return int(
            sum(k.size + (0 if b is None else b.size) for k, b, _ in self.layers)
        )

    def bind(self, x):
        """Preallocates buffers for `x` (flattened to `(batch, in)`); returns the call."""
        import numpy as np

        batch = x.shape[0]
        flat = np.ascontiguousarray(x.reshape(batch, -1), dtype=np.float32)
        if flat.shape[1] != self.input_units:
            raise ValueError(
                f"x must have {self.input_units} features per example, "
                f"got shape {tuple(x.shape)}"
            )
        gemv = batch == 1 and self.transposed_gemv
        if gemv:
            # One example: a matrix-vector product with the kernel stored (out, in).
            # Built on first use; the floor then holds both layouts.
            if self._kernels_t is None:
                self._kernels_t = [np.ascontiguousarray(k.T) for k, _, _ in self.layers]
            kernels = self._kernels_t
            flat = flat[0]
            buffers = [np.empty(k.shape[1], np.float32) for k, _, _ in self.layers]
        else:
            kernels = [k for k, _, _ in self.layers]
            buffers = [np.empty((batch, k.shape[1]), np.float32) for k, _, _ in self.layers]
        steps = [
            (kernel, bias, activation, buffer)
            for kernel, (_, bias, activation), buffer in zip(kernels, self.layers, buffers)
        ]
        matmul, dot, add, maximum = np.matmul, np.dot, np.add, np.maximum

        if gemv:

            def call():
                hidden = flat
                for kernel, bias, activation, buffer in steps:
                    dot(kernel, hidden, out=buffer)
                    if bias is not None:
                        add(buffer, bias, out=buffer)
                    if activation == "relu":
                        maximum(buffer, 0.0, out=buffer)
                    elif activation != "linear":
                        _apply_activation(buffer, activation)
                    hidden = buffer
                return hidden.reshape(1, -1)

        else:

            def call():
                hidden = flat
                for kernel, bias, activation, buffer in steps:
                    matmul(hidden, kernel, out=buffer)
                    if bias is not None:
                        add(buffer, bias, out=buffer)
                    if activation == "relu":
                        maximum(buffer, 0.0, out=buffer)
                    elif activation != "linear":
                        _apply_activation(buffer, activation)
                    hidden = buffer
                return hidden

        return call

    def __call__(self, x):
        """Forward pass of `x`; returns a fresh `(batch, out)` float32 array."""
        return self.bind(x)().copy()


def _apply_activation(buffer, activation):
    import numpy as np

    if activation == "relu6":
        np.clip(buffer, 0.0, 6.0, out=buffer)
    elif activation == "sigmoid":
        # 1 / (1 + exp(-x)) in place, computed stably via tanh.
        np.multiply(buffer, 0.5, out=buffer)
        np.tanh(buffer, out=buffer)
        np.multiply(buffer, 0.5, out=buffer)
        np.add(buffer, 0.5, out=buffer)
    elif activation == "tanh":
        np.tanh(buffer, out=buffer)
    elif activation == "softmax":
        buffer -= buffer.max(axis=-1, keepdims=True)
        np.exp(buffer, out=buffer)
        buffer /= buffer.sum(axis=-1, keepdims=True)


def time_call(call, args, min_iterations, min_time_s, max_time_s, warmup_s):
    """Times `call(*args)` alone; returns the samples in nanoseconds and warm-up count.

    Warm-up (excluded from the samples) runs at least 3 calls and `warmup_s` seconds.
    Measurement runs until both `min_iterations` calls and `min_time_s` seconds are
    reached, or `max_time_s` seconds have passed (with at least 3 calls), so that slow
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
    while True:
        t0 = clock()
        call(*args)
        t1 = clock()
        append(t1 - t0)
        elapsed = t1 - start
        if elapsed >= max_ns and len(samples) >= 3:
            break
        if len(samples) >= min_iterations and elapsed >= min_ns:
            break
    return samples, warmup


def settle(max_s=0.5, interval_s=0.01):
    """Waits until this process uses no CPU; returns the seconds waited.

    Thread pools keep spinning after their last task, waiting for the next one: here
    OpenBLAS' workers spin about 130 ms of CPU, ONNX Runtime's 35-50 ms
    (`benchmarks/machine_noise.py`). A worker replies to its parent only once its own
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
    """Percentiles (ms), throughput (samples/s) and iteration count of one timing run."""
    import numpy as np

    samples = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(samples, [50, 90, 99])
    return {
        "batch_size": int(batch_size),
        "iterations": int(samples.size),
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "max_ms": float(samples.max()),
        "mean_ms": float(samples.mean()),
        "min_ms": float(samples.min()),
        "throughput_sps": float(batch_size * samples.size / (samples.sum() / 1e3)),
    }


def _concrete_shape(shape, batch_size, example_shape):
    """Input shape for `batch_size`: unknown non-batch dims come from `example_shape`."""
    dims = list(shape)
    out = [batch_size]
    for i, dim in enumerate(dims[1:]):
        if isinstance(dim, int) and dim > 0:
            out.append(dim)
        elif example_shape is not None and i < len(example_shape):
            out.append(int(example_shape[i]))
        else:
            raise ValueError(f"cannot infer input dimension {i + 1} of shape {dims}")
    return tuple(out)


# --------------------------------------------------------------------------- runtimes
# Each runtime: __init__(path, threads, options) loads the artifact; input_shape(b);
# timed(x) -> (label, call, args) with everything preallocated; predict(x) -> logits;
# parameters() -> int or None; settings / version.


def _set_tf_threads(tf, intra, inter):
    """Sets TensorFlow's thread pools; in a process where TF already ran (tests calling a
    runtime in-process) they are fixed, and the settings record the actual values."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        pass


class KerasRuntime:
    """A `.keras` file; times a `tf.function` of `model(x, training=False)`."""

    label = "tf.function(model(x, training=False))"

    def __init__(self, path, threads, options):
        import tensorflow as tf

        _set_tf_threads(tf, threads, int(options.get("inter_op_threads", 1)))
        import keras

        self.tf, self.keras = tf, keras
        self.version = f"keras {keras.__version__} / tensorflow {tf.__version__}"
        self.baseline_rss = peak_rss_bytes()
        self.model = keras.saving.load_model(path, safe_mode=True, compile=False)
        jit = bool(options.get("jit_compile", False))
        model = self.model
        self.function = tf.function(
            lambda x: model(x, training=False), jit_compile=jit, reduce_retracing=True
        )
        if jit:
            self.label = "tf.function(model(x, training=False), jit_compile=True)"
        self.settings = {
            "intra_op_parallelism_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_parallelism_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "jit_compile": jit,
        }

    def input_shape(self, batch_size, example_shape=None):
        return _concrete_shape(self.model.inputs[0].shape, batch_size, example_shape)

    def timed(self, x):
        return self.label, self.function, (self.tf.constant(x),)

    def alternatives(self, x):
        """`model.predict` too, for honesty: what most users call."""
        model = self.model
        return [
            (
                "model.predict",
                model.predict,
                (x,),
                {"batch_size": x.shape[0], "verbose": 0},
            )
        ]

    def predict(self, x):
        return self.function(self.tf.constant(x)).numpy()

    def parameters(self):
        return int(self.model.count_params())


class SavedModelRuntime:
    """A SavedModel directory; times its `serving_default` signature's concrete function."""

    label = "signatures['serving_default'](x)"

    def __init__(self, path, threads, options):
        import tensorflow as tf

        _set_tf_threads(tf, threads, int(options.get("inter_op_threads", 1)))
        self.tf = tf
        self.version = f"tensorflow {tf.__version__}"
        self.baseline_rss = peak_rss_bytes()
        self.loaded = tf.saved_model.load(path)
        signature = options.get("signature", "serving_default")
        if signature not in self.loaded.signatures:
            raise ValueError(
                f"SavedModel {path} has no signature {signature!r}; "
                f"found {sorted(self.loaded.signatures)}"
            )
        self.function = self.loaded.signatures[signature]
        _, kwargs = self.function.structured_input_signature
        if len(kwargs) != 1:
            raise ValueError(f"signature {signature!r} must take one input, got {sorted(kwargs)}")
        (self.input_name, self.spec), = kwargs.items()
        self.label = f"signatures[{signature!r}]({self.input_name}=x)"
        self.settings = {
            "intra_op_parallelism_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_parallelism_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "signature": signature,
        }

    def input_shape(self, batch_size, example_shape=None):
        return _concrete_shape(self.spec.shape.as_list(), batch_size, example_shape)

    def timed(self, x):
        function, name = self.function, self.input_name
        return self.label, lambda t: function(**{name: t}), (self.tf.constant(x),)

    def predict(self, x):
        outputs = self.function(**{self.input_name: self.tf.constant(x)})
        return next(iter(outputs.values())).numpy()

    def parameters(self):
        variables = getattr(self.loaded, "variables", None) or []
        if not variables:
            return None
        # Floating variables only: seed-generator states (e.g. of RandomTranslation)
        # are integer variables, not parameters.
        return int(sum(v.shape.num_elements() for v in variables if v.dtype.is_floating))


class TFLiteRuntime:
    """A `.tflite` file on the LiteRT interpreter (XNNPACK delegate, `num_threads`)."""

    label = "set_tensor(x); invoke(); get_tensor()"

    def __init__(self, path, threads, options):
        import numpy as np
        from ai_edge_litert import interpreter as litert

        self.np = np
        try:
            from importlib.metadata import version

            self.version = f"ai-edge-litert {version('ai-edge-litert')}"
        except Exception:  # pragma: no cover - metadata missing
            self.version = "ai-edge-litert"
        self.baseline_rss = peak_rss_bytes()
        self.interpreter = litert.Interpreter(model_path=path, num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.settings = {
            "num_threads": threads,
            "op_resolver": "AUTO (builtin ops + XNNPACK delegate)",
            "input_dtype": np.dtype(self.input["dtype"]).name,
        }
        self._allocated_for = None

    def input_shape(self, batch_size, example_shape=None):
        shape = [int(d) for d in self.input["shape_signature"]]
        return _concrete_shape(shape, batch_size, example_shape)

    def _prepare(self, x):
        """Resizes + allocates once per shape; quantizes `x` for integer inputs."""
        np = self.np
        if self._allocated_for != x.shape:
            self.interpreter.resize_tensor_input(self.input["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self._allocated_for = x.shape
        dtype = np.dtype(self.input["dtype"])
        if dtype.kind in "iu":
            scale, zero_point = self.input["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero_point), info.min, info.max)
        return np.ascontiguousarray(x, dtype=dtype)

    def timed(self, x):
        x = self._prepare(x)
        interpreter = self.interpreter
        set_tensor, invoke, get_tensor = (
            interpreter.set_tensor,
            interpreter.invoke,
            interpreter.get_tensor,
        )
        input_index, output_index = self.input["index"], self.output["index"]

        def call():
            set_tensor(input_index, x)
            invoke()
            return get_tensor(output_index)

        return self.label, call, ()

    def predict(self, x):
        np = self.np
        prepared = self._prepare(x)
        self.interpreter.set_tensor(self.input["index"], prepared)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"]).astype(np.float32)
        scale, zero_point = self.output["quantization"]
        if np.dtype(self.output["dtype"]).kind in "iu" and scale:
            out = (out - zero_point) * scale
        return out

    def parameters(self):
        """Elements of constant weight tensors (shape constants excluded)."""
        np = self.np
        details = {t["index"]: t for t in self.interpreter.get_tensor_details()}
        ops = self.interpreter._get_ops_details()  # pylint: disable=protected-access
        produced = {int(i) for op in ops for i in op["outputs"]}
        inputs = {d["index"] for d in self.interpreter.get_input_details()}
        weighted = {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"}
        counted = set()
        total = 0
        for op in ops:
            if op["op_name"] == "DELEGATE":
                continue
            for position, index in enumerate(int(i) for i in op["inputs"]):
                if index < 0 or index in produced or index in inputs or index in counted:
                    continue
                tensor = details.get(index)
                if tensor is None:
                    continue
                dtype = np.dtype(tensor["dtype"])
                is_bias = op["op_name"] in weighted and position == 2
                if dtype.kind == "f" or dtype.itemsize == 1 or is_bias or dtype == np.int16:
                    counted.add(index)
                    total += int(np.prod(tensor["shape"]))
        return total


class OnnxRuntime:
    """An `.onnx` file on ONNX Runtime's CPU execution provider."""

    label = "session.run(None, {input: x})"

    def __init__(self, path, threads, options):
        import numpy as np
        import onnxruntime as ort

        self.np, self.path = np, path
        self.version = f"onnxruntime {ort.__version__}"
        self.baseline_rss = peak_rss_bytes()
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = threads
        session_options.inter_op_num_threads = 1
        parallel = options.get("execution_mode", "sequential") == "parallel"
        session_options.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        level = options.get("graph_optimization_level", "all")
        session_options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
        spinning = bool(options.get("allow_spinning", True))
        session_options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if spinning else "0"
        )
        self.session = ort.InferenceSession(
            path, session_options, providers=["CPUExecutionProvider"]
        )
        self.io_binding = bool(options.get("io_binding", False))
        self.input = self.session.get_inputs()[0]
        self.settings = {
            "intra_op_num_threads": threads,
            "inter_op_num_threads": 1,
            "execution_mode": "parallel" if parallel else "sequential",
            "graph_optimization_level": level,
            "allow_spinning": spinning,
            "io_binding": self.io_binding,
            "providers": self.session.get_providers(),
        }

    def input_shape(self, batch_size, example_shape=None):
        shape = [d if isinstance(d, int) else None for d in self.input.shape]
        return _concrete_shape(shape, batch_size, example_shape)

    def timed(self, x):
        np = self.np
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not self.io_binding:
            return self.label, self.session.run, (None, {self.input.name: x})
        # Input and output bound once to preallocated CPU buffers.
        import onnxruntime as ort

        output = self.session.get_outputs()[0]
        result = np.empty(self.session.run(None, {self.input.name: x})[0].shape, np.float32)
        binding = self.session.io_binding()
        binding.bind_input(self.input.name, "cpu", 0, np.float32, x.shape, x.ctypes.data)
        binding.bind_output(output.name, "cpu", 0, np.float32, result.shape, result.ctypes.data)
        self._bound = (x, result, ort)  # keep the buffers alive
        return (
            "session.run_with_iobinding(binding)  # input/output preallocated",
            self.session.run_with_iobinding,
            (binding,),
        )

    def predict(self, x):
        x = self.np.ascontiguousarray(x, dtype=self.np.float32)
        return self.session.run(None, {self.input.name: x})[0]

    def parameters(self):
        import onnx
        from onnx import TensorProto

        model = onnx.load(self.path, load_external_data=False)
        kinds = {
            TensorProto.FLOAT,
            TensorProto.FLOAT16,
            TensorProto.BFLOAT16,
            TensorProto.DOUBLE,
            TensorProto.INT8,
            TensorProto.UINT8,
            TensorProto.INT16,
        }
        total = 0
        for tensor in model.graph.initializer:
            if tensor.data_type in kinds:
                count = 1
                for dim in tensor.dims:
                    count *= dim
                total += count
        return int(total)


class NumpyRuntime:
    """The BLAS floor: `NumpyDenseForward` over weights saved by `export.measure`."""

    label = "numpy forward (matmul + in-place bias/activation, preallocated)"

    def __init__(self, path, threads, options):
        import numpy as np

        self.np = np
        self.version = f"numpy {np.__version__}"
        self.baseline_rss = peak_rss_bytes()
        self.forward = NumpyDenseForward.from_npz(
            path, transposed_gemv=bool(options.get("transposed_gemv", False))
        )
        if self.forward.transposed_gemv:
            self.label += "; batch 1: (out, in) kernels, GEMV"
        blas = "unknown"
        try:
            config = np.show_config(mode="dicts")
            blas_info = config["Build Dependencies"]["blas"]
            blas = f"{blas_info.get('name')} {blas_info.get('version')}"
        except Exception:  # pragma: no cover - older NumPy
            pass
        self.settings = {
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
            "blas": blas,
        }

    def input_shape(self, batch_size, example_shape=None):
        if example_shape is not None and int(self.np.prod(example_shape)) == self.forward.input_units:
            return (batch_size, *example_shape)
        return (batch_size, self.forward.input_units)

    def timed(self, x):
        return self.label, self.forward.bind(x), ()

    def predict(self, x):
        return self.forward(x)

    def parameters(self):
        return self.forward.parameters()


# Settings each runtime accepts through `options` (anything else is refused by
# `export.measure` before a process starts).
RUNTIME_OPTIONS = {
    "keras": ("jit_compile", "inter_op_threads"),
    "savedmodel": ("signature", "inter_op_threads"),
    "tflite": (),
    "onnx": ("allow_spinning", "execution_mode", "graph_optimization_level", "io_binding"),
    "numpy": ("transposed_gemv",),
}

RUNTIMES = {
    "keras": KerasRuntime,
    "savedmodel": SavedModelRuntime,
    "tflite": TFLiteRuntime,
    "onnx": OnnxRuntime,
    "numpy": NumpyRuntime,
}


def _accuracy(runtime, x, y, chunk):
    import numpy as np

    correct = 0
    shape = runtime.input_shape(chunk, x.shape[1:])
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        count = len(part)
        if count < chunk:  # pad so that fixed-shape runtimes keep one allocation
            part = np.concatenate([part, np.zeros((chunk - count, *part.shape[1:]), part.dtype)])
        logits = runtime.predict(np.ascontiguousarray(part.reshape(shape), np.float32))
        logits = np.asarray(logits).reshape(chunk, -1)[:count]
        correct += int(np.sum(np.argmax(logits, axis=1) == y[start : start + count]))
    return correct / len(x)


class Session:
    """One loaded runtime, timed in windows on request, then summarised.

    A window times one batch size: a warm-up (excluded), then the raw call with
    `perf_counter_ns` around it (`time_call`). Samples of every window of a batch size
    are pooled; `finish` turns them into the percentiles, so a batch size timed in five
    windows spread over a minute reports the p50 of all its calls. The input of each
    batch size is drawn once from `spec["seed"]` and reused by every window.

    Args:
        spec: The measurement spec (see `export.measure.measure_artifact`).
    """

    def __init__(self, spec):
        import numpy as np

        self.spec = spec
        self.threads = int(spec["threads"])
        load_start = time.perf_counter()
        self.runtime = RUNTIMES[spec["format"]](spec["path"], self.threads, spec.get("options") or {})
        self.load_s = time.perf_counter() - load_start
        self.label = self.runtime.label
        self.rng = np.random.default_rng(spec.get("seed", 0))
        self.inputs, self.samples, self.windows = {}, {}, []

    def _input(self, batch_size):
        import numpy as np

        if batch_size not in self.inputs:
            shape = self.runtime.input_shape(batch_size, self.spec.get("example_shape"))
            self.inputs[batch_size] = np.ascontiguousarray(self.rng.random(shape, dtype=np.float32))
        return self.inputs[batch_size]

    def time(self, batch_size, min_time_s, min_iterations, max_time_s, warmup_s):
        """Times one window of `batch_size`, then waits until this process is idle.

        Returns:
            The window's record: `batch_size`, `calls`, `warmup_iterations`,
            `start_ns`/`end_ns` (`time.perf_counter_ns`, the system's monotonic clock on
            Linux: comparable between processes; warm-up included, settling not) and
            `settle_s`.
        """
        batch_size = int(batch_size)
        start = time.perf_counter_ns()
        # The runtime prepares the call for this shape each window (LiteRT resizes and
        # re-allocates, ONNX Runtime re-binds): other batch sizes may have run between.
        self.label, call, args = self.runtime.timed(self._input(batch_size))
        taken, warmup = time_call(call, args, min_iterations, min_time_s, max_time_s, warmup_s)
        end = time.perf_counter_ns()
        self.samples.setdefault(batch_size, []).extend(taken)
        window = {
            "batch_size": batch_size,
            "calls": len(taken),
            "warmup_iterations": warmup,
            "start_ns": start,
            "end_ns": end,
            "settle_s": settle(),
        }
        self.windows.append(window)
        return window

    def finish(self):
        """Alternatives, peak memory, accuracy and parameters; returns the result dict."""
        import numpy as np

        spec = self.spec
        latency, alternatives, samples = {}, {}, {}
        for batch_size, taken in self.samples.items():
            summary = latency_summary(taken, batch_size)
            summary["warmup_iterations"] = sum(
                w["warmup_iterations"] for w in self.windows if w["batch_size"] == batch_size
            )
            latency[str(batch_size)] = summary
            samples[str(batch_size)] = [round(t / 1e6, 5) for t in taken]
            for alt_label, alt_call, alt_args, alt_kwargs in getattr(
                self.runtime, "alternatives", lambda x: []
            )(self._input(batch_size)):
                bound = (lambda c, k: (lambda *a: c(*a, **k)))(alt_call, alt_kwargs)
                # Alternatives are slow calls shown for honesty (model.predict): bounded
                # to 1 s so that they do not dominate the measurement time.
                alt_max = min(spec["max_time_s"], 1.0)
                alt_taken, alt_warmup = time_call(
                    bound,
                    alt_args,
                    spec["min_iterations"],
                    min(spec["min_time_s"], alt_max),
                    alt_max,
                    spec["warmup_s"],
                )
                alt_summary = latency_summary(alt_taken, batch_size)
                alt_summary["warmup_iterations"] = alt_warmup
                alternatives.setdefault(alt_label, {})[str(batch_size)] = alt_summary
        peak = peak_rss_bytes()
        runtime = self.runtime
        result = {
            "format": spec["format"],
            "path": spec["path"],
            "pid": os.getpid(),
            "runtime": runtime.version,
            "timed_call": self.label,
            "threads": self.threads,
            "runtime_settings": runtime.settings,
            "load_s": self.load_s,
            "baseline_rss_bytes": int(runtime.baseline_rss),
            "peak_rss_bytes": int(peak),
            "latency": latency,
            "alternatives": alternatives,
            "samples_ms": samples,
            "windows": self.windows,
            "python": platform.python_version(),
        }
        if spec.get("data_path"):
            with np.load(spec["data_path"], allow_pickle=False) as data:
                x_data, y_data = data["x"], data["y"]
            result["accuracy"] = _accuracy(runtime, x_data, y_data, int(spec.get("eval_batch_size", 500)))
            result["accuracy_examples"] = int(len(y_data))
        else:
            result["accuracy"] = None
            result["accuracy_examples"] = 0
        result["parameters"] = runtime.parameters()
        return result


def serve(spec, commands, replies):
    """Loads the runtime, then times windows as the parent asks (see `export.worker`).

    Protocol, one JSON object per line: this process writes `{"ready": true}` once the
    runtime is loaded; then for each `{"op": "time", "batch_size", "min_time_s",
    "min_iterations", "max_time_s", "warmup_s"}` it times one window and writes the
    window's record (`Session.time`); `{"op": "finish"}` makes it write the result dict
    and return. While it waits for a command it blocks on `commands`, using no CPU, so
    that the process being timed has the cores to itself.
    """

    def reply(message):
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    session = Session(spec)
    reply({"ready": True, "load_s": session.load_s})
    for line in commands:
        if not line.strip():
            continue
        command = json.loads(line)
        if command["op"] == "time":
            window = session.time(
                command["batch_size"],
                command["min_time_s"],
                command["min_iterations"],
                command["max_time_s"],
                command["warmup_s"],
            )
            reply(window)
        elif command["op"] == "finish":
            reply(session.finish())
            return
        else:
            raise ValueError(f"unknown op {command['op']!r}")
    raise RuntimeError("the parent closed the command stream before finish")


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: _runner.py SPEC.json  (then commands on stdin)\n")
        return 2
    # Keep the real stdout for the JSON lines; everything else (runtime logs, Keras
    # progress) goes to stderr.
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    with open(argv[1]) as handle:
        spec = json.load(handle)
    serve(spec, sys.stdin, json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
