"""Running a module's command line in a subprocess, as a user would, and what it printed."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_module(module, *args, cwd=REPO, timeout=300, env=None):
    """`python -m MODULE ARGS` in `cwd`, the repository's code on the path.

    Returns:
        The `subprocess.CompletedProcess`, its output captured as text.
    """
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": REPO, **(env or {})},
    )


def run_tool(tool, *args, env=None, cwd=REPO):
    """`python -m export.TOOL ARGS` in `cwd` (the repository's code on the path)."""
    return run_module(f"export.{tool}", *args, env=env, cwd=cwd)


def assert_refused(completed, tool, *keywords, code=2):
    """Exit 2 (bad input), one error line containing `keywords`, no traceback."""
    assert completed.returncode == code, completed.stderr
    assert "Traceback" not in completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(f"export.{tool}: error: ")]
    assert len(errors) == 1, completed.stderr
    others = [line for line in lines if line not in errors]
    assert all(line.startswith(f"export.{tool}: warning: ") for line in others), (
        completed.stderr
    )
    for keyword in keywords:
        assert keyword in errors[0], errors[0]
    assert completed.stdout == ""
