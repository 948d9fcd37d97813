"""Tests of `python -m experiments.less_data.probe` and its held-out split.

Its bad flags are tested with the experiment's in test_less_data.py.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from experiments import report
from experiments.less_data import probe as less_data_probe
from experiments.less_data import students as less_data_students
from experiments.less_data import subsets as less_data_subsets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*arguments):
    command = [sys.executable, "-m", "experiments.less_data.probe", *arguments]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("count", [1, 3, 9])
def test_hold_out_splits_off_the_last_examples(count):
    images = np.random.default_rng(0).normal(size=(10, 2, 2))
    labels = np.arange(10) % 3
    (x, y), (x_held, y_held) = less_data_subsets.hold_out(images, labels, count)
    assert len(y) == 10 - count and len(y_held) == count
    np.testing.assert_array_equal(np.concatenate([x, x_held]), images)
    np.testing.assert_array_equal(y_held, labels[10 - count :])


@pytest.mark.parametrize("count", [0, 10, -1])
def test_hold_out_refuses_an_empty_side(count):
    with pytest.raises(ValueError, match="`count` must be an int in \\[1, 9\\]"):
        less_data_subsets.hold_out(np.zeros(10), np.zeros(10), count)


@pytest.mark.e2e
def test_smoke_run_writes_one_row_per_probe(tmp_path):
    output = tmp_path / "RESULTS.md"
    completed = _run(
        "--quick",
        "--steps=3,4",
        "--temperatures=2,8",
        "--alphas=0.1",
        "--limit-train=500",
        "--validation=100",
        f"--output={output}",
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    section = report.read_section(str(output), less_data_probe.SECTION)
    assert "The last 100 training images are held out" in section
    assert "which uses the other 400" in section
    assert re.search(
        r"The highest held-out accuracy of \(c\): [34] steps, T=[28], alpha=0.1 ",
        section,
    )
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if re.match(r"\| \d+ \|", line)
    ]
    expected = []
    for steps in ("3", "4"):
        expected += [
            (steps, less_data_students.ALL_LABELS, "", ""),
            (steps, less_data_students.ALONE, "", ""),
            (steps, less_data_students.UNLABELLED_TOO, "2", "0.1"),
            (steps, less_data_students.UNLABELLED_TOO, "8", "0.1"),
        ]
    assert [tuple(row[:4]) for row in rows] == expected
    for index, row in enumerate(rows):
        assert 0 <= float(row[4]) <= 100
        if row[1] == less_data_students.UNLABELLED_TOO:
            full, alone = float(rows[index - index % 4][4]), None
            alone = float(rows[index - index % 4 + 1][4])
            if full > alone:
                share = (float(row[4]) - alone) / (full - alone)
                assert float(row[5].rstrip("%")) == pytest.approx(100 * share, abs=0.1)
        else:
            assert row[5] == ""
