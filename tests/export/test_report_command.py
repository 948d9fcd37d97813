"""Tests for `python -m export.report`: files, JSON schema, budgets and exit codes.

Tiny MLPs on 6x6 inputs and tiny timing bounds: these tests check what the report says,
never how fast anything runs (that is benchmarks/inference_latency.py).
"""

import json
import os

import keras
import numpy as np
import pytest

from export import report as report_lib
from tests.export.report_cli import FAST
from tests.export.report_cli import mlp
from tests.export.report_cli import one_error_line
from tests.export.report_cli import report_arguments
from tests.export.report_cli import run_report
from tests.export.report_cli import write_text


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    teacher, student = mlp((48, 48), 0), mlp((8,), 1)
    paths = {
        "teacher": str(folder / "teacher.keras"),
        "student": str(folder / "student.keras"),
    }
    teacher.save(paths["teacher"])
    student.save(paths["student"])
    x = np.random.default_rng(2).random((64, 6, 6, 1), dtype=np.float32)
    y = np.asarray(teacher(x, training=False)).argmax(
        axis=1
    )  # teacher accuracy exactly 1
    paths["data"] = str(folder / "labelled.npz")
    np.savez(paths["data"], x=x, y=y)
    paths["folder"] = str(folder)
    return paths


def _measure(inputs, budget_name, budget, **flags):
    """A full report of the module's teacher and student on its labelled data.

    The budget text `budget` is written to `budget_name` in the module's folder;
    returns the completed process and the output folder.
    """
    folder = inputs["folder"]
    output = os.path.join(folder, os.path.splitext(budget_name)[0] + "_report")
    completed = run_report(
        report_arguments(
            inputs["teacher"],
            [inputs["student"]],
            budget=write_text(folder, budget_name, budget),
            labelled_data=inputs["data"],
            output_dir=output,
            **flags,
            **FAST,
        )
    )
    return completed, output


@pytest.fixture(scope="module")
def violated(inputs):
    """One full run whose budget cannot be met (p99 under a nanosecond)."""
    return _measure(
        inputs,
        "strict.yaml",
        "max_p99_ms: {1: 0.000001}\nmin_accuracy: 0.5\nformats: [onnx]\n",
        formats="tflite,onnx",
        batch_sizes="1,3",
    )


@pytest.mark.e2e
def test_budget_violation_exits_1_and_is_listed(violated):
    completed, output = violated
    assert completed.returncode == 1, completed.stderr[-2000:]
    assert (
        "budget violated: student onnx: p99 latency at batch 1 too high"
        in completed.stderr
    )
    assert "Traceback" not in completed.stderr
    with open(os.path.join(output, "report.json")) as handle:
        data = json.load(handle)
    assert data["budget"]["passed"] is False
    metrics = {
        (v["model"], v["format"], v["metric"]) for v in data["budget"]["violations"]
    }
    assert ("student", "onnx", "p99_ms@1") in metrics
    assert all(
        v["format"] == "onnx" for v in data["budget"]["violations"]
    )  # formats: [onnx]
    with open(os.path.join(output, "report.md")) as handle:
        markdown = handle.read()
    assert "**Budget: FAILED**" in markdown
    assert "student onnx: p99 latency at batch 1 too high" in markdown


@pytest.mark.e2e
def test_all_three_files_written_and_nothing_half_written(violated):
    _, output = violated
    names = sorted(os.listdir(output))
    assert names == ["artifacts", "report.html", "report.json", "report.md"]
    assert not [
        n for n in os.listdir(os.path.join(output, "artifacts")) if n.startswith(".")
    ]
    with open(os.path.join(output, "report.html")) as handle:
        page = handle.read()
    assert page.count("src='data:image/png;base64,") == 2  # both plots embedded
    assert "Student / teacher ratios" in page


