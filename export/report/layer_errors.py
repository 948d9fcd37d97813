"""Why an int8 TFLite variant lost accuracy: per-layer quantisation error, and a fix.

`layer_quantization_errors` runs LiteRT's quantisation debugger
(`tf.lite.experimental.QuantizationDebugger`) on the same calibration inputs
the int8 variant was calibrated on: every quantised op's output is compared
with its float value, and each layer gets the RMSE of that difference divided
by its quantisation scale (`rmse_over_scale`: about 0.29 for a layer whose
only error is rounding, larger when the range is poorly covered), as in the
TensorFlow guide to the debugger.

`export_selective_int8` converts again with the worst layers kept in float
(`denylisted_nodes`) and writes the result through the same verified path as
every exporter (`export.pipeline.export_artifact`, top-1 agreement with Keras
on the held-out inputs), so that it can be measured with the other variants.

Example:

```python
errors = layer_quantization_errors(model, calibration_inputs)
worst = [row["layer"] for row in errors[:2]]
export_selective_int8(model, "student_int8_selective.tflite", calibration_inputs,
                      worst, labelled_data=(x_test, y_test))
```
"""

import contextlib
import csv
import io
import math
import os
import tempfile
import warnings

import numpy as np

from export import pipeline
from export import runtimes
from export import to_savedmodel

MAX_DEBUG_SAMPLES = 200


@contextlib.contextmanager
def debugger_warnings_silenced():
    """The debugger runs `tf.lite.Interpreter`, which warns it is deprecated."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        yield


def rmse_over_scale(float_values, quantized_values, scale, zero_point):
    """RMSE between float and dequantised values, in units of the scale."""
    dequantized = (quantized_values.astype(np.int32) - zero_point) * scale
    error = np.sqrt(np.mean((float_values - dequantized) ** 2))
    return float(error / scale) if scale else math.inf


def _calibration(inputs, limit=None):
    """Calibration inputs: float32 rows, or a dict of them (integer inputs kept)."""
    if isinstance(inputs, dict):
        return {name: np.ascontiguousarray(a[:limit]) for name, a in inputs.items()}
    return np.ascontiguousarray(inputs[:limit], np.float32)


def int8_converter(model, saved_model_dir, inputs):
    """An int8 `TFLiteConverter` for `model`, calibrated on `inputs` (as to_tflite)."""
    import tensorflow as tf

    to_savedmodel.write_savedmodel(model, saved_model_dir)
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=["serving_default"]
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative_dataset():
        # Several inputs: one dict per example, by signature input name.
        if isinstance(inputs, dict):
            for i in range(len(next(iter(inputs.values())))):
                yield {name: array[i : i + 1] for name, array in inputs.items()}
            return
        for i in range(len(inputs)):
            yield [inputs[i : i + 1]]

    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter, representative_dataset


def layer_quantization_errors(model, inputs):
    """Per-layer quantisation error of `model`'s int8 conversion, worst first.

    Args:
        model: The Keras model.
        inputs: float32 calibration inputs (at most `MAX_DEBUG_SAMPLES` are used).

    Returns:
        A list of `{"layer": output tensor name, "op", "rmse_over_scale",
        "max_abs_error", "mean_squared_error", "scale"}`, sorted by
        `rmse_over_scale`, largest first.
    """
    import tensorflow as tf

    inputs = _calibration(inputs, MAX_DEBUG_SAMPLES)
    with tempfile.TemporaryDirectory(prefix="kdkeras-qdebug-") as scratch:
        converter, dataset = int8_converter(
            model, os.path.join(scratch, "saved"), inputs
        )
        options = tf.lite.experimental.QuantizationDebugOptions(
            layer_direct_compare_metrics={"rmse_over_scale": rmse_over_scale}
        )
        with debugger_warnings_silenced():
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=dataset, debug_options=options
            )
            debugger.run()
        dump = io.StringIO()
        debugger.layer_statistics_dump(dump)
    rows = []
    for record in csv.DictReader(io.StringIO(dump.getvalue())):
        rows.append(
            {
                "layer": record["tensor_name"],
                "op": record["op_name"],
                "rmse_over_scale": float(record.get("rmse_over_scale") or math.nan),
                "max_abs_error": float(record.get("max_abs_error") or math.nan),
                "mean_squared_error": float(
                    record.get("mean_squared_error") or math.nan
                ),
                "scale": float(record.get("scale") or math.nan),
            }
        )
    rows.sort(
        key=lambda r: (
            -r["rmse_over_scale"] if math.isfinite(r["rmse_over_scale"]) else math.inf
        )
    )
    return rows


def export_selective_int8(
    model, output_path, inputs, float_layers, labelled_data=None, overwrite=True
):
    """Exports int8 TFLite with `float_layers` kept in float, verified like the others.

    Args:
        model: The Keras model.
        output_path: Destination `.tflite`.
        inputs: float32 calibration inputs (the int8 variant's).
        float_layers: Tensor names (from `layer_quantization_errors`) left in float.
        labelled_data: Optional `(x, y)` held-out data: accuracy and the real inputs of
            the top-1 agreement check.
        overwrite: Replace an existing `output_path`.

    Returns:
        An `export.pipeline.ExportResult`.
    """
    import tensorflow as tf

    inputs = _calibration(inputs)

    def write(path):
        with tempfile.TemporaryDirectory(prefix="kdkeras-qdebug-") as scratch:
            converter, dataset = int8_converter(
                model, os.path.join(scratch, "saved"), inputs
            )
            options = tf.lite.experimental.QuantizationDebugOptions(
                denylisted_nodes=list(float_layers)
            )
            with debugger_warnings_silenced():
                debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=converter, debug_dataset=dataset, debug_options=options
                )
                flatbuffer = debugger.get_nondebug_quantized_model()
        with open(path, "wb") as handle:
            handle.write(flatbuffer)
        runtime = runtimes.TFLiteRuntime(path)
        return {
            "input_dtype": runtime.input_dtype,
            "output_dtype": runtime.output_dtype,
        }

    return pipeline.export_artifact(
        model,
        output_path,
        "tflite",
        write,
        quantize="int8",
        options={
            "quantize": "int8",
            "selective": True,
            "float_layers": list(float_layers),
            "calibration_samples": int(
                len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs)
            ),
            "tool": "tf.lite.experimental.QuantizationDebugger (denylisted_nodes)",
        },
        overwrite=overwrite,
        labelled_data=labelled_data,
    )
