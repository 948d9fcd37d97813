"""The results table as Markdown: rows, the gap closed, notes.

`render_markdown` turns `table_runs.run`'s rows and info into the RESULTS.md
section; `gap_closed` is the fraction of the student->teacher error gap that
distillation closed.
"""

import datetime
import os
import platform

from experiments.report import mean_std


def gap_closed(alone_errors, distilled_errors, teacher_errors):
    """Fraction of the student→teacher error gap closed by distillation.

    `(alone - distilled) / (alone - teacher)`; None when the teacher is not
    better than the student alone (no gap to close).

    Example:

    >>> round(gap_closed(146, 74, 67), 2)  # Hinton et al. 2015, MNIST
    0.91
    """
    gap = alone_errors - teacher_errors
    if gap <= 0:
        return None
    return (alone_errors - distilled_errors) / gap


def header_lines(title, info, command):
    """A table section's title, command, machine and recipe lines."""
    import keras
    import tensorflow as tf

    partial = []
    if len(info["seeds"]) < len(info["all_seeds"]):
        partial = [
            f"**Partial results: {len(info['seeds'])} of "
            f"{len(info['all_seeds'])} seeds finished; the run is still going.**",
            "",
        ]
    return [
        f"## {title}",
        "",
        *partial,
        f"Reproduce with `{command}`",
        f"(written {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"{platform.machine()} with {os.cpu_count()} CPUs, shared with other "
        "jobs, so times are indicative).",
        "",
        f"Data: {info['train_size']} training and {info['test_size']} test "
        "examples. Students: "
        f"{info['student_recipe'].describe()}; seeds "
        f"{', '.join(map(str, info['seeds']))} (mean ± std over seeds). "
        f"Teachers: {_teacher_text(info['teacher_recipe'])}.",
        "",
    ]


def row_gap_closed(row, by_name):
    """The gap-closed cell of `row`: its student alone against its teacher."""
    if row.teacher:
        closed = gap_closed(
            by_name[row.alone].mean_errors,
            row.mean_errors,
            by_name[row.teacher].mean_errors,
        )
        return "n/a (teacher not better)" if closed is None else f"{closed:.0%}"
    if row.name == row.alone:
        return "0% (reference)"
    return "—"


def per_seed_and_notes_lines(rows, info):
    """The per-seed errors and the notes on caching, keras and processes."""
    lines = ["", "Per-seed test errors:", ""]
    for row in rows:
        lines.append(f"- {row.name}: {', '.join(map(str, row.errors))}")
    augmentation_note = (
        "- Every epoch all students see the same shifted/mirrored copy of the "
        "training set, and the teacher's soft targets are computed on exactly "
        "those images (consistent augmentation)."
        if info["student_recipe"].augment
        else "- No augmentation: every epoch uses the original training images."
    )
    lines += [
        "",
        "Notes:",
        "",
        augmentation_note,
        "- kdkeras reads the teacher's logits from a cache computed once "
        + ("per epoch " if info["student_recipe"].augment else "")
        + "for all seeds "
        f"({info['single_cache_seconds']:.0f} s for the "
        f"{info.get('teacher_label', 'CNN')} teacher"
        + (
            f", {info['cache_seconds']:.0f} s including the ensemble members"
            if info["cache_seconds"] > info["single_cache_seconds"]
            else ""
        )
        + "; not in the training-time column). keras.distillation cannot take cached "
        "soft targets and runs the teacher on every batch.",
        "- keras.distillation is configured correctly: "
        "`LogitsDistillation(temperature=T, loss=keras.losses.KLDivergence())` "
        "and a from-logits cross-entropy instance as the student loss, "
        "`student_loss_weight=alpha`.",
    ]
    if info.get("parallel"):
        jobs, threads = info["parallel"]
        lines.append(
            f"- Seeds ran {jobs} at a time, each in its own process with "
            f"{threads} TensorFlow thread{'s' if threads > 1 else ''} "
            "(`--jobs`), so a row's training time is per process."
        )
    if info["teachers_cached"]:
        lines.append(
            "- Teachers were loaded from `--cache-dir` (trained by an earlier "
            "run with the same settings) or `--teacher-file`, so teacher times "
            "are not shown."
        )
    return lines


def render_markdown(rows, info, command):
    """RESULTS.md text for `rows` (from `table_runs.run`)."""
    by_name = {row.name: row for row in rows}
    lines = header_lines(
        "Distillation on Fashion-MNIST: the results table", info, command
    ) + [
        "| model | how | test errors | parameters | training time (s) | gap closed |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        seconds = mean_std(row.seconds) if row.seconds else "cached"
        errors = mean_std(row.errors, 1 if len(row.errors) > 1 else 0)
        lines.append(
            f"| {row.name} | {row.description} | {errors} "
            f"| {row.parameters:,} | {seconds} | {row_gap_closed(row, by_name)} |"
        )
    lines += [
        "",
        "Gap closed = (student alone − distilled) / (student alone − its "
        "teacher), on mean test errors; the ensemble student is measured "
        "against the ensemble.",
    ]
    lines += per_seed_and_notes_lines(rows, info)
    return "\n".join(lines) + "\n"


def _teacher_text(recipe):
    text = recipe.describe()
    return text.rsplit(", T=", 1)[0]
