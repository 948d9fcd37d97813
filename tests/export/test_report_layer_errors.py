"""Tests for export.report.layer_errors and the selective int8 variant of the report."""

import numpy as np
import pytest

from export import runtimes
from export.report import budgets
from export.report import layer_errors
from export.report import variants
from tests.export import outlier_model
from tests.export.tiny_mlp import tiny_mlp


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    model = tiny_mlp(3, hidden=(24, 16))
    x = rng.random((150, 6, 6, 1), dtype=np.float32)
    y = np.asarray(model(x, training=False)).argmax(1)
    return model, rng.random((80, 6, 6, 1), dtype=np.float32), (x, y)


def test_layer_errors_name_every_quantised_layer_worst_first(data):
    model, calibration, _ = data
    rows = layer_errors.layer_quantization_errors(model, calibration)
    assert (
        sum(row["op"] == "FULLY_CONNECTED" for row in rows) == 3
    )  # three Dense layers
    errors = [row["rmse_over_scale"] for row in rows]
    assert errors == sorted(errors, reverse=True)
    assert all(0 < e < 10 for e in errors)  # rounding alone is ~0.29 of a scale


def test_selective_variant_keeps_the_named_layers_in_float_and_is_verified(
    data, tmp_path
):
    model, calibration, labelled = data
    (entry,) = [
        r
        for r in layer_errors.layer_quantization_errors(model, calibration)
        if r["op"] == "FULLY_CONNECTED"
    ][:1]
    path = str(tmp_path / "selective.tflite")
    result = layer_errors.export_selective_int8(
        model, path, calibration, [entry["layer"]], labelled_data=labelled
    )
    assert result.sidecar["parity"]["quantize"] == "int8"
    assert result.sidecar["options"]["float_layers"] == [entry["layer"]]
    interpreter = runtimes.TFLiteRuntime(path).interpreter
    dtypes = {
        d["name"]: np.dtype(d["dtype"]).name for d in interpreter.get_tensor_details()
    }
    assert dtypes[entry["layer"]] == "float32"  # kept in float
    assert "int8" in dtypes.values()  # the rest is quantised


def _rejected_int8():
    """The report's entry of a full-int8 export that failed its parity check."""
    return {
        "model": "student",
        "role": "student",
        "variant": "tflite_int8",
        "rejected": True,
        "error": "ParityError: x",
        "lineage": variants.lineage("student", "tflite", "int8", "s.keras", None, None),
    }


def _calibration_record(inputs):
    """The report's record of `inputs` as the calibration set."""
    return {"inputs": inputs, "source": "array", "samples": len(inputs), "digest": "d"}


def test_selective_entry_keeps_the_fewest_layers_that_pass(tmp_path):
    model = outlier_model.outlier_model()
    calibration = outlier_model.inputs(seed=1, count=200)
    int8 = _rejected_int8()
    calibration_record = _calibration_record(calibration)
    entry = variants.selective_entry(
        int8, model, str(tmp_path), calibration_record, None
    )
    assert entry["error"] is None, entry["error"]
    assert entry["variant"] == "tflite_int8_selective" and entry["quantize"] == "int8"
    assert int8["layer_errors"]  # the per-layer table of the report
    record = entry["float_fallback"]
    assert 1 <= len(record["float_layers"]) < record["quantised_layers"]
    assert entry["lineage"]["settings"]["float_layers"] == record["float_layers"]
    assert entry["export"]["parity"]["top1_agreement"] >= 0.97
    assert not record["full_int8"]["passed"]


def test_selective_entry_honours_the_budget(tmp_path):
    """A budget no int8 variant can meet (labels Keras always misses): refused."""
    model = outlier_model.outlier_model()
    x = outlier_model.inputs(seed=3, count=120)
    y = (np.asarray(model(x, training=False)).argmax(1) + 1) % outlier_model.CLASSES
    int8 = _rejected_int8()
    calibration_record = _calibration_record(outlier_model.inputs(seed=1, count=200))
    entry = variants.selective_entry(
        int8,
        model,
        str(tmp_path),
        calibration_record,
        (x, y),
        budget=budgets.parse_budget({"min_accuracy": 0.5}),
    )
    assert entry["rejected"] and "kept in float" in entry["error"]


@pytest.mark.parametrize(
    "entry, limits, misses",
    [
        ({"rejected": True, "error": "ParityError"}, None, True),
        (
            {"export": {"parity": {"accuracy": {"keras": 0.9, "exported": 0.8}}}},
            {"min_accuracy": 0.85},
            True,
        ),
        (
            {"export": {"parity": {"accuracy": {"keras": 0.9, "exported": 0.88}}}},
            {"min_accuracy": 0.85},
            False,
        ),
        (
            {"export": {"parity": {"accuracy": {"keras": 0.9, "exported": 0.88}}}},
            {"max_accuracy_drop": 0.01},
            True,
        ),
        (
            {
                "export": {
                    "parity": {"accuracy": {"keras": 0.9, "exported": float("nan")}}
                }
            },
            {"min_accuracy": 0.5},
            True,
        ),
        (
            {"export": {"parity": {"accuracy": {"keras": 0.9, "exported": 0.8}}}},
            None,
            False,
        ),
    ],
)
def test_int8_misses(entry, limits, misses):
    budget = None if limits is None else budgets.parse_budget(limits)
    assert variants.int8_misses(dict({"error": None}, **entry), budget) is misses
