"""Export a Keras model to int8 ONNX: tf2onnx, then ONNX Runtime's static quantisation.

The model is converted to float ONNX exactly as `export.to_onnx` does
(`export.to_onnx.convert`), then quantised with
`onnxruntime.quantization.quantize_static`: weights and activations in 8 bits,
activation ranges calibrated (min/max) on representative inputs, in the QDQ
format that ONNX Runtime's CPU kernels fuse. Settings (`SETTINGS`): activations
uint8, weights int8, per-tensor, `reduce_range=True` (7-bit weights, which
avoids saturation on x86 CPUs without VNNI; ONNX Runtime's advice for
portable CPU models).

The result goes through the same path as every exporter
(`export.pipeline.export_artifact`): written beside the destination, checked
against Keras by top-1 agreement on real inputs (`export.verify`, threshold
`MIN_TOP1_AGREEMENT["int8"]`), its sidecar staged, then both moved into place.
The sidecar records the calibration data's digest (`calibration_digest`).

Example:

```python
from export.quantize_onnx import export_onnx_int8

result = export_onnx_int8("student.keras", "student_int8.onnx",
                          representative_data="fashion-mnist:500")
result.sidecar["parity"]["top1_agreement"]
```
"""

import hashlib
import logging
import os
import tempfile

import numpy as np

from export import inputs
from export import pipeline
from export import runtimes
from export import to_onnx
from export import to_savedmodel
from export import verify

MAX_CALIBRATION_SAMPLES = 1000
CALIBRATION_BATCH_SIZE = 50
SETTINGS = {
    "quant_format": "QDQ",
    "activation_type": "QUInt8",
    "weight_type": "QInt8",
    "per_channel": False,
    "reduce_range": True,
    "calibrate_method": "MinMax",
}


