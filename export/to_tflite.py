"""Export a Keras model to TensorFlow Lite (LiteRT), optionally quantised.

Keras 3 models are converted through a SavedModel: the model is written with
`export.to_savedmodel.write_savedmodel` to a scratch folder and converted with
`tf.lite.TFLiteConverter.from_saved_model` (`from_keras_model` targets Keras 2
objects). The input keeps a dynamic batch dimension (`shape_signature`
`[-1, ...]`; resize it before `allocate_tensors`).

Quantisation modes (`quantize`):

    none     float32 weights and activations; checked at relative error < 1e-5.
    float16  float16 weights (dequantised at load on CPU); half the size.
    dynamic  int8 weights, float activations quantised on the fly; ~4x smaller.
    int8     full-integer: int8 weights and activations, ranges calibrated on
             representative inputs; with `int8_io=True` the model's input and
             output tensors are int8 too (scale and zero point in the model).
    qat      a quantization-aware model (TFMOT fake-quant wrappers, the
             `tf_keras` model `kdkeras.compress.quantization_aware` returns):
             int8 weights and activations with the ranges learned in
             training, float32 input and output. Python API only; it is
             converted with `TFLiteConverter.from_keras_model` and checked
             against the quantization-aware model itself.

With `int8` and `float_fallback="auto"` (`--float-fallback=auto`), a model
whose full int8 conversion fails its checks is converted again with the fewest
layers kept in float that make it pass, found from the per-layer quantisation
errors (`export.float_fallback`); the sidecar records the layers and their
cost in size and latency against full int8.

Quantised models are checked by top-1 agreement with Keras on held-out
inputs (thresholds in `export.verify.MIN_TOP1_AGREEMENT`), never on the
calibration batch alone, and by their relative error
(`export.verify.MAX_QUANTIZED_RELATIVE_ERROR`). All checks run under the
LiteRT `Interpreter` from `ai_edge_litert`, whose default CPU delegate is
XNNPACK.

Representative data (any quantised mode) is validated before conversion:
finite, numeric, of the model's input shape, at least
`export.inputs.MIN_REPRESENTATIVE_EXAMPLES` rows, not constant.

The written file's tensor types are read back (`tensor_types`) and must be
those of the mode claimed (`check_tensor_types`): float32 kernels for `none`,
float16 for `float16`, int8 for `dynamic` (TFLite leaves kernels under 1024
elements in float32 there), int8 kernels and int8 activations into every
weighted op for `int8` and `qat`. Otherwise a `ConversionError`, and nothing
is written.

The TFLite converter is native code that can crash the process (a
segmentation fault on int8 calibration data holding inf): it runs in a child
process (`export.pipeline.run_isolated`) on a scratch SavedModel the parent
writes and always deletes; a crash becomes a one-line `ConversionError`.

Command line:

    python -m export.to_tflite student.keras --output student.tflite \\
        --quantize int8 --representative-data fashion-mnist:500 --int8-io
"""

import os
import re
import tempfile

import numpy as np

from export import float_fallback as fallback
from export import inputs
from export import loading
from export import pipeline
from export import runtimes
from export import to_savedmodel
from export import verify

QUANTIZE_MODES = ("none", "float16", "dynamic", "int8", "qat")
MAX_CALIBRATION_SAMPLES = 1000


def convert(
    model,
    quantize="none",
    representative_inputs=None,
    int8_io=False,
    spec=None,
):
    """Converts `model` to TFLite flatbuffer bytes (no checks, no staging).

    Args:
        model: A built `keras.Model`.
        quantize: One of `QUANTIZE_MODES`.
        representative_inputs: Inputs (an array, or a dict by input name),
            required for `int8`.
        int8_io: int8 input and output tensors (only with `int8`).
        spec: The model's `export.inputs.InputSpec` (read when None).

    Returns:
        The `.tflite` bytes.

    Raises:
        export.pipeline.ConversionError: the converter cannot handle an op of
            the model, or crashed.
    """
    if quantize == "qat":
        return convert_quantization_aware(model)
    spec = loading.input_spec(model) if spec is None else spec
    with tempfile.TemporaryDirectory(prefix="kdkeras-tflite-") as scratch:
        saved_model_dir = to_savedmodel.scratch_savedmodel(model, spec)
        calibration_path = None
        if quantize == "int8":
            calibration_path = os.path.join(scratch, "representative.npz")
            names, _ = to_savedmodel.signature_names(spec)
            samples = spec.as_dict(
                spec.take(representative_inputs, 0, MAX_CALIBRATION_SAMPLES)
            )
            np.savez(
                calibration_path,
                **dict(zip(names, map(np.asarray, samples.values()), strict=True)),
            )
        output_path = os.path.join(scratch, "model.tflite")
        pipeline.run_isolated(
            convert_saved_model,
            {
                "saved_model_dir": saved_model_dir,
                "output_path": output_path,
                "quantize": quantize,
                "representative_path": calibration_path,
                "int8_io": int8_io,
            },
            what="the TFLite converter",
        )
        with open(output_path, "rb") as handle:
            return handle.read()


