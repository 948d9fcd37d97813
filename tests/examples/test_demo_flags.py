"""Hostile flags of `python -m examples.demo`: exit 2 with one line naming the
flag, no traceback, before anything is loaded, trained or written."""

import os
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize(
    "argument, named",
    [
        ("--student=vit", "--student"),
        ("--augmented-copies=0", "--augmented-copies"),
        ("--augmented-copies=-1", "--augmented-copies"),
        ("--mixup=-1", "--mixup"),
        ("--mixup=nan", "--mixup"),
        ("--alpha=1.5", "--alpha"),
        ("--alpha=nan", "--alpha"),
        ("--temperature=0", "--temperature"),
        ("--temperature=nan", "--temperature"),
        ("--loss=ce", "--loss"),
        ("--student-learning-rate=nan", "--student-learning-rate"),
        ("--teacher-learning-rate=0", "--teacher-learning-rate"),
        ("--int8=maybe", "--int8"),
        ("--output-dir=", "--output-dir"),
        ("--no-such-flag=1", "no-such-flag"),
        ("positional", "positional arguments"),
    ],
)
def test_bad_flag_exits_2_in_one_line_before_training(argument, named, tmp_path):
    output_dir = tmp_path / "out"
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "examples.demo", f"--output-dir={output_dir}"]
        + [argument],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert time.perf_counter() - started < 60  # no data loaded, no training
    assert completed.returncode == 2, completed.stderr[-2000:]
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("examples.demo: error: "), lines
    assert named in lines[0]
    assert "Traceback" not in completed.stderr and not completed.stdout
    assert not output_dir.exists()
