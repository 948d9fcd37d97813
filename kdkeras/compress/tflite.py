"""TFLite conversion of bridged students, and a small LiteRT runner.

`tf.lite.TFLiteConverter.from_keras_model` takes the `tf_keras` side of the
bridge (plain, stripped or quantization-aware). Modes: float32, `"dynamic"`
(int8 weights, float activations), `"int8"` (full-integer post-training
quantization calibrated on representative inputs; float32 input and output)
and `"qat"` (a quantization-aware model: int8 weights and activations with
the ranges learned in training).
"""

import os
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

from kdkeras.compress import bridge

QUANTIZE_MODES = (None, "dynamic", "int8", "qat")


def _interpreter(model_content):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model_content)


def convert(model, quantize=None, representative_data=None, max_calibration=256):
    """Converts a Keras 3 or `tf_keras` model to a TFLite flatbuffer.

    Args:
        model: Keras 3 student (carried over the bridge first) or `tf_keras`
            model, including TFMOT quantization-aware models.
        quantize: One of `None` (float32), `"dynamic"`, `"int8"`, `"qat"`.
        representative_data: Inputs `(N, ...)` for `"int8"` calibration.
        max_calibration: Number of representative examples used at most.

    Returns:
        The flatbuffer as `bytes`.
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"`quantize` must be one of {QUANTIZE_MODES}. "
            f"Received: quantize={quantize!r}"
        )
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "`representative_data` (inputs, shape (N, ...)) is required for "
            "quantize='int8'. Received: representative_data=None"
        )
    if isinstance(model, keras.Model):
        model = bridge.to_tf_keras(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "int8":
        samples = np.asarray(representative_data, "float32")[:max_calibration]

        def representative_dataset():
            for sample in samples:
                yield [sample[np.newaxis]]

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        ]
    with warnings.catch_warnings():
        # Float32 input/output of a quantized model: expected, not a problem.
        warnings.filterwarnings(
            "ignore", message="Statistics for quantized inputs were expected"
        )
        return converter.convert()


def save(model_content, output_path):
    """Writes a flatbuffer atomically after checking LiteRT can load it.

    Args:
        model_content: TFLite flatbuffer bytes.
        output_path: Destination `.tflite` path.

    Returns:
        `output_path`.
    """
    _interpreter(model_content).allocate_tensors()
    directory = os.path.dirname(os.path.abspath(output_path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=directory, prefix=".partial-", suffix=".tflite"
    )
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(model_content)
        os.replace(temporary, output_path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return output_path


def post_training_int8(student, representative_data, output_path=None):
    """Full-integer post-training quantization of a Keras 3 student.

    Args:
        student: Keras 3 student.
        representative_data: Calibration inputs `(N, ...)`.
        output_path: Optional `.tflite` path to write.

    Returns:
        The int8 flatbuffer as `bytes` (float32 input and output).
    """
    model_content = convert(student, "int8", representative_data)
    if output_path is not None:
        save(model_content, output_path)
    return model_content


def predict(model_content, x, batch_size=256):
    """Runs a TFLite model with LiteRT; returns float32 outputs `(N, ...)`.

    Args:
        model_content: TFLite flatbuffer bytes.
        x: Inputs `(N, ...)`.
        batch_size: Examples per invocation.
    """
    interpreter = _interpreter(model_content)
    input_detail = interpreter.get_input_details()[0]
    x = np.asarray(x, "float32")
    outputs, current = [], None
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        if current != len(batch):
            interpreter.resize_tensor_input(
                input_detail["index"], batch.shape, strict=True
            )
            interpreter.allocate_tensors()
            current = len(batch)
        detail = interpreter.get_input_details()[0]
        if detail["dtype"] != np.float32:  # int8 input: quantize.
            scale, zero_point = detail["quantization"]
            batch = np.round(batch / scale + zero_point).astype(detail["dtype"])
        interpreter.set_tensor(detail["index"], batch)
        interpreter.invoke()
        output_detail = interpreter.get_output_details()[0]
        output = interpreter.get_tensor(output_detail["index"])
        if output_detail["dtype"] != np.float32:
            scale, zero_point = output_detail["quantization"]
            output = (output.astype("float32") - zero_point) * scale
        outputs.append(np.array(output, "float32"))
    return np.concatenate(outputs)


def weight_tensors(model_content, min_size=64):
    """The constant tensors (weights) of a flatbuffer, read back with LiteRT.

    Constants are the tensors backed by a non-empty buffer in the
    flatbuffer; their values come from the LiteRT `Interpreter.get_tensor`.

    Args:
        model_content: TFLite flatbuffer bytes.
        min_size: Smallest number of elements kept (skips shapes, scales).

    Returns:
        Dict `{tensor name: array}` of kernels and other large constants.
    """
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.interpreter import OpResolverType
    from tensorflow.lite.tools import flatbuffer_utils

    flatbuffer = flatbuffer_utils.read_model_from_bytearray(
        bytearray(model_content)
    )
    constants = {
        index
        for index, tensor in enumerate(flatbuffer.subgraphs[0].tensors)
        if flatbuffer.buffers[tensor.buffer].data is not None
        and len(flatbuffer.buffers[tensor.buffer].data) > 0
    }
    interpreter = Interpreter(
        model_content=model_content,
        experimental_op_resolver_type=(
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
    )
    interpreter.allocate_tensors()
    return {
        detail["name"]: np.array(interpreter.get_tensor(detail["index"]))
        for detail in interpreter.get_tensor_details()
        if detail["index"] in constants
        and np.prod(detail["shape"]) >= min_size
    }
