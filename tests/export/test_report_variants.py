"""`python -m export.report` with candidate students, quantised variants and a release.

Tiny MLPs on 6x6 inputs, tiny timing bounds: what the report says and writes, never how
fast anything runs.
"""

import json
import os

import numpy as np
import pytest

from tests.export.report_cli import FAST
from tests.export.report_cli import mlp
from tests.export.report_cli import one_error_line
from tests.export.report_cli import report_arguments
from tests.export.report_cli import run_report
from tests.export.report_cli import write_text

pytestmark = pytest.mark.e2e

FAST = dict(FAST, rounds=2, batch_sizes="1,4")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("variants")
    paths = {"folder": str(folder)}
    teacher = mlp((48, 48), 0)
    for name, model in (
        ("teacher", teacher),
        ("wide", mlp((24,), 1)),
        ("narrow", mlp((8,), 2)),
        ("lambda", mlp((8,), 3, lambda_layer=True)),
    ):
        paths[name] = str(folder / f"{name}.keras")
        model.save(paths[name])
    rng = np.random.default_rng(4)
    x = rng.random((200, 6, 6, 1), dtype=np.float32)
    paths["data"] = str(folder / "labelled.npz")
    np.savez(
        paths["data"], x=x, y=np.asarray(teacher(x, training=False)).argmax(axis=1)
    )
    paths["calibration"] = str(folder / "calibration.npy")
    np.save(paths["calibration"], rng.random((100, 6, 6, 1), dtype=np.float32))
    return paths


def test_default_data_that_does_not_fit_exits_2_before_any_work(inputs, tmp_path):
    output = str(tmp_path / "report")
    completed = run_report(
        report_arguments(
            inputs["teacher"], [inputs["narrow"]], output_dir=output, **FAST
        ),
        timeout=300,
    )
    assert completed.returncode == 2, completed.stderr
    line = one_error_line(completed)
    assert "(6, 6, 1)" in line and "`--labelled-data`" in line
    assert not os.path.exists(output)


def test_lambda_model_needs_unsafe_and_leaves_nothing_behind(inputs, tmp_path):
    output = str(tmp_path / "report")
    arguments = report_arguments(
        inputs["teacher"],
        [inputs["lambda"]],
        output_dir=output,
        labelled_data=inputs["data"],
        formats="keras,onnx",
        **FAST,
    )
    completed = run_report(arguments, timeout=300)
    assert completed.returncode == 2, completed.stderr
    line = one_error_line(completed)
    assert "pass --unsafe" in line
    assert "only if you trust the file" in line
    assert not os.path.exists(output)  # no empty artifacts/ folder
    completed = run_report(arguments + ["--unsafe"])
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "safe_mode=False (--unsafe)" in completed.stderr  # the warning, as in to_*
    with open(os.path.join(output, "report.json")) as handle:
        data = json.load(handle)
    keras_entry = next(
        r for r in data["results"] if r["model"] == "student" and r["format"] == "keras"
    )
    assert (
        keras_entry["error"] is None and keras_entry["parity"]["top1_agreement"] == 1.0
    )
    assert data["settings"]["unsafe"] is True


def _release(inputs, folder, budget, **flags):
    """The report of the two candidates in ONNX, choosing a release by `budget`.

    Writes the budget, the report and the release in `folder`; returns the
    completed process and the release folder.
    """
    release = os.path.join(folder, "release")
    completed = run_report(
        report_arguments(
            inputs["teacher"],
            [inputs["wide"], inputs["narrow"]],
            formats="onnx",
            labelled_data=inputs["data"],
            budget=write_text(folder, "budget.yaml", budget),
            release_dir=release,
            output_dir=os.path.join(folder, "report"),
            **flags,
            **FAST,
        )
    )
    return completed, release


@pytest.fixture(scope="module")
def released(inputs):
    """Two candidates x (onnx, tflite_int8, onnx_int8), chosen by size."""
    completed, release = _release(
        inputs,
        inputs["folder"],
        "min_accuracy: 0.0\nmax_p99_ms: 10000\nminimise: size_mb\n",
        variants="tflite_int8,onnx_int8",
        representative_data=inputs["calibration"],
    )
    with open(os.path.join(inputs["folder"], "report", "report.json")) as handle:
        data = json.load(handle)
    return completed, data, release


