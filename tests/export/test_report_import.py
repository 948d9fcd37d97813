"""`python -m export.report --import=<module>`: a user's registered classes in the report.

The module registering the teacher's and student's class lives in the user's
folder (the report's working directory), outside the repository: the report
imports it, and so does every measurement process loading a `.keras` file
(started without the working directory on its path).
"""

import json

import numpy as np
import pytest

from tests.export import user_module
from tests.export.report_cli import FAST
from tests.export.report_cli import report_arguments
from tests.export.report_cli import run_report


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory):
    """The user's module, a teacher and a student of its class, labelled data."""
    folder = tmp_path_factory.mktemp("report_user")
    module = user_module.write_module(folder)
    teacher = user_module.save_trained(module, folder / "teacher.keras", width=16)
    user_module.save_trained(module, folder / "student.keras", width=4, seed=1)
    x, _ = user_module.data(48, seed=3)
    y = np.asarray(teacher(x, training=False)).argmax(axis=1)
    np.savez(folder / "labelled.npz", x=x, y=y)  # Teacher accuracy exactly 1.
    return folder


def arguments(folder, output, **flags):
    return report_arguments(
        str(folder / "teacher.keras"),
        [str(folder / "student.keras")],
        labelled_data=str(folder / "labelled.npz"),
        output_dir=str(output),
        **flags,
        **FAST,
    )


@pytest.mark.e2e
def test_report_measures_the_users_classes_in_every_format(user_folder):
    output = user_folder / "report"
    completed = run_report(
        cwd=user_folder,
        arguments=arguments(
            user_folder,
            output,
            formats="keras,onnx",
            batch_sizes="1",
            **{"import": "user_layers"},
        ),
    )
    assert completed.returncode == 0, completed.stderr
    with open(output / "report.json") as handle:
        data = json.load(handle)
    entries = {(r["model"], r["format"]): r for r in data["results"]}
    for role in ("teacher", "student"):
        for fmt in ("keras", "onnx"):
            entry = entries[(role, fmt)]
            assert entry["error"] is None, entry["error"]
            assert entry["latency"]["1"]["p50_ms"] > 0
    assert entries[("teacher", "keras")]["accuracy"] == 1.0
    assert entries[("teacher", "onnx")]["accuracy"] == 1.0
    assert "--import user_layers" in data["command"]


@pytest.mark.e2e
@pytest.mark.parametrize(
    "flags, message",
    [
        ({}, "--import"),  # Without it: the class is not found, the flag named.
        ({"import": "user_layers.py"}, "`--import` must be"),
        ({"import": "user_layers,not_installed_kd"}, "not_installed_kd"),
    ],
)
def test_import_problems_are_one_line_usage_errors(
    user_folder, tmp_path, flags, message
):
    output = tmp_path / "never"
    completed = run_report(
        cwd=user_folder,
        arguments=arguments(user_folder, output, formats="keras", **flags),
    )
    assert completed.returncode == 2, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("export.report: error:"), lines
    assert message in lines[0]
    assert not output.exists()
