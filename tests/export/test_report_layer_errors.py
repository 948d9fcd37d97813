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


@pytest.mark.parametrize(
    "float_values, scale",
    [
        (np.array([0.5, np.inf, 0.25], np.float32), 0.01),
        (np.array([0.5, np.nan, 0.25], np.float32), 0.01),
        (np.array([0.5, -np.inf, np.inf], np.float32), 0.01),
        (np.array([0.5, 0.5, 0.25], np.float32), 0.0),
        (np.array([0.5, 0.5, 0.25], np.float32), np.nan),
    ],
)
def test_an_error_that_is_not_finite_is_inf_without_a_warning(float_values, scale):
    import warnings

    quantized = np.array([50, 50, 25], np.int8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert layer_errors.rmse_over_scale(float_values, quantized, scale, 0) == (
            np.inf
        )
        diffs = float_values - np.float32(0.5)
        for name, metric in layer_errors.LAYER_DEBUG_METRICS.items():
            if name != "num_elements" and not np.all(np.isfinite(diffs)):
                assert metric(diffs) == np.inf


def test_finite_errors_match_a_float64_reference():
    rng = np.random.default_rng(3)
    float_values = rng.normal(size=200).astype(np.float32)
    scale, zero_point = 0.05, 3
    quantized = np.clip(np.round(float_values / scale) + zero_point, -128, 127)
    quantized = quantized.astype(np.int8)
    dequantized = (quantized.astype(np.float64) - zero_point) * scale
    expected = np.sqrt(np.mean((float_values - dequantized) ** 2)) / scale
    actual = layer_errors.rmse_over_scale(float_values, quantized, scale, zero_point)
    assert actual == pytest.approx(expected, rel=1e-12)
    assert 0.2 < actual < 0.35  # Rounding alone: about 1/sqrt(12) of a scale.
    diffs = float_values.astype(np.float64) - dequantized
    metrics = layer_errors.LAYER_DEBUG_METRICS
    assert metrics["max_abs_error"](diffs) == pytest.approx(np.max(np.abs(diffs)))
    assert metrics["mean_squared_error"](diffs) == pytest.approx(np.mean(diffs**2))


def test_a_layer_whose_statistics_are_not_finite_ranks_as_worst():
    header = "op_name,tensor_idx,max_abs_error,mean_squared_error,rmse_over_scale,"
    dump = (
        header + "scale,zero_point,tensor_name\n"
        "CONV_2D,1,0.1,0.01,0.4,0.1,0,conv\n"
        "MEAN,2,nan,nan,nan,0.1,0,mean\n"
        "MUL,3,0.3,0.09,inf,0.1,0,mul\n"
        "ADD,4,0.2,0.04,1.5,0.1,0,add\n"
    )
    rows = layer_errors._rows(dump)
    assert [row["layer"] for row in rows][2:] == ["add", "conv"]
    assert {row["layer"] for row in rows[:2]} == {"mean", "mul"}
    assert all(row["rmse_over_scale"] == np.inf for row in rows[:2])


def _branching_model():
    """Branches, a residual Add, BatchNorm and LayerNorm: tensors the arena reuses."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    y = keras.layers.BatchNormalization()(y)
    x = keras.layers.Add()([x, keras.layers.Activation("swish")(y)])
    x = keras.layers.Conv2D(16, 1, activation="relu")(x)
    x = keras.layers.LayerNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5)(x))


def test_each_layer_error_is_measured_on_its_own_tensors():
    """Equal to LiteRT's debugger run on the debug model's file, which keeps them.

    Built from a converter, the debugger's interpreter lets the arena reuse
    intermediate tensors: read after the run, most layers' float references
    were another op's values (errors of 100-20,000 scales, and inf). The
    reference here is the debugger built from the model's bytes (LiteRT then
    preserves every tensor), run with the builtin kernels as the code under
    test is (XNNPACK would leave the tensors inside its partitions unwritten).
    """
    import io

    import tensorflow as tf

    model = _branching_model()
    inputs = np.random.default_rng(0).random((48, 16, 16, 3), dtype=np.float32)
    calibrated = layer_errors.CalibratedInt8(model, inputs)
    rows = {row["layer"]: row for row in calibrated.layer_errors()}

    dataset = layer_errors._Samples(calibrated.inputs)
    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_debug_metrics=layer_errors.LAYER_DEBUG_METRICS,
        layer_direct_compare_metrics=layer_errors.DIRECT_COMPARE_METRICS,
    )
    with layer_errors.debugger_warnings_silenced():
        reference = tf.lite.experimental.QuantizationDebugger(
            quant_debug_model_content=calibrated.debugger.quant_model,
            debug_dataset=dataset,
            debug_options=options,
        )
        reference._quant_interpreter = tf.lite.Interpreter(
            model_content=calibrated.debugger.quant_model,
            experimental_op_resolver_type=(
                tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            ),
            experimental_preserve_all_tensors=True,
        )
        reference.run()
    dump = io.StringIO()
    reference.layer_statistics_dump(dump)
    expected = {row["layer"]: row for row in layer_errors._rows(dump.getvalue())}
    assert sorted(rows) == sorted(expected) and len(rows) >= 10
    for name, row in rows.items():
        for metric in ("rmse_over_scale", "max_abs_error", "zero_collapsed"):
            np.testing.assert_allclose(
                row[metric], expected[name][metric], rtol=1e-6, err_msg=name
            )
    # Rounding alone is about 0.29 of a scale; nothing here collapses.
    assert all(row["rmse_over_scale"] < 2 for row in rows.values())
    assert all(
        row["zero_collapsed"] < layer_errors.COLLAPSE_LIMIT for row in rows.values()
    )


def test_a_masked_attention_ranks_its_mask_chain_first():
    """Keras' attention mask fills with float32's lowest: one scale for all.

    The scores then all round to the zero point (`zero_collapsed` 1.0) while
    their error in units of that scale is about 0: ranked by
    `rmse_over_scale` alone the mask's ops came last. The softmax reading
    them collapses at its input, though its own output looks sound.
    """
    import keras

    keras.utils.set_random_seed(0)
    tokens = keras.Input((8, 8), name="x")
    mask = keras.Input((8,), name="mask", dtype="int32")
    attended = keras.layers.MultiHeadAttention(2, 4)(
        tokens, tokens, attention_mask=keras.ops.cast(mask[:, None, :], "bool")
    )
    pooled = keras.layers.GlobalAveragePooling1D()(attended)
    model = keras.Model({"x": tokens, "mask": mask}, keras.layers.Dense(3)(pooled))
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 9, 64)
    calibration = {
        "x": rng.normal(size=(64, 8, 8)).astype("float32"),
        "mask": (np.arange(8)[None] < lengths[:, None]).astype("int32"),
    }
    names, rows = layer_errors.CalibratedInt8(model, calibration).ranking()
    by_name = {row["layer"]: row for row in rows}
    assert sorted(names) == sorted(by_name)
    first = by_name[names[0]]
    assert first["zero_collapsed"] >= layer_errors.COLLAPSE_LIMIT
    assert first["rmse_over_scale"] < 0.01 and first["scale"] > 1e6
    ops = [by_name[name]["op"] for name in names]
    softmax = ops.index("SOFTMAX")
    assert ops[softmax - 1] == "SELECT_V2" and softmax < 6
    assert softmax < ops.index("FULLY_CONNECTED")


@pytest.mark.parametrize(
    "float_values, quantized, expected",
    [
        ([0.0, 0.0, 0.0], [5, 5, 5], 0.0),  # exact zeros are not lost
        ([1e-9, 2.0, -3.0, 0.0], [5, 9, 1, 5], 1 / 3),
        ([1.0, -2.0, 1e30], [5, 5, 127], 2 / 3),
    ],
)
def test_zero_collapsed_counts_nonzero_values_sent_to_the_zero_point(
    float_values, quantized, expected
):
    got = layer_errors.zero_collapsed(
        np.array(float_values), np.array(quantized), 0.1, 5
    )
    assert got == pytest.approx(expected)
