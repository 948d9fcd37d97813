"""Running a module's command line in a subprocess, as a user would."""

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
