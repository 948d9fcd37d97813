"""export.to_tflite: float and quantised TFLite, checked under LiteRT."""

import os

import numpy as np
import pytest

from export import inputs
from export import runtimes
from export import sidecar
from export import to_tflite
from export import verify
from tests.export import trained_cnn

# (quantize, int8_io): every mode the exporter offers.
MODES = [
    ("none", False),
    ("float16", False),
    ("dynamic", False),
    ("int8", False),
    ("int8", True),
]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """One conversion per mode, shared by the tests that take it.

    Five conversions of a trained CNN, each verified: the longest set-up of
    the module, so the tests that take it are in CI's end-to-end stage.
    """
    model, keras_path, _ = trained_cnn.trained_cnn()
    folder = tmp_path_factory.mktemp("tflite")
    representative = folder / "representative.npy"
    from models.data import load_fashion_mnist

    (x_train, _), _ = load_fashion_mnist(limit_train=200, limit_test=1)
    np.save(representative, x_train)
    results = {}
    for quantize, int8_io in MODES:
        name = f"student_{quantize}{'_io' if int8_io else ''}.tflite"
        results[quantize, int8_io] = to_tflite.export_tflite(
            keras_path if quantize == "none" else model,
            folder / name,
            quantize=quantize,
            # int8 calibrates on a .npy file, int8_io on the dataset slice.
            representative_data=(
                None
                if quantize != "int8"
                else "fashion-mnist:200"
                if int8_io
                else representative
            ),
            int8_io=int8_io,
        )
    return model, results


@pytest.mark.e2e
def test_float_tflite_matches_keras_on_fresh_inputs(exports):
    model, results = exports
    run = runtimes.TFLiteRuntime(results["none", False].path).predict
    for batch_size in (1, 29):
        x = trained_cnn.fresh_inputs(seed=200 + batch_size, batch_size=batch_size)
        assert verify.relative_error(run(x), model(x, training=False).numpy()) < 1e-5


@pytest.mark.e2e
def test_input_has_dynamic_batch_dimension(exports):
    from ai_edge_litert.interpreter import Interpreter

    _, results = exports
    interpreter = Interpreter(model_path=results["none", False].path)
    (detail,) = interpreter.get_input_details()
    assert list(detail["shape_signature"]) == [-1, 28, 28, 1]


@pytest.mark.e2e
@pytest.mark.parametrize("quantize,int8_io", MODES[1:])
def test_quantised_top1_agrees_with_keras_on_real_images(exports, quantize, int8_io):
    model, results = exports
    _, _, (x_test, y_test) = trained_cnn.trained_cnn()
    run = runtimes.TFLiteRuntime(results[quantize, int8_io].path).predict
    exported, reference = run(x_test), model(x_test, training=False).numpy()
    threshold = verify.MIN_TOP1_AGREEMENT[quantize]
    assert verify.top1_agreement(exported, reference) >= threshold
    assert (
        verify.accuracy(exported, y_test) >= verify.accuracy(reference, y_test) - 0.01
    )
    recorded = results[quantize, int8_io].sidecar["parity"]
    assert recorded["top1_agreement"] >= threshold
    assert recorded["min_top1_agreement"] == threshold
    assert recorded["real_inputs_count"] == inputs.DEFAULT_REAL_INPUTS


@pytest.mark.e2e
def test_quantised_models_are_smaller(exports):
    _, results = exports
    size = {mode: os.path.getsize(result.path) for mode, result in results.items()}
    float_size = size["none", False]
    assert size["float16", False] < 0.6 * float_size
    assert size["dynamic", False] < 0.4 * float_size
    assert size["int8", False] < 0.4 * float_size


@pytest.mark.e2e
@pytest.mark.parametrize("int8_io,dtype", [(False, "float32"), (True, "int8")])
def test_int8_io_controls_tensor_types(exports, int8_io, dtype):
    _, results = exports
    runtime = runtimes.TFLiteRuntime(results["int8", int8_io].path)
    assert (runtime.input_dtype, runtime.output_dtype) == (dtype, dtype)
    assert results["int8", int8_io].sidecar["options"]["input_dtype"] == dtype


@pytest.mark.e2e
@pytest.mark.parametrize("quantize,int8_io", MODES)
def test_sidecar_beside_artifact(exports, quantize, int8_io):
    _, results = exports
    result = results[quantize, int8_io]
    content = sidecar.read_sidecar(result.path)
    assert content["size_bytes"] == os.path.getsize(result.path)
    assert content["options"]["quantize"] == quantize
    assert content["versions"]["litert"]
    if quantize == "none":
        assert content["parity"]["max_relative_error"] < 1e-5
    if quantize == "int8":
        assert content["options"]["calibration_samples"] == 200
        source = content["options"]["representative_data"]
        expected = "fashion-mnist:200" if int8_io else "representative.npy"
        assert os.path.basename(source) == expected


def test_badly_calibrated_int8_is_refused_and_not_written(tmp_path):
    """Calibrating on images dimmed to 20% clips real activations: refused."""
    model, _, (x_test, _) = trained_cnn.trained_cnn()
    with pytest.raises(verify.ParityError, match="top-1 agreement 0\\.[0-8]"):
        to_tflite.export_tflite(
            model,
            tmp_path / "bad.tflite",
            quantize="int8",
            representative_data=x_test[:100] * 0.2,
        )
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"quantize": "int4"}, "`--quantize` must be one of"),
        (
            {"quantize": "int8"},
            "`--representative-data` must be given with --quantize=int8",
        ),
        ({"quantize": "dynamic", "int8_io": True}, "`--int8-io` must come with"),
        (
            {"quantize": "int8", "representative_data": np.zeros((4, 28, 28))},
            "does not match the model input",
        ),
    ],
)
def test_bad_arguments_rejected_without_output(tmp_path, kwargs, message):
    model, _, _ = trained_cnn.trained_cnn()
    with pytest.raises(ValueError, match=message):
        to_tflite.export_tflite(model, tmp_path / "x.tflite", **kwargs)
    assert os.listdir(tmp_path) == []
