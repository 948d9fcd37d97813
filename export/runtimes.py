"""Run an exported artifact (or the Keras model) as a function `x -> outputs`.

One runner per format, all taking a float32 NumPy batch and returning float32
NumPy outputs, so `export.verify` can compare them with Keras:

    savedmodel  `tf.saved_model.load(path).signatures["serving_default"]`
    tflite      LiteRT `Interpreter` (`ai_edge_litert`; XNNPACK is its default
                CPU delegate), batch resized per call; int8/uint8 input and
                output tensors are (de)quantised with the model's scale and
                zero point
    onnx        ONNX Runtime, full graph optimisation, CUDA provider first
                when onnxruntime-gpu is installed, else CPU
"""

import os

import numpy as np


def keras_runner(model, batch_size=256):
    """`x -> logits` with `model(x, training=False)`, in float32 NumPy."""

    def run(x):
        outputs = [
            np.asarray(model(x[i : i + batch_size], training=False))
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(outputs).astype(np.float32)

    return run


def savedmodel_runner(path, signature="serving_default"):
    """`x -> outputs` of a SavedModel's single-input, single-output signature."""
    import tensorflow as tf

    function = tf.saved_model.load(path).signatures[signature]
    _, specs = function.structured_input_signature
    (input_name,) = specs

    def run(x):
        outputs = function(**{input_name: tf.constant(x)})
        (value,) = outputs.values()
        return value.numpy()

    run.input_name = input_name
    run.output_name = next(iter(function.structured_outputs))
    return run


def tflite_runner(path, num_threads=None):
    """`x -> float outputs` under the LiteRT interpreter (XNNPACK by default).

    Quantised int8/uint8 inputs and outputs are (de)quantised with the scale
    and zero point stored in the model.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=num_threads)
    (input_detail,) = interpreter.get_input_details()
    (output_detail,) = interpreter.get_output_details()

    def run(x):
        interpreter.resize_tensor_input(input_detail["index"], list(x.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(
            input_detail["index"], _quantize(x, input_detail)
        )
        interpreter.invoke()
        output = interpreter.get_tensor(output_detail["index"])
        return _dequantize(output, output_detail)

    run.input_dtype = np.dtype(input_detail["dtype"]).name
    run.output_dtype = np.dtype(output_detail["dtype"]).name
    return run


def _quantize(x, detail):
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(
        dtype
    )


def _dequantize(y, detail):
    if not np.issubdtype(y.dtype, np.integer):
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


def onnx_providers():
    """ONNX Runtime providers to use: CUDA first when available, then CPU."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    preferred = ("CUDAExecutionProvider", "CPUExecutionProvider")
    return [name for name in preferred if name in available] or available


def onnx_runner(path, providers=None):
    """`x -> outputs` under ONNX Runtime with full graph optimisation."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = (
        onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        path, sess_options=options, providers=providers or onnx_providers()
    )
    input_name = session.get_inputs()[0].name

    def run(x):
        return session.run(None, {input_name: x})[0]

    run.providers = session.get_providers()
    return run


RUNNERS = {
    "savedmodel": savedmodel_runner,
    "tflite": tflite_runner,
    "onnx": onnx_runner,
}


def artifact_runner(path, fmt):
    """The `x -> outputs` runner for an artifact of format `fmt`."""
    if fmt not in RUNNERS:
        raise ValueError(f"format must be one of {sorted(RUNNERS)}, got {fmt!r}")
    return RUNNERS[fmt](os.fspath(path))