def calibration_digest(inputs):
    """SHA-256 (first 16 hex digits) of float32 calibration inputs and their shape.

    Several inputs (a dict by name) are digested one after the other, by name.
    """
    arrays = inputs if isinstance(inputs, dict) else {None: inputs}
    digest = hashlib.sha256()
    for name in sorted(arrays, key=str):
        array = np.ascontiguousarray(arrays[name], dtype=np.float32)
        prefix = "" if name is None else f"{name}:"
        digest.update(f"{prefix}{array.shape!r}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


class ArrayCalibrationReader:
    """`onnxruntime.quantization.CalibrationDataReader` over arrays, in batches.

    `inputs` is an array fed to `input_name`, or a dict of arrays by graph
    input name (several inputs, integer ones kept in their dtype).
    """

    def __init__(self, input_name, inputs, batch_size=CALIBRATION_BATCH_SIZE):
        self.input_name = input_name
        arrays = inputs if isinstance(inputs, dict) else {input_name: inputs}
        count = len(next(iter(arrays.values())))
        self.batches = [
            {
                name: np.ascontiguousarray(
                    array[i : i + batch_size],
                    dtype=array.dtype
                    if np.issubdtype(array.dtype, np.integer)
                    else np.float32,
                )
                for name, array in arrays.items()
            }
            for i in range(0, count, batch_size)
        ]
        self.position = 0

    def get_next(self):
        if self.position >= len(self.batches):
            return None
        batch = self.batches[self.position]
        self.position += 1
        return batch

    def rewind(self):
        self.position = 0


def quantize_model_file(float_path, output_path, inputs):
    """Quantises the float ONNX file at `float_path` into `output_path`."""
    from onnxruntime import quantization

    reader = ArrayCalibrationReader(to_savedmodel.INPUT_NAME, inputs)
    # quantize_static logs advice ("consider pre-processing") on the root logger.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_calibrated(quantization, float_path, output_path, reader)
    finally:
        root.setLevel(level)


def quantize_calibrated(quantization, float_path, output_path, reader):
    """`quantize_static` with `SETTINGS`."""
    quantization.quantize_static(
        float_path,
        output_path,
        reader,
        quant_format=quantization.QuantFormat.QDQ,
        activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8,
        per_channel=SETTINGS["per_channel"],
        reduce_range=SETTINGS["reduce_range"],
        calibrate_method=quantization.CalibrationMethod.MinMax,
    )


def check_quantized(path):
    """Raises `ParityError` unless the file holds 8-bit weights (the mode claimed)."""
    import onnx
    from onnx import TensorProto

    model = onnx.load(path, load_external_data=False)
    eight_bit = [
        t
        for t in model.graph.initializer
        if t.data_type in (TensorProto.INT8, TensorProto.UINT8) and np.prod(t.dims) > 1
    ]
    if not eight_bit:
        raise verify.ParityError(
            "onnx quantize=int8: the written file holds no 8-bit weight tensor"
        )
    return len(eight_bit)


def export_onnx_int8(
    model,
    output_path,
    representative_data,
    opset=None,
    overwrite=False,
    labelled_data=None,
    seed=0,
    min_agreement=None,
    unsafe=False,
):
    """Exports `model` as a verified int8 `.onnx` file (static quantisation).

    Args:
        model: A `keras.Model`, or a path to a `.keras` file / SavedModel.
        output_path: Destination `.onnx` path.
        representative_data: Calibration inputs: an array, a `.npy`/`.npz`
            path, or `"fashion-mnist:N"` (first N training images); at most
            `MAX_CALIBRATION_SAMPLES` are used.
        opset: ONNX opset of the float conversion (None: tf2onnx's).
        overwrite: Replace an existing `output_path`.
        labelled_data: Optional `.npz` (`x`, `y`) or `(x, y)` for accuracy; its
            `x` is also used for the top-1 agreement.
        seed: Seed of the random parity inputs.
        min_agreement: Override the top-1 agreement threshold.
        unsafe: Allow Lambda layers when loading a `.keras` path.

    Returns:
        An `export.pipeline.ExportResult`; sidecar `<output_path>.json`.

    Raises:
        ValueError: bad data or an op the converters cannot handle.
        export.verify.ParityError: the quantised model disagrees with Keras.
    """
    opset = to_onnx.check_opset(opset)
    if representative_data is None:
        raise ValueError(
            "`representative_data` must be given for int8 ONNX (an array, a "
            ".npy/.npz of inputs, or fashion-mnist:N). Received: None"
        )
    model, source = pipeline.resolve_for_export(model, output_path, overwrite, unsafe)
    from export import loading

    spec = loading.input_spec(model)
    representative = inputs.load_inputs(representative_data, spec)
    calibration = spec.take(representative, 0, MAX_CALIBRATION_SAMPLES)
    if isinstance(representative_data, (str, os.PathLike)):
        representative_source = os.fspath(representative_data)
    else:
        representative_source = "array"

    def write(path):
        model_proto = to_onnx.convert(model, opset, spec)
        with tempfile.TemporaryDirectory(prefix="kdkeras-onnx-int8-") as scratch:
            float_path = os.path.join(scratch, "float.onnx")
            with open(float_path, "wb") as handle:
                handle.write(model_proto.SerializeToString())
            try:
                quantize_model_file(float_path, path, calibration)
            except Exception as error:
                raise pipeline.ConversionError(
                    "onnxruntime quantize_static failed: "
                    f"{str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
                ) from None
        return {
            "opset": next(
                (
                    o.version
                    for o in model_proto.opset_import
                    if o.domain in ("", "ai.onnx")
                ),
                None,
            ),
            "eight_bit_weight_tensors": check_quantized(path),
            "providers": runtimes.onnx_providers(),
        }

    # Agreement on real inputs: labelled x (via verify), else Fashion-MNIST test
    # images for 28x28x1 models (verify's default), else the calibration data.
    real_inputs = real_source = None
    if labelled_data is None and not inputs.takes_fashion_mnist(spec):
        real_inputs = representative
        real_source = f"representative data {representative_source}"
    return pipeline.export_artifact(
        model,
        output_path,
        "onnx",
        write,
        quantize="int8",
        options={
            "quantize": "int8",
            "quantizer": "onnxruntime.quantization.quantize_static",
            **SETTINGS,
            "representative_data": representative_source,
            "calibration_samples": int(spec.count(calibration)),
            "calibration_digest": calibration_digest(calibration),
            "input_name": to_savedmodel.INPUT_NAME,
            "output_name": to_savedmodel.OUTPUT_NAME,
        },
        overwrite=overwrite,
        labelled_data=labelled_data,
        real_inputs=real_inputs,
        real_inputs_source=real_source,
        seed=seed,
        min_agreement=min_agreement,
        source=source,
        spec=spec,
    )
