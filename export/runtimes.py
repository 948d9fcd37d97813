"""One adapter per runtime: run a Keras model or an exported artifact.

Every format has exactly one adapter here, used both by `export.verify`
(parity against Keras) and by the measurement child (`export.measure.child`):

    keras       a `.keras` file or a `keras.Model`; `tf.function` of
                `model(x, training=False)`
    savedmodel  `tf.saved_model.load(path).signatures["serving_default"]`
    tflite      LiteRT `Interpreter` (`ai_edge_litert`; XNNPACK is its default
                CPU delegate); int8/uint8 input and output tensors are
                (de)quantised with the model's scale and zero point
    onnx        ONNX Runtime with full graph optimisation (CPU provider unless
                `options["providers"]` says otherwise)
    numpy       the float32 NumPy forward pass of a dense network's weights
                (`export.measure.floor`): the BLAS floor

Each adapter is built as `Adapter(path, threads=None, options=None)` and has:

    predict(x)           float32 outputs (the first output: the logits)
    predict_all(x)       every output, `{output name: float32 array}`
    timed(x)             `(label, call, args)`: the raw runtime call, with the
                         input prepared, for the timing loop
    input_shape(b, example_shape=None)
    parameters()         stored parameters (None when unknown)
    version, settings    what ran, with which settings

`x` is an array for a one-input model, else a dict `{input name: array}`
(`export.inputs.InputSpec`): the SavedModel signature, the TFLite signature
and the ONNX graph take the Keras input names. With several outputs,
`options["output"]` names the one `predict` returns (default: the first).

`import export.runtimes` imports only NumPy: an adapter imports its runtime
when it is built (`MODULES` lists which), so a process that runs ONNX Runtime
or LiteRT never imports TensorFlow.
"""

import importlib.metadata
import os
import weakref

import numpy as np

from export.loading import signature_key

FORMATS = ("keras", "savedmodel", "tflite", "onnx", "numpy")

# The modules each adapter imports when it is built.
MODULES = {
    "keras": ("tensorflow", "keras"),
    "savedmodel": ("tensorflow",),
    "tflite": ("ai_edge_litert.interpreter",),
    "onnx": ("onnxruntime",),
    "numpy": (),
}

# Settings each adapter accepts through `options` from a measurement
# (`export.measure` refuses any other before a process starts).
OPTIONS = {
    "keras": ("jit_compile", "inter_op_threads", "unsafe", "output"),
    "savedmodel": ("signature", "inter_op_threads", "output"),
    "tflite": ("output",),
    "onnx": (
        "allow_spinning",
        "execution_mode",
        "graph_optimization_level",
        "io_binding",
        "output",
    ),
    "numpy": ("transposed_gemv",),
}


def by_name(x, names, what="model"):
    """`{input name: array}` of `x` (an array for one input, or a dict).

    A one-input runtime takes an array or a dict of one array whatever its
    name; several inputs are matched by name.
    """
    names = list(names)
    if not isinstance(x, dict):
        if len(names) != 1:
            raise ValueError(
                f"the {what} takes {len(names)} inputs ({', '.join(names)[:200]}); "
                "pass a dict of arrays by input name"
            )
        return {names[0]: x}
    if len(names) == 1 and len(x) == 1:
        return {names[0]: next(iter(x.values()))}
    missing = [name for name in names if name not in x]
    if missing:
        raise ValueError(
            f"the {what} takes inputs {', '.join(names)[:200]}; missing "
            f"{', '.join(missing)[:200]} in the data (keys {sorted(x)[:8]})"
        )
    return {name: x[name] for name in names}


def primary_output(names, options):
    """The output `predict` returns: `options["output"]`, else the first."""
    names = list(names)
    wanted = (options or {}).get("output")
    if wanted is None or len(names) == 1:
        return names[0]
    if wanted not in names:
        raise ValueError(
            f"`output` must be one of the outputs {names[:8]}. Received: "
            f"output={str(wanted)[:80]!r}"
        )
    return wanted


def concrete_shape(shape, batch_size, example_shape=None):
    """Input shape for `batch_size`; unknown dims come from `example_shape`.

    Args:
        shape: The model's input shape, batch dimension first; unknown
            dimensions are None or non-positive.
        batch_size: The batch size to use.
        example_shape: Optional shape of one example (without batch).

    Returns:
        A tuple of ints.
    """
    out = [int(batch_size)]
    for i, dim in enumerate(list(shape)[1:]):
        if isinstance(dim, int) and dim > 0:
            out.append(dim)
        elif example_shape is not None and i < len(example_shape):
            out.append(int(example_shape[i]))
        else:
            raise ValueError(
                f"cannot infer input dimension {i + 1} of shape {list(shape)}"
            )
    return tuple(out)


