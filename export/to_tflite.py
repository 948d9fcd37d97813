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

Quantised models are checked by top-1 agreement with Keras on real inputs
(thresholds in `export.verify.MIN_TOP1_AGREEMENT`). All checks run under the
LiteRT `Interpreter` from `ai_edge_litert`, whose default CPU delegate is
XNNPACK.

Command line:

    python -m export.to_tflite student.keras --output student.tflite \\
        --quantize int8 --representative-data fashion-mnist:500 --int8-io
"""

import os
import re
import tempfile

from export import loading
from export import pipeline
from export import runtimes
from export import staging
from export import to_savedmodel
from export import verify

QUANTIZE_MODES = ("none", "float16", "dynamic", "int8", "qat")
MAX_CALIBRATION_SAMPLES = 1000


def convert(
    model,
    quantize="none",
    representative_inputs=None,
    int8_io=False,
):
    """Converts `model` to TFLite flatbuffer bytes (no checks, no staging).

    Args:
        model: A single-input, single-output `keras.Model`.
        quantize: One of `QUANTIZE_MODES`.
        representative_inputs: float32 array of inputs, required for `int8`.
        int8_io: int8 input and output tensors (only with `int8`).

    Returns:
        The `.tflite` bytes.

    Raises:
        export.pipeline.ConversionError: the converter cannot handle an op of the model.
    """
    import tensorflow as tf

    if quantize == "qat":
        return convert_quantization_aware(model)
    with tempfile.TemporaryDirectory(prefix="kdkeras-tflite-") as scratch:
        saved_model_dir = os.path.join(scratch, "saved_model")
        to_savedmodel.write_savedmodel(model, saved_model_dir)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_model_dir, signature_keys=["serving_default"]
        )
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            samples = representative_inputs[:MAX_CALIBRATION_SAMPLES]

            def representative_dataset():
                for i in range(len(samples)):
                    yield [samples[i : i + 1]]

            converter.representative_dataset = representative_dataset
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8
            ]
            if int8_io:
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        try:
            return converter.convert()
        except Exception as error:
            raise pipeline.ConversionError(describe_converter_error(error)) from None


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
    first = next((l.strip() for l in text.splitlines() if l.strip()), "")
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
):
    """Exports `model` as a verified `.tflite` file.

    Args:
        model: A `keras.Model`, or a path to a `.keras` file / SavedModel; for
            `quantize="qat"`, the quantization-aware `tf_keras` model.
        output_path: Destination `.tflite` path.
        quantize: One of `QUANTIZE_MODES`.
        representative_data: Inputs for int8 calibration (required for
            `int8`): an array, a `.npy`/`.npz` path, or `"fashion-mnist:N"`
            (first N training images). For other modes, optional real inputs
            for the agreement check.
        int8_io: With `int8`, make the input and output tensors int8.
        overwrite: Replace an existing `output_path`.
        labelled_data: Optional `.npz` (`x`, `y`) or `(x, y)` for accuracy;
            its `x` is also used for the top-1 agreement of quantised modes.
        seed: Seed of the random parity inputs.
        min_agreement: Override the top-1 agreement threshold.
        unsafe: Allow Lambda layers when loading a `.keras` path.

    Returns:
        An `export.pipeline.ExportResult`; sidecar `<output_path>.json`.

    Raises:
        ValueError: unknown `quantize`, int8 without representative data,
            `int8_io` without int8, or an unconvertible op.
        export.verify.ParityError: the model does not match Keras.

    Example:

    >>> result = export_tflite(model, "student.tflite", quantize="int8",
    ...                        representative_data="fashion-mnist:500")
    >>> result.sidecar["parity"]["top1_agreement"] >= 0.97
    True
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
    if quantization_aware:  # A tf_keras model: used as it is.
        staging.check_output_path(output_path, overwrite)
        loading.check_single_input_output(model)
        source = None
    else:
        model, source = pipeline.resolve_for_export(
            model, output_path, overwrite, unsafe
        )
    input_shape, _ = loading.input_signature(model)

    representative = None
    if representative_data is not None:
        representative = verify.load_inputs(representative_data, input_shape)
    if isinstance(representative_data, (str, os.PathLike)):
        representative_source = os.fspath(representative_data)
    else:
        representative_source = "array" if representative is not None else None

    def write(path):
        flatbuffer = convert(model, quantize, representative, int8_io)
        with open(path, "wb") as handle:
            handle.write(flatbuffer)
        runtime = runtimes.TFLiteRuntime(path)
        return {
            "input_dtype": runtime.input_dtype,
            "output_dtype": runtime.output_dtype,
        }

    # Real inputs for agreement: labelled x, else the Fashion-MNIST test slice
    # (28x28x1 models), else the representative data (verify decides).
    real_inputs = real_source = None
    if (
        quantize != "none"
        and labelled_data is None
        and not verify.takes_fashion_mnist(input_shape)
        and representative is not None
    ):
        real_inputs, real_source = representative, (
            f"representative data {representative_source}"
        )
    return pipeline.export_artifact(
        model,
        output_path,
        "tflite",
        write,
        quantize=quantize,
        options={
            "quantize": quantize,
            "int8_io": bool(int8_io),
            "representative_data": representative_source,
            "calibration_samples": (
                min(len(representative), MAX_CALIBRATION_SAMPLES)
                if quantize == "int8"
                else None
            ),
            "delegate": "XNNPACK (LiteRT default)",
        },
        overwrite=overwrite,
        labelled_data=labelled_data,
        real_inputs=real_inputs,
        real_inputs_source=real_source,
        seed=seed,
        min_agreement=min_agreement,
        source=source,
    )


def main(argv=None):
    """`python -m export.to_tflite MODEL --output FILE [--quantize ...]`."""
    from absl import flags

    from export import cli

    cli.define_common_flags("Output .tflite file (required).")
    flags.DEFINE_string(
        "quantize", "none", f"One of {'|'.join(QUANTIZE_MODES)}."
    )
    flags.DEFINE_string(
        "representative-data",
        None,
        "Calibration inputs for int8: a .npy, a .npz (array x), or "
        "fashion-mnist:N for the first N Fashion-MNIST training images.",
    )
    flags.DEFINE_boolean(
        "int8-io", False, "With --quantize=int8: int8 input and output tensors."
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
        },
    )


if __name__ == "__main__":
    main()
