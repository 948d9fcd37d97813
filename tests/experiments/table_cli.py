"""Running an experiment's command line and reading its Markdown table."""

import os
import subprocess
import sys

from experiments import report

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


def quick_section(module, section, output, *arguments, timeout=600):
    """Runs `python -m module --quick arguments... --output=output` into a
    RESULTS.md that already holds another experiment's section, checks that
    the run succeeded and left that section alone, and returns the text of
    the run's own `section`."""
    output.write_text("# Results\n\n<!-- begin other -->\nkept\n<!-- end other -->\n")
    completed = run_experiment(
        module, "--quick", *arguments, f"--output={output}", timeout=timeout
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "kept" in output.read_text()  # other experiments' sections survive
    return report.read_section(str(output), section)