def tensorflow_with_threads(threads, options):
    """Imports TensorFlow with its thread pools set (unless `threads` is None).

    The intra-op pool gets `threads`, the inter-op pool
    `options["inter_op_threads"]` (default 1). In a process where TensorFlow
    already ran the pools are fixed; `tf_thread_settings` records the values
    in force.
    """
    import tensorflow as tf

    if threads is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(
                int(options.get("inter_op_threads", 1))
            )
        except RuntimeError:
            pass
    return tf


def tf_thread_settings(tf):
    """TensorFlow's thread-pool sizes, as set (0: TensorFlow's default)."""
    threading = tf.config.threading
    return {
        "intra_op_parallelism_threads": (threading.get_intra_op_parallelism_threads()),
        "inter_op_parallelism_threads": (threading.get_inter_op_parallelism_threads()),
    }


class KerasRuntime:
    """A `keras.Model` (or `.keras` file, loaded with `safe_mode=True`).

    Times and predicts with a `tf.function` of `model(x, training=False)`.
    A model object is used as given (a `tf_keras` quantization-aware model
    too: it is the reference of its TFLite conversion). `options["unsafe"]`
    loads the file with `safe_mode=False` (Lambda layers), as `--unsafe` does.
    """

    label = "tf.function(model(x, training=False))"
    predict_batch_size = 256

    def __init__(self, path, threads=None, options=None):
        options = options or {}
        tf = tensorflow_with_threads(threads, options)
        import keras

        self.tf = tf
        self.version = f"keras {keras.__version__} / tensorflow {tf.__version__}"
        from export.inputs import InputSpec
        from export.loading import functional_model

        if isinstance(path, str):
            from export.loading import import_model_packages

            import_model_packages(path, path)
            model = keras.saving.load_model(
                path, safe_mode=not options.get("unsafe", False), compile=False
            )
            self.model = functional_model(model, path)  # A subclassed model too.
        else:
            self.model = path
        self.spec = InputSpec.of(self.model)
        self.output = primary_output(self.spec.output_names or ["output"], options)
        jit = bool(options.get("jit_compile", False))
        model = self.model
        self.function = tf.function(
            lambda x: keras.tree.flatten(model(x, training=False)),
            jit_compile=jit,
            reduce_retracing=True,
        )
        if jit:
            self.label = "tf.function(model(x, training=False), jit_compile=True)"
        self.settings = {**tf_thread_settings(tf), "jit_compile": jit}

    def input_shape(self, batch_size, example_shape=None):
        return concrete_shape(self.model.inputs[0].shape, batch_size, example_shape)

    def _tensors(self, x):
        arrays = {k: self.tf.constant(v) for k, v in self.spec.as_dict(x).items()}
        return self.spec.for_model(arrays)

    def timed(self, x):
        return self.label, self.function, (self._tensors(x),)

    def alternatives(self, x):
        """`model.predict` too, timed for honesty: what most users call."""
        keywords = {"batch_size": self.spec.count(x), "verbose": 0}
        return [
            ("model.predict", self.model.predict, (self.spec.for_model(x),), keywords)
        ]

    def predict_all(self, x):
        step = self.predict_batch_size
        chunks = [
            [
                np.asarray(o)
                for o in self.function(self._tensors(self.spec.take(x, i, i + step)))
            ]
            for i in range(0, self.spec.count(x), step)
        ]
        names = self.spec.output_names or [f"output_{i}" for i in range(len(chunks[0]))]
        return {
            name: np.concatenate([c[i] for c in chunks]).astype(np.float32)
            for i, name in enumerate(names)
        }

    def predict(self, x):
        outputs = self.predict_all(x)
        return outputs.get(self.output, next(iter(outputs.values())))

    def parameters(self):
        return int(self.model.count_params())


# id(model) -> (weak reference, KerasRuntime on a weak proxy of the model).
KERAS_REFERENCES = {}


def keras_reference(model):
    """The `KerasRuntime` of an in-memory model, built once per model object.

    Verifying several artifacts of one model (every variant of a report) then
    traces its `tf.function` once, not once per artifact. The function reads the
    model's variables when called, so it follows later changes of the weights.
    The runtime holds the model weakly: the entry goes when the model does.
    """
    key = id(model)
    entry = KERAS_REFERENCES.get(key)
    if entry is not None and entry[0]() is model:
        return entry[1]
    runtime = KerasRuntime(weakref.proxy(model))
    KERAS_REFERENCES[key] = (
        weakref.ref(model, lambda _, key=key: KERAS_REFERENCES.pop(key, None)),
        runtime,
    )
    return runtime