def test_every_variant_is_verified_measured_interleaved_and_described(released, inputs):
    completed, data, _ = released
    assert completed.returncode == 0, completed.stderr[-3000:]
    for noise in ("cuInit", "absl::InitializeLog", "cudart_stub"):
        assert noise not in completed.stderr  # also the converter child's start-up
    entries = {(r["model"], r["variant"]): r for r in data["results"]}
    expected = {("teacher", v) for v in ("onnx", "numpy")}
    expected |= {
        (m, v)
        for m in ("wide", "narrow")
        for v in ("onnx", "tflite_int8", "onnx_int8", "numpy")
    }
    assert set(entries) == expected
    # A quantised variant may fail its converter's parity check (random weights,
    # close logits): it is then rejected, reported, and not a failure of the run.
    rejected = [r for r in data["results"] if r.get("rejected")]
    for entry in rejected:
        assert entry["quantize"] == "int8" and entry["error"].startswith("ParityError:")
        assert "latency" not in entry
    measured = [r for r in data["results"] if r["error"] is None]
    assert len(measured) + len(rejected) == len(expected)
    assert {r["variant"] for r in measured} >= {"tflite_int8", "onnx_int8"}
    processes = sum(
        len(r["pid"]) if isinstance(r["pid"], list) else 1 for r in measured
    )
    for entry in measured:
        assert (
            entry["timing"]["interleaved_with"] == processes - 1
        )  # one interleaved run
        for stats in entry["latency"].values():
            assert (
                stats["p50_ms"] <= stats["p90_ms"] <= stats["p95_ms"] <= stats["p99_ms"]
            )
            assert stats["validity"]["valid"] == (
                stats["iterations"] >= 20 and stats["timed_s"] >= 0.02 * (1 - 1e-9)
            )
            assert stats["std_ms"] >= 0
        assert entry["first_inference_ms"] > 0 and entry["init_s"] > 0
        assert entry["parity"]["examples"] == 200
        assert entry["lineage"]["threads"] == 1
    for model in ("wide", "narrow"):
        for variant in ("tflite_int8", "onnx_int8"):
            entry = entries[(model, variant)]
            if entry.get("rejected"):
                continue
            assert (
                entry["export"]["parity"]["quantize"] == "int8"
            )  # verified by the converter
            assert (
                entry["lineage"]["calibration_digest"]
                == data["data"]["calibration"]["digest"]
            )
            assert entry["parity"]["top1_agreement"] >= 0.9
            assert entry["parity"]["max_abs_diff"] > 0  # quantised: outputs do move
        assert entries[(model, "onnx")]["parity"]["max_abs_diff"] < 1e-4
    assert any(entry.get("pareto") for entry in measured)


def test_the_release_is_the_smallest_variant_and_release_json_says_why(released):
    completed, data, release = released
    winner = data["release"]["winner"]
    candidates = [
        r for r in data["results"] if r["role"] == "student" and r["format"] != "numpy"
    ]
    smallest = min(
        (r for r in candidates if r["error"] is None),
        key=lambda r: (r["size_bytes"], f"{r['model']} {r['variant']}"),
    )
    assert winner["label"] == f"{smallest['model']} {smallest['variant']}"
    names = sorted(os.listdir(release))
    artifact = os.path.basename(smallest["artifact"])
    assert names == sorted([artifact, artifact + ".json", "release.json"])
    with open(os.path.join(release, "release.json")) as handle:
        record = json.load(handle)
    assert record["sha256"] == smallest["sha256"]
    assert record["size_bytes"] == os.path.getsize(os.path.join(release, artifact))
    assert record["objective_value"] == pytest.approx(smallest["size_bytes"] / 1e6)
    assert len(record["beaten"]) == len(candidates) - 1
    assert f"release: {winner['label']}" in completed.stderr
    with open(os.path.join(os.path.dirname(release), "report", "report.md")) as handle:
        markdown = handle.read()
    assert f"**Release: {winner['label']}**" in markdown
    assert "## Pareto: accuracy against p99 latency and size" in markdown
    assert "VALID" in markdown


def test_no_variant_meeting_the_budget_exits_1_and_releases_nothing(inputs, tmp_path):
    completed, release = _release(
        inputs, str(tmp_path), "max_p99_ms: {1: 0.000001}\nminimise: size_mb\n"
    )
    assert completed.returncode == 1, completed.stderr[-2000:]
    assert "no variant meets the budget" in completed.stderr
    assert "  wide onnx: p99 latency at batch 1 too high (" in completed.stderr
    assert "narrow onnx:" in completed.stderr
    assert not os.path.exists(release)
