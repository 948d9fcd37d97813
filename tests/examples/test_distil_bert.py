"""The README's text chain, end to end on a tiny config: distil, export, verify, report.

`python -m examples.distil_bert` (a 4-layer BERT teacher, a 1-layer student, tiny
widths and data), then the documented commands as a user runs them: SavedModel,
TFLite fp32 and dynamic int8, ONNX, each verified on `test.npz`, and the report
against the teacher.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("keras_hub")
# Training, four exports and a report, each a process: minutes, more on a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = ["padding_mask", "segment_ids", "token_ids"]


def run(*arguments):
    environment = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run(
        [sys.executable, "-m", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=environment,
        timeout=1800,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("bert"))
    distilled = run(
        "examples.distil_bert",
        f"--output-dir={folder}",
        "--train-examples=256",
        "--test-examples=64",
        "--epochs=1",
        "--hidden-dim=32",
    )
    student, data = (
        os.path.join(folder, "student.keras"),
        os.path.join(folder, "test.npz"),
    )
    labelled = ["--labelled-data", data]
    exports = {
        "savedmodel": run(
            "export.to_savedmodel", student, "--output", f"{folder}/sm", *labelled
        ),
        "tflite": run(
            "export.to_tflite", student, "--output", f"{folder}/s.tflite", *labelled
        ),
        "tflite_dynamic": run(
            "export.to_tflite",
            student,
            "--output",
            f"{folder}/s_dynamic.tflite",
            "--quantize",
            "dynamic",
            *labelled,
        ),
        "onnx": run("export.to_onnx", student, *labelled),
    }
    run(
        "export.report",
        "--teacher",
        os.path.join(folder, "teacher.keras"),
        "--student",
        student,
        "--variants",
        "tflite_dynamic",
        "--formats",
        "keras,tflite,onnx",
        "--batch-sizes",
        "1",
        "--min-time",
        "0.02",
        "--min-iterations",
        "10",
        "--max-time",
        "0.2",
        "--rounds",
        "1",
        "--threads",
        "1",
        *labelled,
        "--output-dir",
        f"{folder}/report",
    )
    with open(f"{folder}/report/report.json") as handle:
        report = json.load(handle)
    return folder, distilled, exports, report


def test_distilled_student_is_smaller_and_the_data_names_its_inputs(chain):
    folder, distilled, _, _ = chain
    assert "teacher:" in distilled.stdout and "student:" in distilled.stdout
    with np.load(os.path.join(folder, "test.npz")) as data:
        assert sorted(data.files) == sorted([f"x_{n}" for n in NAMES] + ["y"])
        assert len(data["y"]) == 64


def test_every_export_is_verified_with_accuracy(chain):
    folder, _, exports, _ = chain
    sidecars = {
        "savedmodel": f"{folder}/sm.json",
        "tflite": f"{folder}/s.tflite.json",
        "tflite_dynamic": f"{folder}/s_dynamic.tflite.json",
        "onnx": f"{folder}/student.onnx.json",
    }
    for name, completed in exports.items():
        assert completed.stdout.startswith("verified "), completed.stdout
        with open(sidecars[name]) as handle:
            sidecar = json.load(handle)
        assert sidecar["parity"]["passed"] and sidecar["accuracy"]["count"] == 64
        drop = sidecar["accuracy"]["keras"] - sidecar["accuracy"]["exported"]
        assert drop <= 0.01
    with open(sidecars["savedmodel"]) as handle:
        assert json.load(handle)["options"]["input_names"] == NAMES


def test_report_measures_the_student_against_its_teacher(chain):
    _, _, _, report = chain
    measured = {
        (r["model"], r["variant"]): r for r in report["results"] if not r.get("error")
    }
    for model in ("teacher", "student"):
        for fmt in ("keras", "tflite", "onnx"):
            entry = measured[(model, fmt)]
            assert entry["latency"]["1"]["p50_ms"] > 0
            assert entry["accuracy"] is not None
    assert measured[("student", "tflite_dynamic")]["accuracy"] is not None
    assert {row["format"] for row in report["ratios"]} >= {"keras", "tflite", "onnx"}
    floor = next(r for r in report["results"] if r["format"] == "numpy")
    assert floor["not_applicable"]  # A transformer is no dense network.
    assert (
        report["models"]["teacher"]["parameters"]
        > report["models"]["student"]["parameters"]
    )