@pytest.mark.e2e
def test_json_schema(violated, inputs):
    _, output = violated
    with open(os.path.join(output, "report.json")) as handle:
        data = json.load(handle)
    assert data["schema_version"] == 2
    assert data["settings"]["formats"] == ["tflite", "onnx"]
    assert data["settings"]["batch_sizes"] == [1, 3]
    assert data["data"]["source"] == inputs["data"] and data["data"]["examples"] == 64
    assert len(data["data"]["digest"]) == 16 and data["data"]["calibration"] is None
    entries = {(r["model"], r["format"]): r for r in data["results"]}
    assert set(entries) == {
        (m, f) for m in ("teacher", "student") for f in ("tflite", "onnx", "numpy")
    }
    for (_, fmt), entry in entries.items():
        assert entry["error"] is None
        assert "samples_ms" not in entry  # raw samples only feed the plots
        for key in (
            "parameters",
            "size_bytes",
            "gzip_bytes",
            "peak_rss_bytes",
            "threads",
            "runtime_settings",
            "timed_call",
            "pid",
            "accuracy",
            "floor_ratio",
        ):
            assert key in entry, key
        assert entry["threads"] == 1
        for batch in ("1", "3"):
            stats = entry["latency"][batch]
            assert (
                stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"] <= stats["max_ms"]
            )
        if fmt == "numpy":
            assert entry["floor_ratio"] == {"1": 1.0, "3": 1.0}
    # Labels are the teacher's own predictions: every teacher runtime scores 1.0.
    assert {
        entries[("teacher", f)]["accuracy"] for f in ("tflite", "onnx", "numpy")
    } == {1.0}
    # Student/teacher ratio of every figure, per format.
    ratios = {row["format"]: row for row in data["ratios"]}
    assert set(ratios) == {"tflite", "onnx", "numpy"}
    onnx = ratios["onnx"]
    assert onnx["size_bytes"] == pytest.approx(
        entries[("student", "onnx")]["size_bytes"]
        / entries[("teacher", "onnx")]["size_bytes"]
    )
    assert onnx["latency"]["3"]["p99_ms"] == pytest.approx(
        entries[("student", "onnx")]["latency"]["3"]["p99_ms"]
        / entries[("teacher", "onnx")]["latency"]["3"]["p99_ms"]
    )
    assert onnx["parameters"] < 0.1  # 8 hidden units against 2x48
    best = data["best_fp32"]["student"]["1"]
    assert best["format"] in ("tflite", "onnx")
    assert best["floor_ratio"] == pytest.approx(best["p50_ms"] / best["floor_p50_ms"])
    assert data["command"].startswith("python -m export.report --teacher")


@pytest.mark.e2e
def test_every_runtime_is_timed_in_interleaved_windows_one_at_a_time(violated):
    """All runtimes of teacher and student share the same rounds, never timed at once."""
    _, output = violated
    with open(os.path.join(output, "report.json")) as handle:
        data = json.load(handle)
    rounds = data["settings"]["timing"]["rounds"]
    assert rounds == 5
    windows = []
    for entry in data["results"]:
        assert entry["timing"]["rounds"] == rounds
        assert entry["timing"]["interleaved_with"] == len(data["results"]) - 1
        assert len(entry["windows"]) == rounds * 2  # two batch sizes
        for batch in ("1", "3"):
            calls = sum(
                w["calls"] for w in entry["windows"] if str(w["batch_size"]) == batch
            )
            assert entry["latency"][batch]["iterations"] == calls
        windows += [(w["start_ns"], w["end_ns"]) for w in entry["windows"]]
    windows.sort()
    assert all(
        end <= start for (_, end), (start, _) in zip(windows, windows[1:], strict=False)
    )
    with open(os.path.join(output, "report.md")) as handle:
        markdown = handle.read()
    assert (
        "in 5 windows" in markdown
        and "timed one at a time in interleaved windows" in markdown
    )
    assert "## Thread search" in markdown
    assert "| student | ONNX Runtime | 1 |" in markdown