def convert_saved_model(
    saved_model_dir,
    output_path,
    quantize="none",
    representative_path=None,
    int8_io=False,
):
    """Converts a SavedModel to a `.tflite` file (run in a child process).

    Args:
        saved_model_dir: SavedModel with a `serving_default` signature.
        output_path: Where the flatbuffer is written.
        quantize: `"none"`, `"float16"`, `"dynamic"` or `"int8"`.
        representative_path: `.npz` of calibration inputs (int8), one array
            per signature input.
        int8_io: int8 input and output tensors (int8 only).

    Raises:
        export.pipeline.ConversionError: the converter failed.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=["serving_default"]
    )
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        with np.load(representative_path, allow_pickle=False) as data:
            samples = {name: data[name] for name in data.files}
        count = len(next(iter(samples.values())))

        def representative_dataset():
            for i in range(count):
                rows = {name: array[i : i + 1] for name, array in samples.items()}
                yield list(rows.values()) if len(rows) == 1 else rows

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    try:
        flatbuffer = converter.convert()
    except Exception as error:
        raise pipeline.ConversionError(describe_converter_error(error)) from None
    with open(output_path, "wb") as handle:
        handle.write(flatbuffer)


# Integer model inputs and outputs (token ids, masks): kept as they are.
INTEGER_INPUTS = ("int32", "int64", "bool")
WEIGHTED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV")
# Dynamic-range quantisation leaves smaller kernels in float32
# (TFLite's min_elements_for_weights).
DYNAMIC_MIN_ELEMENTS = 1024


def tensor_types(path):
    """The dtypes of a `.tflite` file's weighted ops, read back with LiteRT.

    Args:
        path: A `.tflite` file.

    Returns:
        A list with one dict per weighted op (`WEIGHTED_OPS`): `op`,
        `kernel` (dtype name of the stored kernel, looked through a
        DEQUANTIZE op), `kernel_size` (elements), `activation` (dtype name of
        the op's data input), plus a dict `io` with the model's `input` and
        `output` dtype names, as `(ops, io)`.
    """
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.interpreter import OpResolverType

    interpreter = Interpreter(
        model_path=os.fspath(path),
        experimental_op_resolver_type=(
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
    )
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    # LiteRT has no public API for the op list (export.runtimes reads it too).
    ops = interpreter._get_ops_details()  # pylint: disable=protected-access
    producer = {int(i): op for op in ops for i in op["outputs"]}

    def dtype_name(index):
        return np.dtype(details[index]["dtype"]).name

    found = []
    for op in ops:
        if op["op_name"] not in WEIGHTED_OPS:
            continue
        inputs = [int(i) for i in op["inputs"]]
        data_index, kernel_index = (
            (inputs[2], inputs[1])
            if op["op_name"] == "TRANSPOSE_CONV"
            else (inputs[0], inputs[1])
        )
        source = producer.get(kernel_index)
        if source is not None and source["op_name"] == "DEQUANTIZE":
            kernel_index = int(source["inputs"][0])
        found.append(
            {
                "op": op["op_name"],
                "kernel": dtype_name(kernel_index),
                "kernel_size": int(np.prod(details[kernel_index]["shape"])),
                "activation": dtype_name(data_index),
            }
        )
    io = {
        "input": np.dtype(interpreter.get_input_details()[0]["dtype"]).name,
        "output": np.dtype(interpreter.get_output_details()[0]["dtype"]).name,
        "inputs": [np.dtype(d["dtype"]).name for d in interpreter.get_input_details()],
        "outputs": [
            np.dtype(d["dtype"]).name for d in interpreter.get_output_details()
        ],
    }
    return found, io


def check_tensor_types(path, quantize, int8_io=False, float_allowed=False):
    """Raises `ConversionError` unless the file's tensor types match `quantize`.

    Args:
        path: The written `.tflite` file.
        quantize: The mode claimed (one of `QUANTIZE_MODES`).
        int8_io: Whether int8 input and output tensors are claimed.
        float_allowed: With `int8`, weighted ops may be left in float (an int8
            float fallback's: keeping a layer in float can leave a weighted
            neighbour in float too, e.g. a convolution reading a float
            BatchNorm); at least one must hold int8.

    Returns:
        A summary for the sidecar: `{"kernels": {dtype: count},
        "activations": {dtype: count}}` over the int8 weighted ops, and with
        `float_allowed` `"float_weighted_ops"`, how many the file holds in
        float.

    Example: see `export_tflite` (one conversion serves both examples).
    """
    ops, io = tensor_types(path)
    if not ops:
        raise pipeline.ConversionError(
            f"the TFLite file has no weighted op ({', '.join(WEIGHTED_OPS)}) "
            f"whose types could show quantize={quantize}"
        )
    expected_kernel = {
        "none": "float32",
        "float16": "float16",
        "dynamic": "int8",
        "int8": "int8",
        "qat": "int8",
    }[quantize]
    wrong = []
    in_float = 0
    if quantize == "int8" and float_allowed:
        quantised = [
            op for op in ops if op["kernel"] == "int8" and op["activation"] == "int8"
        ]
        if quantised:
            in_float, ops = len(ops) - len(quantised), quantised
    for op in ops:
        kernel_ok = op["kernel"] == expected_kernel or (
            quantize == "dynamic"
            and op["kernel"] == "float32"
            and op["kernel_size"] < DYNAMIC_MIN_ELEMENTS
        )
        if not kernel_ok:
            wrong.append(f"{op['op']} kernel {op['kernel']}")
        if quantize in ("int8", "qat") and op["activation"] != "int8":
            wrong.append(f"{op['op']} activation {op['activation']}")
        if quantize in ("none", "float16", "dynamic") and op["activation"] != "float32":
            wrong.append(f"{op['op']} activation {op['activation']}")
    if quantize == "dynamic" and not any(op["kernel"] == "int8" for op in ops):
        wrong.append(
            f"no int8 kernel (TFLite keeps kernels under {DYNAMIC_MIN_ELEMENTS} "
            "elements in float32 in dynamic mode: use float16 or int8 for "
            "this model)"
        )
    io_expected = "int8" if int8_io else "float32"
    for side in ("inputs", "outputs"):
        for dtype in io[side]:
            # Integer inputs (token ids, masks) are not quantised.
            if dtype != io_expected and dtype not in INTEGER_INPUTS:
                wrong.append(f"model {side[:-1]} {dtype}")
    if wrong:
        shown = ", ".join(sorted(set(wrong))[:4])
        raise pipeline.ConversionError(
            f"the TFLite file does not hold quantize={quantize} tensor types "
            f"(expected {expected_kernel} kernels): found {shown}; "
            "nothing was written"
        )

    def count(key):
        counts = {}
        for op in ops:
            counts[op[key]] = counts.get(op[key], 0) + 1
        return counts

    summary = {"kernels": count("kernel"), "activations": count("activation")}
    if quantize == "int8" and float_allowed:
        summary["float_weighted_ops"] = in_float
    return summary


def is_quantization_aware(model):
    """Whether `model` is a `tf_keras` model (TFMOT quantization-aware)."""
    return type(model).__module__.split(".")[0] == "tf_keras" or any(
        cls.__module__.split(".")[0] == "tf_keras" for cls in type(model).__mro__
    )


def convert_quantization_aware(model):
    """Converts a quantization-aware `tf_keras` model to int8 TFLite bytes.

    Weights and activations are int8 with the ranges learned in training;
    the input and output stay float32.

    Raises:
        export.pipeline.ConversionError: the converter cannot handle the model.
    """
    import warnings

    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with warnings.catch_warnings():
        # Float32 input/output of a quantized model: expected, not a problem.
        warnings.filterwarnings(
            "ignore", message="Statistics for quantized inputs were expected"
        )
        try:
            return converter.convert()
        except Exception as error:
            raise pipeline.ConversionError(describe_converter_error(error)) from None


def describe_converter_error(error):
    """One line from the (long, multi-line) TFLite converter error."""
    text = str(error)
    ops = sorted(
        set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text))
    )
    if ops:
        return (
            f"the TFLite converter cannot handle TF op(s) {', '.join(ops)}: "
            "not TFLite builtins (Select TF ops are not enabled)"
        )
    unsupported = sorted(set(re.findall(r"'(tf\.\w+)' op", text)))
    for line in text.splitlines():
        if "error:" in line:
            detail = line.split("error:", 1)[1].strip()
            if unsupported:
                detail += f" (ops: {', '.join(unsupported)})"
            return f"the TFLite converter failed: {detail}"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"the TFLite converter failed: {first or type(error).__name__}"


def export_tflite(
    model,
    output_path,
    quantize="none",
    representative_data=None,
    int8_io=False,
    overwrite=False,
    labelled_data=None,
    seed=0,
    min_agreement=None,
    unsafe=False,
    float_fallback="none",
):
    """Exports `model` as a verified `.tflite` file.

    Args:
        model: A `keras.Model`, or a path to a `.keras` file / SavedModel; for
            `quantize="qat"`, the quantization-aware `tf_keras` model.
        output_path: Destination `.tflite` path.
        quantize: One of `QUANTIZE_MODES`.
        representative_data: Inputs for int8 calibration (required for
            `int8`): an array (a dict by input name for several inputs), a
            `.npy`/`.npz` path (`x_<input name>` arrays for several inputs),
            a dataset, or `"fashion-mnist:N"` (first N training images). For
            other modes, optional real inputs for the agreement check.
        int8_io: With `int8`, make the input and output tensors int8.
        overwrite: Replace an existing `output_path`.
        labelled_data: Optional `.npz` (`x` or `x_<input name>`, and `y`),
            `(x, y)` or a dataset, for accuracy; its `x` is also used for the
            top-1 agreement of quantised modes.
        seed: Seed of the random parity inputs.
        min_agreement: Override the top-1 agreement threshold.
        unsafe: Allow Lambda layers when loading a `.keras` path.
        float_fallback: With `int8`: `"none"` (full int8 or nothing) or
            `"auto"`: when full int8 fails its checks, keep the fewest layers
            in float that make it pass (`export.float_fallback`; the layers
            and their cost in size and latency go to the sidecar's
            `options.float_fallback` and the summary line).

    Returns:
        An `export.pipeline.ExportResult`; sidecar `<output_path>.json`.

    Raises:
        ValueError: unknown `quantize`, int8 without representative data,
            `int8_io` without int8, `float_fallback` without int8, or an
            unconvertible op.
        export.verify.ParityError: the model does not match Keras (with
            `float_fallback="auto"`: not even with every layer in float).

    Example:

    >>> import os
    >>> import tempfile
    >>> import keras
    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> path = os.path.join(tempfile.mkdtemp(), "student.tflite")
    >>> result = export_tflite(model, path)
    >>> result.sidecar["parity"]["max_relative_error"] < 1e-5
    True
    >>> check_tensor_types(path, "none")["kernels"]  # one Dense kernel, float32
    {'float32': 1}
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"`--quantize` must be one of {'|'.join(QUANTIZE_MODES)}. "
            f"Received: --quantize={quantize}"
        )
    quantization_aware = is_quantization_aware(model)
    if quantize == "qat" and not quantization_aware:
        raise TypeError(
            "`model` must be the quantization-aware tf_keras model "
            "(kdkeras.compress.quantization_aware) for quantize='qat'. "
            f"Received: model={type(model).__name__}"
        )
    if quantization_aware and quantize != "qat":
        raise ValueError(
            "`quantize` must be 'qat' for a quantization-aware tf_keras model. "
            f"Received: quantize={quantize!r}"
        )
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "`--representative-data` must be given with --quantize=int8 (a "
            ".npy/.npz of inputs, or fashion-mnist:N) to calibrate activation "
            "ranges. Received: --representative-data=None"
        )
    if int8_io and quantize != "int8":
        raise ValueError(
            "`--int8-io` must come with --quantize=int8. "
            f"Received: --quantize={quantize}"
        )
    fallback.check_float_fallback(float_fallback, quantize, int8_io)
    if quantization_aware:  # A tf_keras model: used as it is.
        pipeline.check_destination(output_path, overwrite)
        loading.check_built(model)
        loading.check_logits_output(model)
        source = None
    else:
        model, source = pipeline.resolve_for_export(
            model, output_path, overwrite, unsafe
        )
    spec = loading.input_spec(model)

    representative = None
    if representative_data is not None:
        representative = inputs.load_representative(representative_data, spec)
    if isinstance(representative_data, (str, os.PathLike)):
        representative_source = os.fspath(representative_data)
    else:
        representative_source = "array" if representative is not None else None
    if (
        quantize not in ("none", "qat")
        and representative is None
        and labelled_data is None
        and not inputs.takes_fashion_mnist(spec)
    ):
        raise ValueError(
            f"`--representative-data` or `--labelled-data` must be given with "
            f"--quantize={quantize} for a model with input {spec.describe()}: "
            "held-out inputs are needed to check the quantised model. "
            "Received: neither"
        )

    def write(path):
        flatbuffer = convert(model, quantize, representative, int8_io, spec)
        with open(path, "wb") as handle:
            handle.write(flatbuffer)
        types = check_tensor_types(path, quantize, int8_io)
        runtime = runtimes.TFLiteRuntime(path)
        return {
            "input_dtype": runtime.input_dtype,
            "output_dtype": runtime.output_dtype,
            "tensor_types": types,
        }

    options = {
        "quantize": quantize,
        "int8_io": bool(int8_io),
        "representative_data": representative_source,
        "calibration_samples": (
            min(spec.count(representative), MAX_CALIBRATION_SAMPLES)
            if quantize == "int8"
            else None
        ),
        "delegate": "XNNPACK (LiteRT default)",
    }
    if float_fallback == "auto":
        options["float_fallback"] = {"mode": "auto", "float_layers": []}
    # Full int8 first; the float fallback, when asked for, is verified the
    # same way: the same options, destination, labelled data and thresholds.
    attempt = {
        "options": options,
        "overwrite": overwrite,
        "labelled_data": labelled_data,
        "seed": seed,
        "min_agreement": min_agreement,
        "source": source,
    }
    try:
        return pipeline.export_artifact(
            model,
            output_path,
            "tflite",
            write,
            quantize=quantize,
            calibration_inputs=representative,
            spec=spec,
            **attempt,
        )
    except verify.ParityError:
        if float_fallback != "auto":
            raise
    return fallback.export_with_fallback(
        model,
        output_path,
        spec.take(representative, 0, MAX_CALIBRATION_SAMPLES),
        calibration_inputs_for_check=representative,
        **attempt,
    )


