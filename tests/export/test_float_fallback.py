"""export.float_fallback: int8 with the fewest layers in float, via export.to_tflite."""

import json
import os

import keras
import numpy as np
import pytest

from export import float_fallback
from export import runtimes
from export import sidecar
from export import to_tflite
from export import verify
from tests.command_line import run_module
from tests.export import outlier_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def model():
    return outlier_model.outlier_model()


@pytest.fixture(scope="module")
def calibration():
    return outlier_model.inputs(seed=1, count=200)


@pytest.fixture(scope="module")
def fallback(model, calibration, tmp_path_factory):
    path = tmp_path_factory.mktemp("fallback") / "student_int8.tflite"
    result = to_tflite.export_tflite(
        model,
        path,
        quantize="int8",
        representative_data=calibration,
        float_fallback="auto",
    )
    return result


def test_full_int8_fails_without_fallback_and_writes_nothing(
    model, calibration, tmp_path
):
    path = tmp_path / "full.tflite"
    with pytest.raises(verify.ParityError, match="top-1 agreement"):
        to_tflite.export_tflite(
            model, path, quantize="int8", representative_data=calibration
        )
    assert os.listdir(tmp_path) == []


def test_fallback_passes_and_agrees_with_keras_on_fresh_inputs(model, fallback):
    x = outlier_model.inputs(seed=99, count=400)
    actual = runtimes.TFLiteRuntime(fallback.path).predict(x)
    expected = model(x, training=False).numpy()
    assert verify.top1_agreement(actual, expected) >= verify.MIN_TOP1_AGREEMENT["int8"]
    assert fallback.sidecar["parity"]["top1_agreement"] >= 0.97


def test_sidecar_names_the_few_layers_kept_in_float_and_their_cost(fallback):
    record = sidecar.read_sidecar(fallback.path)["options"]["float_fallback"]
    layers = record["float_layers"]
    assert 1 <= len(layers) < record["quantised_layers"]
    assert any("wide" in layer for layer in layers)
    full = record["full_int8"]
    assert not full["passed"] and full["top1_agreement"] < 0.97
    assert record["size_bytes"] == os.path.getsize(fallback.path)
    assert record["size_cost_bytes"] == record["size_bytes"] - full["size_bytes"]
    assert record["size_cost_bytes"] > 0  # float kernels are 4x larger
    assert record["latency_ms_p50"] > 0 and full["latency_ms_p50"] > 0
    assert record["latency_ratio"] == pytest.approx(
        record["latency_ms_p50"] / full["latency_ms_p50"]
    )
    assert [t["passed"] for t in record["tries"]][0] is False
    assert f"{len(layers)} of {record['quantised_layers']}" in fallback.summary


def test_kept_layers_are_float_and_the_rest_int8(fallback):
    record = fallback.sidecar["options"]["float_fallback"]
    interpreter = runtimes.TFLiteRuntime(fallback.path).interpreter
    dtypes = {
        d["name"]: np.dtype(d["dtype"]).name for d in interpreter.get_tensor_details()
    }
    for layer in record["float_layers"]:
        assert dtypes[layer] == "float32"
    ops, _ = to_tflite.tensor_types(fallback.path)
    assert sum(op["kernel"] == "int8" for op in ops) >= 1
    # The sidecar counts the weighted ops the file holds in float, read back.
    types = fallback.sidecar["options"]["tensor_types"]
    in_float = sum(op["kernel"] != "int8" or op["activation"] != "int8" for op in ops)
    assert types["float_weighted_ops"] == in_float
    assert types["kernels"] == {"int8": len(ops) - in_float}


def test_the_sidecar_of_a_fallback_file_is_what_the_file_bears(fallback):
    content = fallback.sidecar
    assert sidecar.artifact_discrepancies(content, fallback.path) == []
    tampered = json.loads(json.dumps(content))
    tampered["options"]["tensor_types"]["float_weighted_ops"] += 1
    assert sidecar.artifact_discrepancies(tampered, fallback.path) == [
        "tensor_types differ from the file's"
    ]


def test_fewest_layers_no_single_kept_layer_can_go_back_to_int8(
    model, calibration, fallback, tmp_path
):
    from export.report import layer_errors

    record = fallback.sidecar["options"]["float_fallback"]
    calibrated = layer_errors.CalibratedInt8(model, calibration)
    for layer in record["float_layers"]:
        fewer = [name for name in record["float_layers"] if name != layer]
        path = tmp_path / f"without_{len(fewer)}.tflite"
        path.write_bytes(calibrated.quantize(fewer))
        with pytest.raises(verify.ParityError):
            verify.verify_artifact(
                model,
                str(path),
                "tflite",
                quantize="int8",
                calibration_inputs=calibration,
            )


