"""Runs `python -m export.report` as a user would, for the report's tests."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_report(arguments, timeout=900):
    """`python -m export.report ARGUMENTS` from the repository root."""
    environment = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "export.report", *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=timeout,
    )


def write_text(folder, name, text):
    """Writes `text` to `folder/name` (a budget file); returns its path."""
    path = os.path.join(folder, name)
    with open(path, "w") as handle:
        handle.write(text)
    return path
