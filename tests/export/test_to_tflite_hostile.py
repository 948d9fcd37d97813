"""export.to_tflite on hostile inputs: nothing lies, nothing crashes, nothing is left.

A tiny dense classifier (32 inputs, a 2048-element kernel so dynamic-range
quantisation applies) is exported in every mode; representative data with
NaN, inf, the wrong shape or dtype, too few or constant rows is refused before
conversion; a file whose tensor types do not match the mode claimed is
refused; a converter that crashes becomes a one-line error with no scratch
SavedModel left in the temp folder.
"""

import os
import tempfile

import numpy as np
import pytest

from export import inputs
from export import pipeline
from export import sidecar
from export import to_onnx
from export import to_tflite
from export import verify
from tests.export import crashing

FEATURES = 32


def tiny_classifier(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(5),
        ]
    )
    for layer in model.layers:
        layer.bias.assign(np.random.default_rng(seed).normal(0, 0.3, layer.bias.shape))
    return model


def calibration(count=200, seed=1):
    return np.random.default_rng(seed).random((count, FEATURES)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return tiny_classifier()


@pytest.fixture
def scratch_tmpdir(tmp_path, monkeypatch):
    """The process' temp folder pointed at an empty folder of the test."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def hostile(name):
    x = calibration()
    if name == "nan":
        return np.full((50, FEATURES), np.nan, np.float32)
    if name == "one inf":
        x[3, 2] = np.inf
        return x
    if name == "-inf":
        x[:, 0] = -np.inf
        return x
    if name == "overflows float32":
        return x.astype(np.float64) * 1e300
    if name == "complex":
        return x.astype(np.complex64)
    if name == "strings":
        return np.array([["a"] * FEATURES] * 50)
    if name == "wrong shape":
        return x[:, :16]
    if name == "too few":
        return x[: inputs.MIN_REPRESENTATIVE_EXAMPLES - 1]
    if name == "all zero":
        return np.zeros_like(x)
    raise AssertionError(name)


HOSTILE = {
    "nan": "must be finite",
    "one inf": "must be finite.*1 inf",
    "-inf": "must be finite",
    "overflows float32": "must fit in float32",
    "complex": "must hold real numbers",
    "strings": "must hold real numbers",
    "wrong shape": r"must have shape \(N,\) \+ \(32,\)",
    "too few": f"at least {inputs.MIN_REPRESENTATIVE_EXAMPLES} examples",
    "all zero": "must vary",
}


@pytest.mark.parametrize("quantize", ["int8", "dynamic", "float16"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_representative_data_refused_before_conversion(
    model, tmp_path, scratch_tmpdir, name, quantize
):
    data = tmp_path / "data" / f"{name.replace(' ', '_')}.npy"
    data.parent.mkdir()
    np.save(data, hostile(name))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match=HOSTILE[name]) as info:
        to_tflite.export_tflite(
            model, out / "q.tflite", quantize=quantize, representative_data=data
        )
    message = str(info.value)
    assert message.startswith("`--representative-data` must")
    assert f"Received: --representative-data={data}" in message
    assert "\n" not in message
    assert os.listdir(out) == [] and os.listdir(scratch_tmpdir) == []


@pytest.fixture(scope="module")
def exports(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tflite_modes")
    np.save(folder / "calibration.npy", calibration())
    results = {}
    for quantize in ("none", "float16", "dynamic", "int8"):
        results[quantize] = to_tflite.export_tflite(
            model,
            folder / f"m_{quantize}.tflite",
            quantize=quantize,
            representative_data=folder / "calibration.npy",
        )
    return results


EXPECTED_TYPES = {
    # mode: (kernel dtypes, activation dtypes) of the two Dense layers
    "none": ({"float32": 2}, {"float32": 2}),
    "float16": ({"float16": 2}, {"float32": 2}),
    # TFLite keeps the 320-element kernel in float32 in dynamic mode.
    "dynamic": ({"int8": 1, "float32": 1}, {"float32": 2}),
    "int8": ({"int8": 2}, {"int8": 2}),
}


@pytest.mark.parametrize("quantize", sorted(EXPECTED_TYPES))
def test_file_tensor_types_match_the_mode_recorded(exports, quantize):
    path = exports[quantize].path
    kernels, activations = EXPECTED_TYPES[quantize]
    read_back = to_tflite.check_tensor_types(path, quantize)
    assert read_back == {"kernels": kernels, "activations": activations}
    recorded = sidecar.read_sidecar(path)
    assert recorded["options"]["quantize"] == quantize
    assert recorded["options"]["tensor_types"] == read_back


@pytest.mark.parametrize("quantize", sorted(EXPECTED_TYPES))
def test_every_recorded_error_is_finite_and_within_its_tolerance(exports, quantize):
    parity = sidecar.read_sidecar(exports[quantize].path)["parity"]
    tolerance = parity["relative_tolerance"]
    assert tolerance == (
        verify.RELATIVE_TOLERANCE
        if quantize == "none"
        else verify.MAX_QUANTIZED_RELATIVE_ERROR[quantize]
    )
    for key in ("max_relative_error", "real_max_relative_error"):
        if key in parity:
            assert np.isfinite(parity[key]) and parity[key] < tolerance, key
    assert np.isfinite(parity["max_abs_error"])


@pytest.mark.parametrize("quantize", ["float16", "dynamic", "int8"])
def test_agreement_runs_on_held_out_inputs_not_the_calibration_batch(exports, quantize):
    parity = exports[quantize].sidecar["parity"]
    assert (
        "held-out random inputs scaled like the representative data"
        in parity["real_inputs"]
    )
    assert parity["real_inputs_count"] == inputs.DEFAULT_REAL_INPUTS
    held_out = inputs.scaled_like(calibration(), inputs.DEFAULT_REAL_INPUTS, seed=0)
    rows = {row.tobytes() for row in calibration()}
    assert not any(row.tobytes() in rows for row in held_out)


@pytest.mark.parametrize(
    "written,claimed",
    [
        ("none", "int8"),
        ("none", "float16"),
        ("none", "dynamic"),
        ("float16", "int8"),
        ("int8", "none"),
        ("dynamic", "int8"),
    ],
)
def test_a_file_not_of_the_claimed_mode_is_refused(exports, written, claimed):
    with pytest.raises(
        pipeline.ConversionError, match=f"quantize={claimed} tensor types"
    ):
        to_tflite.check_tensor_types(exports[written].path, claimed)


def test_int8_io_claim_checked_against_the_file(exports):
    with pytest.raises(pipeline.ConversionError, match="model input float32"):
        to_tflite.check_tensor_types(exports["int8"].path, "int8", int8_io=True)


def test_float_file_labelled_int8_is_never_written(
    model, exports, tmp_path, monkeypatch
):
    """A converter that silently leaves everything float32 (the NaN-calibration bug)."""
    with open(exports["none"].path, "rb") as handle:
        float_bytes = handle.read()
    monkeypatch.setattr(to_tflite, "convert", lambda *args, **kwargs: float_bytes)
    with pytest.raises(
        pipeline.ConversionError, match="int8 kernels.*nothing was written"
    ):
        to_tflite.export_tflite(
            model,
            tmp_path / "q.tflite",
            quantize="int8",
            representative_data=calibration(),
        )
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_converter_crash_is_one_line_and_leaves_no_scratch(
    model, tmp_path, scratch_tmpdir, monkeypatch, fmt
):
    out = tmp_path / "out"
    out.mkdir()
    if fmt == "tflite":
        monkeypatch.setattr(to_tflite, "convert_saved_model", crashing.segfault)
        export = lambda: to_tflite.export_tflite(  # noqa: E731
            model, out / "q.tflite", quantize="int8", representative_data=calibration()
        )
        what = "the TFLite converter"
    else:
        monkeypatch.setattr(to_onnx, "convert_saved_model", crashing.segfault)
        export = lambda: to_onnx.export_onnx(model, out / "m.onnx")  # noqa: E731
        what = "tf2onnx"
    with pytest.raises(pipeline.ConversionError, match=r"crashed \(SIGSEGV\)") as info:
        export()
    assert str(info.value).startswith(what)
    assert os.listdir(out) == []
    assert os.listdir(scratch_tmpdir) == []


def _with_non_finite_weight(where):
    """The tiny classifier with one non-finite weight (`where`)."""
    model = tiny_classifier()
    variable, value = {
        # NaN on the first kernel's diagonal: whether it reaches the outputs
        # through ReLU depends on the CPU's kernels; the weights do not.
        "first kernel NaN": (model.layers[0].kernel, np.nan),
        "last bias inf": (model.layers[1].bias, np.inf),
    }[where]
    array = variable.numpy()
    array.flat[0] = value
    variable.assign(array)
    return model


@pytest.mark.parametrize("where", ["first kernel NaN", "last bias inf"])
@pytest.mark.parametrize("exporter", ["savedmodel", "tflite", "onnx"])
def test_model_with_nan_weights_is_refused_not_verified(tmp_path, where, exporter):
    from export import to_savedmodel
    from export.weights import NonFiniteWeightsError

    export_fn = {
        "savedmodel": to_savedmodel.export_savedmodel,
        "tflite": to_tflite.export_tflite,
        "onnx": to_onnx.export_onnx,
    }[exporter]
    broken = _with_non_finite_weight(where)
    with pytest.raises(NonFiniteWeightsError, match="must have finite weights") as info:
        export_fn(broken, tmp_path / "out")
    layer = 0 if where.startswith("first") else 1
    assert broken.layers[layer].name in str(info.value)
    assert ("nan" if "NaN" in where else "inf") in str(info.value)
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_model_file_with_nan_weights_is_refused_when_loaded(tmp_path):
    from export import loading
    from export.weights import NonFiniteWeightsError

    path = str(tmp_path / "broken.keras")
    _with_non_finite_weight("first kernel NaN").save(path)
    with pytest.raises(NonFiniteWeightsError, match="broken.keras"):
        loading.load_model(path)