def test_no_fallback_needed_gives_plain_int8(tmp_path):
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(4)]
    )
    x = np.random.default_rng(2).random((100, 8), dtype=np.float32)
    result = to_tflite.export_tflite(
        model,
        tmp_path / "m.tflite",
        quantize="int8",
        representative_data=x,
        float_fallback="auto",
    )
    assert result.sidecar["options"]["float_fallback"]["float_layers"] == []
    assert result.sidecar["options"]["tensor_types"]["kernels"] == {"int8": 2}


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16, 100])
def test_smallest_passing_prefix_matches_a_linear_scan(count):
    for needed in range(1, count + 2):
        k, tried = float_fallback.smallest_passing_prefix(
            count, lambda k, n=needed: k >= n
        )
        assert k == (needed if needed <= count else None)
        assert len(tried) <= 2 * max(1, count).bit_length() + 1


@pytest.mark.parametrize(
    "count, needed",
    [
        (1, {0}),
        (8, {7}),  # the least-error layer alone: one-by-one would try them all
        (30, {0, 29}),
        (106, {3, 50, 105}),
        (106, set(range(106))),
    ],
)
def test_fewest_needed_keeps_just_the_layers_that_matter(count, needed):
    names = [f"layer_{i}" for i in range(count)]
    wanted = {names[i] for i in needed}
    calls = []

    def passes(kept):
        calls.append(kept)
        return wanted <= set(kept)

    kept = float_fallback.fewest_needed(names, passes, max_tries=200)
    assert set(kept) == wanted
    assert kept == [name for name in names if name in wanted]  # order kept
    # About 2 k log2(n) tries for k of n layers, not n (one at a time).
    bits = int(np.ceil(np.log2(count + 1)))
    assert len(calls) <= (3 * len(wanted) * bits if len(wanted) < count else 3 * count)


def test_fewest_needed_stops_at_its_budget_with_a_passing_set():
    names = [f"layer_{i}" for i in range(64)]
    calls = []

    def passes(kept):
        calls.append(kept)
        return "layer_5" in kept

    kept = float_fallback.fewest_needed(names, passes, max_tries=3)
    assert len(calls) == 3
    assert kept == [f"layer_{i}" for i in range(8)]  # 64 -> 32 -> 16 -> 8


@pytest.mark.parametrize(
    "arguments, match",
    [
        ({"quantize": "int8", "float_fallback": "always"}, "--float-fallback"),
        ({"quantize": "dynamic", "float_fallback": "auto"}, "--quantize=int8"),
        (
            {"quantize": "int8", "float_fallback": "auto", "int8_io": True},
            "--int8-io",
        ),
    ],
)
def test_bad_float_fallback_is_refused_before_any_work(tmp_path, arguments, match):
    with pytest.raises(ValueError, match=match):
        to_tflite.export_tflite(
            "missing.keras",
            tmp_path / "m.tflite",
            representative_data=np.zeros((20, 4)),
            **arguments,
        )
    assert os.listdir(tmp_path) == []


def test_cli_float_fallback_usage_error_exits_2(tmp_path):
    completed = run_module(
        "export.to_tflite",
        tmp_path / "missing.keras",
        "--output",
        tmp_path / "m.tflite",
        "--quantize=dynamic",
        "--float-fallback=auto",
        timeout=120,
    )
    assert completed.returncode == 2
    assert "--float-fallback" in completed.stderr
    assert "Traceback" not in completed.stderr


def _two_input_outlier_model():
    """The outlier model on input "z", a small Dense on input "a", logits added."""
    core = outlier_model.outlier_model()
    z = keras.Input((outlier_model.FEATURES,), name="z")
    a = keras.Input((4,), name="a")
    side = keras.layers.Dense(outlier_model.CLASSES, name="side")(a)
    return keras.Model({"z": z, "a": a}, keras.layers.Add()([core(z), side]))


def _two_inputs(seed, count):
    rng = np.random.default_rng(seed)
    return {
        "z": outlier_model.inputs(seed, count),
        "a": rng.random((count, 4), dtype=np.float32),
    }


def test_fallback_takes_a_model_with_several_inputs(tmp_path):
    """The per-layer debugger reads several inputs in its interpreter's order."""
    model = _two_input_outlier_model()
    result = to_tflite.export_tflite(
        model,
        tmp_path / "two_inputs.tflite",
        quantize="int8",
        representative_data=_two_inputs(1, 200),
        float_fallback="auto",
    )
    record = result.sidecar["options"]["float_fallback"]
    assert not record["full_int8"]["passed"] and record["float_layers"]
    x = _two_inputs(99, 400)
    actual = runtimes.TFLiteRuntime(result.path).predict(x)
    expected = model(x, training=False).numpy()
    assert verify.top1_agreement(actual, expected) >= verify.MIN_TOP1_AGREEMENT["int8"]
