"""The zoo's matrix: run the rows, render Markdown, update a BENCHMARKS.md section."""

import datetime
import os
import shutil
import tempfile
import time

from benchmarks.zoo import architectures
from benchmarks.zoo import steps

SECTION = "## Model zoo check: the architectures users bring"


def check_models(names):
    """Validates `--models` names; returns them as a tuple."""
    names = tuple(name.strip() for name in names if name.strip())
    unknown = [name for name in names if name not in architectures.ARCHITECTURES]
    if not names or unknown:
        shown = ",".join(unknown or names)[:80]
        raise ValueError(
            "`--models` must be a comma-separated subset of "
            f"{','.join(architectures.ARCHITECTURES)}. Received: --models={shown}"
        )
    return names


def run_zoo(names, work_dir=None, epochs=steps.EPOCHS, log=print, on_row=None):
    """Runs every step on each architecture named.

    Args:
        names: Architecture names (`architectures.ARCHITECTURES`).
        work_dir: Folder for the rows' files; default a temporary folder,
            removed at the end.
        epochs: Training and distillation epochs.
        log: Progress printer.
        on_row: Optional `result -> None`, called after each row with the
            result so far (to write the matrix as it grows).

    Returns:
        `{"epochs": epochs, "rows": {name: {"cells": {step: cell}, "notes":
        [...], "accuracy": {"teacher": a, "student": b}, "seconds": s}}}`.
    """
    names = check_models(names)
    owned = work_dir is None
    work_dir = tempfile.mkdtemp(prefix="kdkeras-zoo-") if owned else work_dir
    rows = {}
    try:
        for name in names:
            folder = os.path.join(work_dir, name)
            os.makedirs(folder, exist_ok=True)
            start = time.perf_counter()
            log(f"[zoo] {name} ...")
            cells, notes, accuracy = steps.run_row(
                architectures.ARCHITECTURES[name], folder, epochs=epochs, log=log
            )
            seconds = time.perf_counter() - start
            rows[name] = {
                "cells": cells,
                "notes": notes,
                "accuracy": accuracy,
                "seconds": seconds,
            }
            failed = {k: v for k, v in cells.items() if v != "ok"}
            log(
                f"[zoo] {name}: {len(cells) - len(failed)}/{len(cells)} ok "
                f"in {seconds:.0f} s"
            )
            for step, reason in failed.items():
                log(f"[zoo]   {step}: {reason}")
            if on_row is not None:
                on_row({"epochs": epochs, "rows": dict(rows)})
    finally:
        if owned:
            shutil.rmtree(work_dir, ignore_errors=True)
    return {"epochs": epochs, "rows": rows}


def render_matrix(result, command):
    """The matrix, its notes and legend as Markdown (the BENCHMARKS.md section).

    Args:
        result: `run_zoo`'s result; its `"epochs"` (default `steps.EPOCHS`)
            are the epochs the text states.
        command: The command line that made it.
    """
    epochs = result.get("epochs", steps.EPOCHS)
    headers = ["architecture", *steps.STEPS]
    lines = [
        f"| {' | '.join(headers)} |",
        f"|{'|'.join('---' for _ in headers)}|",
    ]
    for name, row in result["rows"].items():
        cells = [row["cells"].get(step, "") for step in steps.STEPS]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    notes = [
        f"- {name} ({row['seconds']:.0f} s): " + "; ".join(row["notes"])
        for name, row in result["rows"].items()
        if row["notes"]
    ]
    legend = [
        f"- {name}: {architectures.ARCHITECTURES[name].description}"
        for name in result["rows"]
    ]
    refusals = [
        f"- {name}, {step} (`{start}...`): {why}"
        for (name, step), (start, why) in steps.ALLOWED_REFUSALS.items()
    ] or ["- none"]
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            SECTION,
            "",
            f"Run {stamp} (2 cores, machine shared with other jobs: the seconds "
            "are wall time under that load). Command:",
            "",
            "```sh",
            command,
            "```",
            "",
            f"Each architecture: {architectures.IMAGE_SHAPE[0]}x"
            f"{architectures.IMAGE_SHAPE[1]}x{architectures.IMAGE_SHAPE[2]} images "
            f"(BERT: {architectures.SEQUENCE_LENGTH} tokens), "
            f"{architectures.CLASSES} classes, logits, weights=None, trained "
            f"{epochs} epochs{_longer_rows(result['rows'], epochs)} on "
            f"{steps.TRAIN_EXAMPLES} synthetic learnable examples; `distil` fits a fresh student (BERT: the 1-layer config) "
            "with `kdkeras.Distiller` from it; the exports take the distilled "
            f"student, verified against Keras on {steps.TEST_EXAMPLES} held-out "
            'examples; int8 runs with `float_fallback="auto"`; `report` is '
            f"`python -m export.report {' '.join(steps.REPORT_FLAGS)}` on the "
            "teacher and the student. A cell is ok or the one-line reason.",
            "",
            *lines,
            "",
            "Notes:",
            "",
            *notes,
            "",
            "Architectures:",
            "",
            *legend,
            "",
            "Documented refusals (accepted by the CI subset, "
            "tests/benchmarks/test_zoo.py):",
            "",
            *refusals,
            "",
        ]
    )


def write_section(path, section):
    """Replaces (or appends) the zoo's section of the Markdown file at `path`.

    The section runs from its `SECTION` heading to the next `## ` heading. The
    file is rewritten atomically (a temporary file beside it, then renamed).
    """
    text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    start = text.find(SECTION + "\n")
    if start < 0:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        tail = text[end + 1 :] if end >= 0 else ""
        text = text[:start] + section + ("\n" + tail if tail else "")
    if not text.endswith("\n"):
        text += "\n"
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".zoo-", suffix=".md")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _longer_rows(names, epochs):
    """` (bert_4to1: 6)`: the rows of `names` that train for more than `epochs`."""
    longer = [
        f"{name}: {architectures.ARCHITECTURES[name].epochs_multiplier * epochs}"
        for name in names
        if architectures.ARCHITECTURES[name].epochs_multiplier != 1
    ]
    return f" ({', '.join(longer)})" if longer else ""
