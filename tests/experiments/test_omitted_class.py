"""Smoke test of `python -m experiments.omitted_class --quick`."""

import os
import re

import pytest

from experiments import omitted_class
from experiments import report
from tests.command_line import run_module

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quick_run_reports_the_class_before_and_after(tmp_path):
    output = tmp_path / "RESULTS.md"
    completed = run_module(
        "experiments.omitted_class",
        "--quick",
        "--limit-train=800",
        "--holdout=200",
        "--limit-test=300",
        f"--output={output}",
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    section = report.read_section(str(output), omitted_class.SECTION)
    assert "Omitted-class transfer: class 3 (Dress)" in section
    assert "never on the test set" in section
    rows = re.findall(
        r"^\| (distilled without 'Dress'|\+ bias [+-][\d.]+) \| (\d+) \| (\d+) \| "
        r"([\d.]+)% \| (\d+) \|$",
        section,
        re.M,
    )
    assert len(rows) == 2
    for _, errors, class_errors, accuracy, predicted in rows:
        assert 0 <= int(class_errors) <= int(errors) <= 300
        assert 0.0 <= float(accuracy) <= 100.0 and 0 <= int(predicted) <= 300
    shift = float(re.search(r"\*\*\+([\d.]+)\*\*", section).group(1))
    assert 0.0 <= shift <= 10.0
    # Raising the class's bias never lowers how often it is predicted.
    assert int(rows[1][4]) >= int(rows[0][4])