class SavedModelRuntime:
    """A SavedModel directory; runs one signature's concrete function."""

    def __init__(self, path, threads=None, options=None):
        options = options or {}
        tf = tensorflow_with_threads(threads, options)
        self.tf = tf
        self.version = f"tensorflow {tf.__version__}"
        self.loaded = tf.saved_model.load(path)
        signature = options.get("signature") or signature_key(self.loaded.signatures)
        if signature not in self.loaded.signatures:
            raise ValueError(
                f"SavedModel {path} has no signature {signature!r}; "
                f"found {sorted(self.loaded.signatures)}"
            )
        self.function = self.loaded.signatures[signature]
        _, keywords = self.function.structured_input_signature
        self.input_names = sorted(keywords)
        self.input_name, self.spec = self.input_names[0], keywords[self.input_names[0]]
        self.output_name = primary_output(
            list(self.function.structured_outputs), options
        )
        arguments = ", ".join(f"{name}=..." for name in self.input_names)
        if len(self.input_names) == 1:
            arguments = f"{self.input_name}=x"
        self.label = f"signatures[{signature!r}]({arguments})"
        self.settings = {**tf_thread_settings(tf), "signature": signature}

    def input_shape(self, batch_size, example_shape=None):
        return concrete_shape(self.spec.shape.as_list(), batch_size, example_shape)

    def _tensors(self, x):
        return {
            name: self.tf.constant(value)
            for name, value in by_name(x, self.input_names, "SavedModel").items()
        }

    def timed(self, x):
        function = self.function
        return self.label, lambda t: function(**t), (self._tensors(x),)

    def predict_all(self, x):
        outputs = self.function(**self._tensors(x))
        return {name: value.numpy() for name, value in outputs.items()}

    def predict(self, x):
        return self.predict_all(x)[self.output_name]

    def parameters(self):
        variables = getattr(self.loaded, "variables", None) or []
        if not variables:
            return None
        # Floating variables only: seed-generator states (e.g. of
        # RandomTranslation) are integer variables, not parameters.
        return int(
            sum(v.shape.num_elements() for v in variables if v.dtype.is_floating)
        )


def quantize_input(x, detail):
    """Inputs -> the tensor's dtype (quantised int8/uint8: scale and zero point).

    Integer data for an integer tensor without a scale (token ids, masks) is
    only cast.
    """
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if not np.issubdtype(dtype, np.integer) or not scale:
        return np.ascontiguousarray(x, dtype=dtype)
    if np.issubdtype(np.asarray(x).dtype, np.integer):
        return np.ascontiguousarray(x, dtype=dtype)
    info = np.iinfo(dtype)
    quantized = np.clip(np.round(x / scale) + zero_point, info.min, info.max)
    return np.ascontiguousarray(quantized, dtype=dtype)


def dequantize_output(y, detail):
    """A tensor's values as float32 (int8/uint8: scale and zero point)."""
    scale, zero_point = detail["quantization"]
    if not np.issubdtype(y.dtype, np.integer) or not scale:
        return y.astype(np.float32)
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


