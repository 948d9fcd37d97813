"""export.report.confirm: the release's latencies from its own timing run.

The timing tests time the tiny MLP's TFLite file (the shared `artifacts` fixture)
in tiny windows and check what is recorded, never how fast anything runs. The
budget and failure paths replace the confirmation with stand-ins
(tests/export/confirm_stand_ins.py): what the confirmation finds is then chosen by
the test, not by the machine.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from export.report import budgets
from export.report import choose
from export.report import command
from export.report import confirm
from tests.export import confirm_stand_ins
from tests.export.report_cli import FAST
from tests.export.report_cli import ROOT
from tests.export.report_cli import mlp
from tests.export.report_cli import report_arguments
from tests.export.report_cli import write_text

# The report's timing settings, small: windows of 0.02 / 2 = 0.01 s.
TIMING = {
    "min_time_s": 0.02,
    "min_iterations": 20,
    "max_time_s": 0.2,
    "warmup_s": 0.01,
    "rounds": 2,
    "rewarm_s": 0.01,
}


def _entry(path, fmt="tflite", threads=(1, 2)):
    """A report entry for `path`: batch 1 chosen at threads[0], batch 4 at threads[1]."""
    return {
        "model": "student",
        "role": "student",
        "variant": fmt,
        "format": fmt,
        "artifact": path,
        "threads": threads[0],
        "latency": {
            "1": {"p50_ms": 0.01, "p99_ms": 0.02, "threads": threads[0]},
            "4": {"p50_ms": 0.02, "p99_ms": 0.05, "threads": threads[1]},
        },
    }


@pytest.mark.parametrize("rounds", [3, confirm.CONFIRM_ROUNDS])
def test_each_batch_is_timed_in_every_round_at_the_reports_thread_count(
    artifacts, rounds
):
    _, paths = artifacts
    entry = _entry(paths["tflite"])
    confirmation = confirm.confirm_release(entry, TIMING, rounds=rounds)
    assert confirmation["rounds"] == rounds
    assert confirmation["window_s"] == confirmation["pause_s"] == pytest.approx(0.01)
    assert confirmation["warmup_s"] == 0.01 and confirmation["rewarm_s"] == 0.01
    assert confirmation["sha256"] == choose.file_digest(paths["tflite"])
    assert list(confirmation["latency"]) == ["1", "4"]
    for batch, stats in confirmation["latency"].items():
        assert stats["threads"] == entry["latency"][batch]["threads"]
        assert stats["windows"] == rounds
        assert math.isfinite(stats["max_ms"])
        assert (
            0
            < stats["p50_ms"]
            <= stats["p90_ms"]
            <= stats["p95_ms"]
            <= stats["p99_ms"]
            <= stats["max_ms"]
        )
        assert stats["iterations"] == stats["samples"] * stats["calls_per_sample"]
        # Every window lasts at least the report's window: the run is valid.
        assert stats["timed_s"] >= rounds * 0.01 * (1 - 1e-9)
        assert stats["validity"]["valid"]
        assert stats["validity"]["min_time_s"] == pytest.approx(rounds * 0.01)
        assert stats["validity"]["min_calls"] >= TIMING["min_iterations"]


def test_a_file_the_runtime_cannot_load_fails_in_one_line(tmp_path):
    path = tmp_path / "broken.tflite"
    path.write_bytes(b"not a flatbuffer" * 8)
    with pytest.raises(RuntimeError) as caught:
        confirm.confirm_release(_entry(str(path), threads=(1, 1)), TIMING, rounds=2)
    message = str(caught.value)
    assert "\n" not in message and "broken.tflite" in message


@pytest.mark.parametrize("rounds", [0, -3, True, 2.0])
def test_rounds_must_be_a_positive_integer(tmp_path, rounds):
    with pytest.raises(ValueError, match=r"`rounds` must be an integer >= 1"):
        confirm.confirm_release(
            _entry(str(tmp_path / "x.tflite")), TIMING, rounds=rounds
        )


def test_thread_plan_falls_back_to_the_entrys_threads_and_refuses_none():
    entry = {"threads": 2, "latency": {"1": {"threads": 1}, "64": {}}}
    assert confirm.thread_plan(entry) == {"1": 1, "64": 2}
    with pytest.raises(ValueError, match="must record the threads of batch 64"):
        confirm.thread_plan({"threads": None, "latency": {"64": {}}})


def _confirmation(p99_1, p99_4, sha256=None):
    return {
        "rounds": 20,
        "window_s": 0.1,
        "sha256": sha256,
        "latency": {
            "1": {"p50_ms": p99_1 / 2, "p99_ms": p99_1, "threads": 1, "windows": 20},
            "4": {"p50_ms": p99_4 / 2, "p99_ms": p99_4, "threads": 2, "windows": 20},
        },
    }


@pytest.mark.parametrize(
    "limits, p99, broken",
    [
        ({"max_p99_ms": {1: 0.5}}, (0.4, 9.0), []),
        ({"max_p99_ms": {1: 0.5}}, (0.6, 9.0), ["p99_ms@1"]),
        ({"max_p99_ms": 1.0}, (2.0, 3.0), ["p99_ms@1", "p99_ms@4"]),
        ({"max_p50_ms": {4: 1.0}}, (0.1, 3.0), ["p50_ms@4"]),
        ({"max_p99_ms": 1.0}, (math.nan, 0.5), ["p99_ms@1"]),  # NaN never passes
        ({"min_accuracy": 0.9, "max_size_mb": 1e-9}, (1e6, 1e6), []),
    ],
)
def test_latency_violations_checks_only_the_latency_limits(limits, p99, broken):
    entry = _entry("student.tflite")
    violations = confirm.latency_violations(
        budgets.parse_budget(limits), entry, _confirmation(*p99)
    )
    assert [v["metric"] for v in violations] == broken
    for violation in violations:
        assert violation["message"].startswith("student tflite: ")


# A release folder from a synthetic report around a stand-in file (no timing).
def _report(tmp_path, budget):
    artifact = tmp_path / "student.tflite"
    artifact.write_bytes(b"\x01tflite bytes")
    sidecar = tmp_path / "student.tflite.json"
    parity = {"format": "tflite", "max_abs_diff": 0.01}
    sidecar.write_text(
        json.dumps({"artifact": "student.tflite", "size_bytes": 13, "parity": parity})
    )
    entry = dict(
        _entry(str(artifact)),
        error=None,
        quantize="none",
        size_bytes=13,
        gzip_bytes=13,
        peak_rss_bytes=1e6,
        accuracy=0.9,
        sha256=choose.file_digest(str(artifact)),
        export={"sidecar_path": str(sidecar), "parity": parity},
        lineage={"threads": 1},
    )
    for stats in entry["latency"].values():
        stats.update(calls_per_sample=3, samples=100, validity={"valid": True})
    budget = budgets.parse_budget(budget)
    return {
        "results": [entry],
        "release": choose.choose_release(budget, [entry]),
        "budget": {"limits": budgets.describe(budget)},
        "settings": {"timing": dict(TIMING), "runtime_options": {}, "unsafe": False},
        "created_utc": "now",
        "command": "python -m export.report",
    }, budget


def test_release_json_records_the_confirmation_and_keeps_the_reports_figures(
    tmp_path, monkeypatch
):
    report, budget = _report(tmp_path, {"max_p99_ms": 1.0})
    asked = {}

    def confirmation_run(entry, timing, rounds, options):
        asked.update(entry=entry, timing=timing, rounds=rounds, options=options)
        return _confirmation(0.25, 0.75, sha256=entry["sha256"])

    monkeypatch.setattr(confirm, "confirm_release", confirmation_run)
    release = str(tmp_path / "release")
    path = command.release_winner(report, budget, release, rounds=7)
    assert path == os.path.join(release, "release.json")
    assert asked["entry"] is report["results"][0] and asked["rounds"] == 7
    assert asked["timing"] == TIMING and asked["options"] == {}
    with open(path) as handle:
        record = json.load(handle)
    measured = record["measured"]
    assert measured["latency"] == _confirmation(0.25, 0.75)["latency"]
    assert measured["latency_in_report"] == {
        batch: {k: stats[k] for k in choose.REPORT_LATENCY_KEYS}
        for batch, stats in report["results"][0]["latency"].items()
    }
    assert (
        record["confirmation"]["rounds"] == 20
        and "latency" not in (record["confirmation"])
    )
    assert "chosen on the report's 2 interleaved rounds" in record["why"]
    assert "come from a 20-round confirmation run" in record["why"]
    assert report["release"]["confirmation"]["problem"] is None
    assert command.exit_status(report, selecting=True) == 0


@pytest.mark.parametrize(
    "stand_in, expected",
    [
        (
            confirm_stand_ins.slow,
            "student tflite breaks the budget in its 20-round confirmation run: "
            "p99 latency at batch 1 too high (1000 ms vs limit 1e-09 ms)",
        ),
        (
            confirm_stand_ins.not_a_number,
            "p99 latency at batch 1 too high (nan ms vs limit 1e-09 ms)",
        ),
        (
            confirm_stand_ins.broken,
            "the 20-round confirmation run of student tflite failed (RuntimeError: "
            "measuring tflite",
        ),
    ],
)
def test_a_confirmation_that_breaks_the_budget_or_fails_releases_nothing(
    tmp_path, monkeypatch, stand_in, expected
):
    # The report's own figures meet the limit (1e-9 ms): only the confirmation
    # can break it.
    report, budget = _report(tmp_path, {"max_p99_ms": {1: 1e-9}})
    report["results"][0]["latency"]["1"]["p99_ms"] = 1e-10
    report["release"] = choose.choose_release(budget, report["results"])
    assert report["release"]["winner"]["label"] == "student tflite"
    monkeypatch.setattr(confirm, "confirm_release", stand_in)
    release = tmp_path / "release"
    assert command.release_winner(report, budget, str(release)) is None
    problem = report["release"]["confirmation"]["problem"]
    assert problem.startswith("nothing released: ") and "\n" not in problem
    assert expected in problem
    assert not release.exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".release")]
    assert command.exit_status(report, selecting=True) == 1


def test_a_latency_free_budget_releases_whatever_the_confirmation_measures(
    tmp_path, monkeypatch
):
    report, budget = _report(tmp_path, {"min_accuracy": 0.5})
    monkeypatch.setattr(confirm, "confirm_release", confirm_stand_ins.slow)
    path = command.release_winner(report, budget, str(tmp_path / "release"))
    with open(path) as handle:
        latency = json.load(handle)["measured"]["latency"]
    assert {b: s["p50_ms"] for b, s in latency.items()} == {"1": 1000.0, "4": 1000.0}


def test_a_file_changed_since_its_confirmation_is_not_released(tmp_path, monkeypatch):
    report, budget = _report(tmp_path, {"max_p99_ms": 10.0})
    monkeypatch.setattr(
        confirm,
        "confirm_release",
        lambda entry, timing, **keywords: _confirmation(0.1, 0.2, sha256="0" * 64),
    )
    with pytest.raises(RuntimeError, match="changed after its confirmation run"):
        command.release_winner(report, budget, str(tmp_path / "release"))
    assert not (tmp_path / "release").exists()


# The command line, with a stand-in confirmation (a `python -c` wrapper).
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("confirm")
    paths = {"folder": str(folder)}
    teacher = mlp((24,), 0)
    for name, model in (("teacher", teacher), ("student", mlp((8,), 1))):
        paths[name] = str(folder / f"{name}.keras")
        model.save(paths[name])
    x = np.random.default_rng(5).random((100, 6, 6, 1), dtype=np.float32)
    paths["data"] = str(folder / "labelled.npz")
    np.savez(
        paths["data"], x=x, y=np.asarray(teacher(x, training=False)).argmax(axis=1)
    )
    return paths


def _run_with(stand_in, models, folder, budget, **flags):
    arguments = report_arguments(
        models["teacher"],
        [models["student"]],
        formats="onnx",
        labelled_data=models["data"],
        budget=write_text(str(folder), "budget.yaml", budget),
        release_dir=str(folder / "release"),
        output_dir=str(folder / "report"),
        **flags,
        **dict(FAST, rounds=2, batch_sizes="1,4"),
    )
    return subprocess.run(
        [
            sys.executable,
            "-c",
            confirm_stand_ins.report_with_stand_in(stand_in),
            *arguments,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=900,
    )


@pytest.mark.parametrize(
    "stand_in, expected",
    [
        (
            "slow",
            "student onnx breaks the budget in its 20-round confirmation run: "
            "p99 latency at batch 4 too high (1000 ms vs limit 500 ms)",
        ),
        # The failure path is checked in-process above; here, its wiring only.
        pytest.param(
            "broken",
            "failed (RuntimeError: measuring onnx ",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_the_command_exits_1_with_one_line_and_releases_nothing(
    models, tmp_path, stand_in, expected
):
    completed = _run_with(
        stand_in, models, tmp_path, "max_p99_ms: {4: 500}\nminimise: size_mb\n"
    )
    assert completed.returncode == 1, completed.stderr[-3000:]
    errors = [line for line in completed.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(
        "export.report: error: nothing released: "
    )
    assert expected in errors[0]
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "release").exists()
    with open(tmp_path / "report" / "report.json") as handle:
        data = json.load(handle)
    assert data["release"]["winner"]["label"] == "student onnx"
    assert data["release"]["confirmation"]["problem"] in errors[0]
    with open(tmp_path / "report" / "report.md") as handle:
        assert "**Release: none** (confirmation run FAILED)" in handle.read()


@pytest.mark.parametrize("rounds", ["0"])
def test_confirm_rounds_below_one_is_a_usage_error(models, tmp_path, rounds):
    completed = _run_with(
        "slow", models, tmp_path, "max_p99_ms: 500\n", confirm_rounds=rounds
    )
    assert completed.returncode == 2, completed.stderr[-2000:]
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert lines == [
        f"export.report: error: `--confirm-rounds` must be >= 1. "
        f"Received: --confirm-rounds={rounds}"
    ]
    assert not (tmp_path / "report").exists()
