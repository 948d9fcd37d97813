"""export.to_onnx: tf2onnx conversion, ONNX Runtime parity, default output."""

import os
import subprocess
import sys

import numpy as np
import pytest

from export import sidecar
from export import to_onnx
from export import to_savedmodel
from export import verify
from tests.export import trained_cnn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model, keras_path, _ = trained_cnn.trained_cnn()
    folder = tmp_path_factory.mktemp("onnx")
    return model, to_onnx.export_onnx(model, folder / "student.onnx")


@pytest.fixture(scope="module")
def session(exported):
    import onnxruntime

    _, result = exported
    return onnxruntime.InferenceSession(result.path, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch_size", [1, 8, 61])
def test_onnx_runtime_matches_keras_on_fresh_inputs(exported, session, batch_size):
    model, _ = exported
    x = trained_cnn.fresh_inputs(seed=300 + batch_size, batch_size=batch_size)
    (actual,) = session.run(None, {"inputs": x})
    assert verify.relative_error(actual, model(x, training=False).numpy()) < 1e-5


def test_graph_has_named_io_and_symbolic_batch(session):
    (inputs,), (outputs,) = session.get_inputs(), session.get_outputs()
    assert (inputs.name, inputs.shape) == ("inputs", ["batch", 28, 28, 1])
    assert (outputs.name, outputs.shape) == ("logits", ["batch", 10])


def test_graph_is_optimised(exported):
    import onnx

    _, result = exported
    ops = [node.op_type for node in onnx.load(result.path).graph.node]
    # tf2onnx's optimisers fold inference BatchNormalization and drop Identity.
    assert "BatchNormalization" not in ops
    assert "Identity" not in ops
    assert ops.count("Conv") == 3  # conv, depthwise (grouped), pointwise


def test_sidecar_and_summary(exported):
    _, result = exported
    content = sidecar.read_sidecar(result.path)
    assert content["format"] == "onnx"
    assert content["size_bytes"] == os.path.getsize(result.path)
    assert content["parity"]["max_relative_error"] < 1e-5
    assert content["options"]["providers"][-1] == "CPUExecutionProvider"
    assert content["versions"]["tf2onnx"] and content["versions"]["onnxruntime"]
    assert result.summary.startswith("verified onnx")


def test_opset_is_honoured(tmp_path):
    import onnx

    model, _, _ = trained_cnn.trained_cnn()
    result = to_onnx.export_onnx(model, tmp_path / "m.onnx", opset=13)
    opsets = {o.domain: o.version for o in onnx.load(result.path).opset_import}
    assert opsets[""] == 13
    assert result.sidecar["options"]["opset"] == 13


@pytest.mark.parametrize("opset", [3, 99, "15", 13.0])
def test_bad_opset_rejected(tmp_path, opset):
    with pytest.raises((ValueError, TypeError), match="--opset"):
        to_onnx.export_onnx("missing.keras", tmp_path / "m.onnx", opset=opset)


@pytest.mark.parametrize(
    "model_path,expected",
    [
        ("a/student.keras", "a/student.onnx"),
        ("a/student.v2.keras", "a/student.v2.onnx"),
    ],
)
def test_default_output_for_files(model_path, expected):
    assert to_onnx.default_output_path(model_path) == os.path.normpath(expected)


@pytest.mark.e2e
def test_cli_savedmodel_dir_without_output_writes_beside_it(tmp_path):
    """`python -m export.to_onnx student/` -> `student.onnx` next to the dir."""
    model, _, _ = trained_cnn.trained_cnn()
    saved = to_savedmodel.export_savedmodel(model, tmp_path / "student")
    completed = subprocess.run(
        [sys.executable, "-m", "export.to_onnx", str(tmp_path / "student") + "/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    target = tmp_path / "student.onnx"
    assert completed.stdout.strip().splitlines() == [
        f"verified onnx, {target}, " + completed.stdout.split(f"{target}, ")[1].strip()
    ]
    assert "Traceback" not in completed.stderr
    assert sorted(os.listdir(tmp_path)) == [
        "student",
        "student.json",
        "student.onnx",
        "student.onnx.json",
    ]
    import onnxruntime

    x = trained_cnn.fresh_inputs(seed=11, batch_size=4)
    session = onnxruntime.InferenceSession(
        str(target), providers=["CPUExecutionProvider"]
    )
    (actual,) = session.run(None, {"inputs": x})
    assert verify.relative_error(actual, model(x, training=False).numpy()) < 1e-5
    assert saved.path == str(tmp_path / "student")


def test_real_student_builder_exports(tmp_path):
    """The project's own CNN student (after a few steps on random data)."""
    import keras

    import models

    student = models.build_cnn_student(filters=(8, 16), seed=0)
    student.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    rng = np.random.default_rng(5)
    student.fit(
        rng.random((64, 28, 28, 1), dtype=np.float32),
        rng.integers(0, 10, 64),
        epochs=2,
        batch_size=16,
        verbose=0,
    )
    result = to_onnx.export_onnx(student, tmp_path / "cnn_student.onnx")
    assert result.sidecar["parity"]["max_relative_error"] < 1e-5