class TFLiteRuntime:
    """A `.tflite` file on the LiteRT interpreter (XNNPACK, `num_threads`)."""

    label = "set_tensor(x); invoke(); get_tensor()"

    def __init__(self, path, threads=None, options=None):
        from ai_edge_litert import interpreter as litert

        try:
            version = importlib.metadata.version("ai-edge-litert")
            self.version = f"ai-edge-litert {version}"
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            self.version = "ai-edge-litert"
        self.interpreter = litert.Interpreter(model_path=path, num_threads=threads)
        # The signature names the inputs and outputs as the SavedModel did.
        signatures = self.interpreter.get_signature_list()
        if signatures:
            runner = self.interpreter.get_signature_runner(signature_key(signatures))
            self.inputs = dict(sorted(runner.get_input_details().items()))
            self.outputs = dict(runner.get_output_details())
        else:
            self.inputs = {d["name"]: d for d in self.interpreter.get_input_details()}
            self.outputs = {d["name"]: d for d in self.interpreter.get_output_details()}
        self.input = next(iter(self.inputs.values()))
        self.output = self.outputs[primary_output(list(self.outputs), options)]
        self.input_dtype = np.dtype(self.input["dtype"]).name
        self.output_dtype = np.dtype(self.output["dtype"]).name
        self.settings = {
            "num_threads": threads,
            "op_resolver": "AUTO (builtin ops + XNNPACK delegate)",
            "input_dtype": self.input_dtype,
        }
        self.allocated_for = None

    def input_shape(self, batch_size, example_shape=None):
        shape = [int(d) for d in self.input["shape_signature"]]
        return concrete_shape(shape, batch_size, example_shape)

    def prepare(self, x):
        """Resizes and allocates once per shape; returns the inputs quantised.

        Returns:
            A list of `(tensor index, array)`, one per input.
        """
        arrays = by_name(x, self.inputs, "TFLite model")
        shapes = tuple(a.shape for a in arrays.values())
        if self.allocated_for != shapes:
            for name, array in arrays.items():
                self.interpreter.resize_tensor_input(
                    self.inputs[name]["index"], list(array.shape)
                )
            self.interpreter.allocate_tensors()
            self.allocated_for = shapes
        return [
            (self.inputs[name]["index"], quantize_input(array, self.inputs[name]))
            for name, array in arrays.items()
        ]

    def timed(self, x):
        prepared = self.prepare(x)
        interpreter = self.interpreter
        set_tensor = interpreter.set_tensor
        invoke = interpreter.invoke
        get_tensor = interpreter.get_tensor
        output_index = self.output["index"]
        if len(prepared) == 1:
            ((input_index, x),) = prepared

            def call():
                set_tensor(input_index, x)
                invoke()
                return get_tensor(output_index)

        else:

            def call():
                for index, value in prepared:
                    set_tensor(index, value)
                invoke()
                return get_tensor(output_index)

        return self.label, call, ()

    def predict_all(self, x):
        for index, value in self.prepare(x):
            self.interpreter.set_tensor(index, value)
        self.interpreter.invoke()
        return {
            name: dequantize_output(self.interpreter.get_tensor(d["index"]), d)
            for name, d in self.outputs.items()
        }

    def predict(self, x):
        for index, value in self.prepare(x):
            self.interpreter.set_tensor(index, value)
        self.interpreter.invoke()
        output = self.interpreter.get_tensor(self.output["index"])
        return dequantize_output(output, self.output)

    def parameters(self):
        """Elements of the constant weight tensors (shape constants excluded)."""
        return int(
            sum(size for _, _, size in constant_tensor_details(self.interpreter))
        )