@pytest.mark.e2e
def test_budget_met_exits_0_and_json_only_prints_only_json(inputs):
    completed, output = _measure(
        inputs,
        "loose.json",
        json.dumps({"max_p99_ms": 10000, "max_size_mb": 100, "min_accuracy": 0.0}),
        formats="onnx",
        batch_sizes="2",
        json_only=True,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    data = json.loads(completed.stdout)  # the whole of stdout is one JSON document
    assert data["budget"] == {
        "limits": data["budget"]["limits"],
        "violations": [],
        "passed": True,
    }
    assert sorted(os.listdir(output)) == ["artifacts", "report.json"]
    with open(os.path.join(output, "report.json")) as handle:
        assert json.load(handle) == data
    assert "[" in completed.stderr and "done" in completed.stderr  # the progress bar


@pytest.mark.e2e
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--budget", "BUDGET:max_p99_ms: [1, 2\n"], "is not valid YAML"),
        (
            ["--budget", "BUDGET:max_p99_msec: 3\n"],
            "Received: unknown key(s) max_p99_msec",
        ),
        (
            ["--budget", "BUDGET:max_p99_ms: {8: 1}\n"],
            "batch size 8, which is not in --batch-sizes",
        ),
        (
            ["--budget", "BUDGET:max_size_mb: .nan\n"],
            "`max_size_mb` must be a finite number",
        ),
        (
            ["--budget", "BUDGET:max_p99_ms: {1: .inf}\n"],
            "`max_p99_ms[1]` must be a finite number",
        ),
        (["--budget", "BUDGET:min_accuracy: yes\n"], "`min_accuracy` must be a number"),
        (
            ["--budget", "BUDGET:max_size_mb: 1\nminimise: speed\n"],
            "`minimise` must be one of",
        ),
        (["--variants", "tflite_int4"], "`--variants` must be distinct names from"),
        (["--release-dir", "RELEASE"], "`--release-dir` must come with --budget"),
        (["--formats", "keras,pytorch"], "`--formats` must be distinct names from"),
        (["--batch-sizes", "0"], "`--batch-sizes` must be distinct positive integers"),
        (["--no-such-flag"], "Unknown command line flag 'no-such-flag'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(inputs, tmp_path, extra, message):
    extra = list(extra)
    for i, value in enumerate(extra):
        if value.startswith("BUDGET:"):
            extra[i] = write_text(str(tmp_path), "budget.yaml", value[len("BUDGET:") :])
        if value == "RELEASE":
            extra[i] = str(tmp_path / "release")
    output = str(tmp_path / "never")
    completed = run_report(
        report_arguments(inputs["teacher"], [inputs["student"]], output_dir=output)
        + extra,
        timeout=120,
    )
    assert completed.returncode == 2, completed.stderr
    assert message in one_error_line(completed)
    assert not os.path.exists(output)  # failed before doing any work


@pytest.mark.e2e
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_output_dir_that_cannot_be_created_is_usage_error(inputs):
    output = "/proc/kdkeras-report"  # /proc refuses new entries, even to root
    completed = run_report(
        report_arguments(
            inputs["teacher"],
            [inputs["student"]],
            labelled_data=inputs["data"],
            output_dir=output,
        ),
        timeout=120,
    )
    assert completed.returncode == 2, completed.stderr
    assert one_error_line(completed).startswith(
        "export.report: error: `--output-dir` must be a folder that can be created "
        f"and written. Received: --output-dir={output} ("
    )


@pytest.mark.e2e
def test_missing_teacher_is_usage_error(inputs, tmp_path):
    completed = run_report(
        report_arguments(str(tmp_path / "absent.keras"), [inputs["student"]]),
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip() == (
        "export.report: error: `--teacher` must be an existing .keras file or SavedModel "
        f"directory. Received: --teacher={tmp_path / 'absent.keras'}"
    )


def test_exit_status_reflects_failures_then_budget():
    ok = {"model": "student", "format": "onnx", "error": None}
    failed = {"model": "student", "format": "tflite", "error": "RuntimeError: boom"}
    floor_na = {
        "model": "teacher",
        "format": "numpy",
        "error": "not dense",
        "not_applicable": True,
    }
    passed, broken = (
        {"passed": True, "violations": []},
        {"passed": False, "violations": [{}]},
    )
    assert report_lib.exit_status({"results": [ok, floor_na], "budget": passed}) == 0
    assert report_lib.exit_status({"results": [ok], "budget": None}) == 0
    assert report_lib.exit_status({"results": [ok], "budget": broken}) == 1
    assert report_lib.exit_status({"results": [ok, failed], "budget": None}) == 1
    assert report_lib.exit_status({"results": [ok, failed], "budget": broken}) == 1


def test_convolutional_teacher_has_no_floor_row_but_the_report_succeeds(
    inputs, tmp_path
):
    keras.utils.set_random_seed(5)
    cnn = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    cnn_path = str(tmp_path / "cnn.keras")
    cnn.save(cnn_path)
    with np.load(inputs["data"]) as data:
        labelled = (data["x"], data["y"], "test data")
    report = report_lib.build_report(
        cnn_path,
        inputs["student"],
        str(tmp_path / "out"),
        formats=("tflite",),
        batch_sizes=(2,),
        labelled=labelled,
        threads=1,
        progress=False,
        timing={"min_time_s": 0.02, "min_iterations": 20, "max_time_s": 0.2},
    )
    floor = next(
        r
        for r in report["results"]
        if r["model"] == "teacher" and r["format"] == "numpy"
    )
    assert floor["not_applicable"] and "'conv' (Conv2D)" in floor["error"]
    assert report_lib.exit_status(report) == 0
    assert report["best_fp32"]["teacher"]["2"]["floor_ratio"] is None
    assert report["best_fp32"]["student"]["2"]["floor_ratio"] is not None
    assert [row["format"] for row in report["ratios"]] == [
        "tflite"
    ]  # no floor ratio row
    markdown = report_lib.render_markdown(report)
    assert (
        "| teacher | NumPy floor | – | – | – | – | – | – | n/a: model is not a dense network"
        in markdown
    )


def _alias_bomb(levels):
    """A budget of a few hundred bytes whose value expands to 9**levels strings."""
    items = ["&a0 [" + ",".join(["lol"] * 9) + "]"]
    for level in range(1, levels):
        items.append(f"&a{level} [{','.join([f'*a{level - 1}'] * 9)}]")
    return f"max_size_mb: [{', '.join(items)}]\n"


@pytest.mark.parametrize(
    "extra",
    [
        ["--runtime-options", "{" + "x" * 100_000],
        ["--variants", "v" * 100_000],
        ["--budget", "BUDGET:max_size_mb: " + "9" * 100 + "z" * 60_000 + "\n"],
        ["--budget", "BUDGET:" + _alias_bomb(5)],
    ],
    ids=["runtime-options", "variants", "long-value", "alias-bomb"],
)
def test_usage_errors_echo_user_input_bounded(inputs, tmp_path, extra):
    extra = list(extra)
    for i, value in enumerate(extra):
        if value.startswith("BUDGET:"):
            extra[i] = write_text(str(tmp_path), "budget.yaml", value[len("BUDGET:") :])
    completed = run_report(
        report_arguments(inputs["teacher"], [inputs["student"]]) + extra, timeout=120
    )
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert len(one_error_line(completed)) < 1200


@pytest.mark.parametrize("target", ["empty", "absent"])
def test_release_dir_link_is_a_usage_error_before_any_work(inputs, tmp_path, target):
    (tmp_path / "empty").mkdir()
    os.symlink(tmp_path / target, tmp_path / "release")
    output = str(tmp_path / "never")
    completed = run_report(
        report_arguments(inputs["teacher"], [inputs["student"]], output_dir=output)
        + ["--budget", write_text(str(tmp_path), "b.yaml", "max_size_mb: 100\n")]
        + ["--release-dir", str(tmp_path / "release")],
        timeout=120,
    )
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert "`--release-dir` must be a new or empty folder, not a symbolic link" in (
        one_error_line(completed)
    )
    assert not os.path.exists(output)
    assert os.path.islink(tmp_path / "release")


def test_a_late_release_failure_keeps_the_report(tmp_path, artifacts):
    from export.report import command
    from tests.export.test_report_choose import _release_report

    # The artifact changed since it was measured.
    report = _release_report(tmp_path, artifacts[1]["tflite"], digest="0" * 64)
    error = command.release_step(report, str(tmp_path / "release"))
    assert error.startswith("`--release-dir` was not written (")
    assert "changed after it was measured" in error
    assert report["release"]["error"] == error
    assert not os.path.exists(tmp_path / "release")