def main(argv=None):
    """`python -m export.to_tflite MODEL --output FILE [--quantize ...]`."""
    from absl import flags

    from export import cli

    cli.define_common_flags("Output .tflite file (required).")
    flags.DEFINE_string("quantize", "none", f"One of {'|'.join(QUANTIZE_MODES)}.")
    flags.DEFINE_string(
        "representative-data",
        None,
        "Calibration inputs for int8: a .npy, a .npz (array x; for several "
        "inputs x_<input name> arrays), or fashion-mnist:N for the first N "
        "Fashion-MNIST training images.",
    )
    flags.DEFINE_boolean(
        "int8-io", False, "With --quantize=int8: int8 input and output tensors."
    )
    flags.DEFINE_string(
        "float-fallback",
        "none",
        "With --quantize=int8: none|auto. auto: when full int8 fails its "
        "checks, keep the fewest layers in float (worst quantisation error "
        "first) that make it pass; the layers and their size and latency cost "
        "are printed and recorded in the sidecar.",
    )
    flags.DEFINE_float(
        "min-agreement",
        None,
        "Top-1 agreement with Keras required of quantised models (default "
        f"per mode: {verify.MIN_TOP1_AGREEMENT}).",
    )

    cli.run(
        "export.to_tflite",
        export_tflite,
        argv,
        output_required="the .tflite file to write",
        tool_arguments=lambda: {
            "quantize": cli.flag_value("quantize"),
            "representative_data": cli.flag_value("representative-data"),
            "int8_io": cli.flag_value("int8-io"),
            "min_agreement": cli.flag_value("min-agreement"),
            "float_fallback": cli.flag_value("float-fallback"),
        },
    )


if __name__ == "__main__":
    main()
