"""Running an experiment's command line and reading its Markdown table."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_experiment(module, *arguments, timeout=600):
    """`python -m module arguments...` from the repository root, captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def table_rows(markdown, columns):
    """The body rows of the Markdown tables with `columns` cells, by name."""
    rows = {}
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == columns and cells[0] not in ("model", "---"):
            rows[cells[0]] = cells
    return rows
