"""A teacher format that fails does not sink the report.

The teacher's ONNX export is made to fail (as tf2onnx fails on some architectures):
every other format is measured, the failed one is marked with its one-line reason,
and the exit status depends on it only when the student's verdict does.
"""

import os

import numpy as np
import pytest

from export import pipeline
from export import report as report_lib
from export.report import budgets
from export.report import variants
from tests.export.report_cli import mlp

REASON = "tf2onnx cannot convert TF op(s) Mystery to ONNX (opset 15)"
TIMING = {"min_time_s": 0.02, "min_iterations": 20, "max_time_s": 0.2, "rounds": 1}


@pytest.fixture(scope="module")
def failed_teacher(tmp_path_factory):
    folder = tmp_path_factory.mktemp("failed_teacher")
    teacher, student = mlp((32,), 0), mlp((8,), 1)
    paths = {name: str(folder / f"{name}.keras") for name in ("teacher", "student")}
    teacher.save(paths["teacher"])
    student.save(paths["student"])
    x = np.random.default_rng(3).random((48, 6, 6, 1), dtype=np.float32)
    y = np.asarray(teacher(x, training=False)).argmax(axis=1)
    original = variants.export_verified

    def export_verified(model, fmt, path, *args, **kwargs):
        if fmt == "onnx" and os.path.basename(path).startswith("teacher"):
            raise pipeline.ConversionError(REASON)
        return original(model, fmt, path, *args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(variants, "export_verified", export_verified)
    try:
        report = report_lib.build_report(
            paths["teacher"],
            paths["student"],
            str(folder / "out"),
            formats=("keras", "onnx"),
            batch_sizes=(2,),
            labelled=(x, y, "test data"),
            threads=1,
            progress=False,
            timing=TIMING,
        )
    finally:
        patch.undo()
    return report


def entry(report, model, fmt):
    return next(
        r for r in report["results"] if r["model"] == model and r["format"] == fmt
    )


def test_every_other_format_is_measured(failed_teacher):
    failed = entry(failed_teacher, "teacher", "onnx")
    assert failed["error"] == f"ConversionError: {REASON}"
    assert entry(failed_teacher, "teacher", "keras")["accuracy"] == 1.0
    for fmt in ("keras", "onnx"):
        assert entry(failed_teacher, "student", fmt)["latency"]["2"]["p50_ms"] > 0


def test_the_failed_format_is_marked_with_its_reason(failed_teacher):
    markdown = report_lib.render_markdown(failed_teacher)
    assert f"FAILED: ConversionError: {REASON}" in markdown  # results table
    assert f"teacher FAILED: ConversionError: {REASON}" in markdown  # ratios table
    assert "teacher format(s) FAILED" in markdown
    rows = {row["format"]: row for row in failed_teacher["ratios"]}
    assert rows["onnx"]["teacher_error"].endswith(REASON)
    assert rows["keras"]["accuracy"] is not None


@pytest.mark.parametrize(
    "budget, status",
    [
        (None, 0),  # No verdict depends on the teacher.
        ({"max_size_mb": 100.0}, 0),  # The student's formats only.
        ({"max_accuracy_drop": 1.0}, 0),  # Against the teacher's .keras instead.
        ({"max_size_mb": 100.0, "model": "both"}, 1),  # The teacher is gated.
    ],
)
def test_exit_1_only_when_the_students_verdict_depends_on_it(
    failed_teacher, budget, status
):
    report = dict(failed_teacher)
    report["budget"] = None
    if budget is not None:
        parsed = budgets.parse_budget(budget)
        violations = budgets.check_budget(parsed, report["results"])
        report["budget"] = {"violations": violations, "passed": not violations}
    assert report_lib.exit_status(report) == status