def constant_tensor_details(interpreter):
    """`(detail, op_name, size)` of every constant weight tensor of a model.

    A constant is an op input that no op produces and that is not a model
    input; float, 8-bit and int16 tensors and the bias (third input) of
    weighted ops count, other integer constants (shapes) do not.
    """
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    # LiteRT has no public API for the op list.
    ops = interpreter._get_ops_details()  # pylint: disable=protected-access
    produced = {int(i) for op in ops for i in op["outputs"]}
    inputs = {d["index"] for d in interpreter.get_input_details()}
    weighted = {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"}
    counted = set()
    found = []
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
                found.append((tensor, op["op_name"], int(np.prod(tensor["shape"]))))
    return found


def tflite_weight_tensors(path, min_size=64):
    """The constant weight tensors of a `.tflite` file, read back with LiteRT.

    Read without the XNNPACK delegate, which repacks weights it takes over.

    Args:
        path: A `.tflite` file.
        min_size: Smallest number of elements kept (skips scales, biases of
            tiny layers).

    Returns:
        Dict `{tensor name: array}` of kernels and other large constants.
    """
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.interpreter import OpResolverType

    interpreter = Interpreter(
        model_path=os.fspath(path),
        experimental_op_resolver_type=(
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
    )
    interpreter.allocate_tensors()
    return {
        detail["name"]: np.array(interpreter.get_tensor(detail["index"]))
        for detail, _, size in constant_tensor_details(interpreter)
        if size >= min_size
    }


def onnx_providers():
    """ONNX Runtime providers to use: CUDA first when available, then CPU."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    preferred = ("CUDAExecutionProvider", "CPUExecutionProvider")
    return [name for name in preferred if name in available] or available


ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


class OnnxRuntime:
    """An `.onnx` file on ONNX Runtime (CPU provider unless told otherwise)."""

    label = "session.run(None, {input: x})"

    def __init__(self, path, threads=None, options=None):
        import onnxruntime as ort

        options = options or {}
        self.path = path
        self.version = f"onnxruntime {ort.__version__}"
        session_options = ort.SessionOptions()
        session_options.log_severity_level = 3
        if threads is not None:
            session_options.intra_op_num_threads = threads
            session_options.inter_op_num_threads = 1
        parallel = options.get("execution_mode", "sequential") == "parallel"
        session_options.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL
            if parallel
            else ort.ExecutionMode.ORT_SEQUENTIAL
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
            path,
            session_options,
            providers=options.get("providers") or ["CPUExecutionProvider"],
        )
        self.inputs = {i.name.split(":")[0]: i for i in self.session.get_inputs()}
        self.input = self.session.get_inputs()[0]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.output_index = self.output_names.index(
            primary_output(self.output_names, options)
        )
        # One preallocated input and output: only for one-input models.
        self.io_binding = (
            bool(options.get("io_binding", False)) and len(self.inputs) == 1
        )
        self.bound = None
        self.settings = {
            "intra_op_num_threads": threads,
            "inter_op_num_threads": 1 if threads is not None else None,
            "execution_mode": "parallel" if parallel else "sequential",
            "graph_optimization_level": level,
            "allow_spinning": spinning,
            "io_binding": self.io_binding,
            "providers": self.session.get_providers(),
        }

    def input_shape(self, batch_size, example_shape=None):
        shape = [d if isinstance(d, int) else None for d in self.input.shape]
        return concrete_shape(shape, batch_size, example_shape)

    def feed(self, x):
        """`{graph input name: array}` in each input's dtype."""
        return {
            self.inputs[name].name: np.ascontiguousarray(
                value, dtype=ONNX_DTYPES.get(self.inputs[name].type, np.float32)
            )
            for name, value in by_name(x, self.inputs, "ONNX model").items()
        }

    def timed(self, x):
        if not self.io_binding:
            return self.label, self.session.run, (None, self.feed(x))
        x = np.ascontiguousarray(x, dtype=np.float32)
        # Input and output bound once to preallocated CPU buffers.
        output = self.session.get_outputs()[0]
        first = self.session.run(None, {self.input.name: x})[0]
        result = np.empty(first.shape, np.float32)
        binding = self.session.io_binding()
        binding.bind_input(
            self.input.name, "cpu", 0, np.float32, x.shape, x.ctypes.data
        )
        binding.bind_output(
            output.name, "cpu", 0, np.float32, result.shape, result.ctypes.data
        )
        self.bound = (x, result)  # The buffers must outlive the binding.
        return (
            "session.run_with_iobinding(binding)  # input/output preallocated",
            self.session.run_with_iobinding,
            (binding,),
        )

    def predict_all(self, x):
        values = self.session.run(None, self.feed(x))
        return dict(zip(self.output_names, values, strict=True))

    def predict(self, x):
        return self.session.run(None, self.feed(x))[self.output_index]

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
        return int(
            sum(
                int(np.prod(tensor.dims))
                for tensor in model.graph.initializer
                if tensor.data_type in kinds
            )
        )


class NumpyRuntime:
    """The BLAS floor: `NumpyDenseForward` over weights from `save_dense_layers`."""

    label = "numpy forward (matmul + in-place bias/activation, preallocated)"

    def __init__(self, path, threads=None, options=None):
        from export.measure.floor import NumpyDenseForward

        options = options or {}
        self.version = f"numpy {np.__version__}"
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
            name: os.environ.get(name)
            for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        }
        self.settings["blas"] = blas

    def input_shape(self, batch_size, example_shape=None):
        units = self.forward.input_units
        if example_shape is not None and int(np.prod(example_shape)) == units:
            return (batch_size, *example_shape)
        return (batch_size, units)

    def timed(self, x):
        return self.label, self.forward.bind(x), ()

    def predict_all(self, x):
        return {"output": self.forward(x)}

    def predict(self, x):
        return self.forward(x)

    def parameters(self):
        return self.forward.parameters()


ADAPTERS = {
    "keras": KerasRuntime,
    "savedmodel": SavedModelRuntime,
    "tflite": TFLiteRuntime,
    "onnx": OnnxRuntime,
    "numpy": NumpyRuntime,
}


def load(path, fmt, threads=None, options=None):
    """The adapter of format `fmt` with the artifact at `path` loaded.

    Args:
        path: The artifact (a `keras.Model` is accepted for `"keras"`).
        fmt: One of `FORMATS`.
        threads: Threads the runtime may use; None: the runtime's default.
        options: Format-specific settings (see each adapter).

    Returns:
        The adapter; `adapter.predict(x)` runs the model.
    """
    if fmt not in ADAPTERS:
        raise ValueError(f"`fmt` must be one of {list(FORMATS)}. Received: fmt={fmt!r}")
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    return ADAPTERS[fmt](path, threads, options)
