"""The demo's summary: one row per model, the goals, the table.

`row` builds a model's line of `summary.json`, `report_figures` reads a
model's best runtime and file size from the sign-off report, `variant_p50` a
quantised variant's latency, `released` the file the report released,
`goals` says which of the demo's goals hold, and `format_table` prints the
summary a person takes in at a glance. A goal whose figure is missing, NaN or not
comparable (a slice of the data, a cached teacher for the wall time) is not
judged (`holds` None), never reported as holding.
"""

import json
import math
import numbers
import os

MIN_PARAMETER_RATIO = 10.0
MIN_FLOPS_RATIO = 5.0
MIN_GAP_CLOSED = 0.40
MAX_INT8_ACCURACY_LOSS = 0.005
MIN_SPEEDUP = {"1": 2.0, "64": 5.0}
#: The whole demo's wall time: when it trains its teacher, and reusing it.
MAX_WALL_TIME_S = {True: 480.0, False: 300.0}
FULL_TEST_SET = 10_000
FULL_TRAIN_SET = 60_000
BATCH_SIZES = ("1", "64")
ROWS = (
    ("teacher", "teacher (CNN)"),
    ("student_alone", "student alone"),
    ("student_distilled", "student distilled"),
    ("student_distilled_int8", "distilled, int8 TFLite"),
)


def report_figures(report, name):
    """Best-runtime p50 per batch size and TFLite size of one report model."""
    best = (report or {}).get("best_fp32", {}).get(name, {})
    p50 = {b: best[b]["p50_ms"] for b in BATCH_SIZES if b in best}
    runtime = {b: best[b]["format"] for b in BATCH_SIZES if b in best}
    size = None
    for result in (report or {}).get("results", []):
        if (
            result.get("model") == name
            and result.get("format") == "tflite"
            and result.get("size_bytes")
        ):
            size = int(result["size_bytes"])
    return p50, runtime, size


def variant_p50(report, name, variant):
    """p50 per batch size of a quantised variant in the report, or None."""
    for result in (report or {}).get("results", []):
        if result.get("model") == name and result.get("variant") == variant:
            latency = result.get("latency") or {}
            p50 = {
                b: latency[b]["p50_ms"]
                for b in BATCH_SIZES
                if _number((latency.get(b) or {}).get("p50_ms")) is not None
            }
            return p50 or None
    return None


def released(report):
    """The file the sign-off report released, and why; None if none.

    Read from the report's `release` and the `release.json` it wrote beside
    the released copy.
    """
    release = (report or {}).get("release") or {}
    winner, written = release.get("winner"), release.get("written")
    if not winner or not written or not os.path.exists(written):
        return None
    with open(written) as file:
        record = json.load(file)
    return {
        "file": os.path.join(os.path.dirname(written), record["artifact"]),
        "label": winner["label"],
        "variant": winner["variant"],
        "format": winner["format"],
        "objective": release["objective"],
        "value": winner["value"],
        "candidates": len(release.get("candidates", [])),
        "release_json": written,
    }


def row(
    parameters,
    flops,
    errors,
    test_examples,
    size=None,
    p50=None,
    runtime=None,
    train_seconds=None,
):
    errors = int(errors)
    return {
        "parameters": int(parameters),
        "flops": flops,
        "errors": errors,
        "correct": test_examples - errors,
        "accuracy": (test_examples - errors) / test_examples,
        "tflite_bytes": size,
        "p50_ms": p50 or {},
        "runtime": runtime or {},
        "train_seconds": train_seconds,
    }


def _number(value):
    """`value` as a float if it is a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _ratio(numerator, denominator):
    """`numerator / denominator` of two finite positive numbers, else None."""
    numerator, denominator = _number(numerator), _number(denominator)
    if numerator is None or denominator is None or min(numerator, denominator) <= 0:
        return None
    return numerator / denominator


def goals(summary, report, int8):
    """Each goal of the demo: what was measured and whether it holds.

    `holds` is True or False when the figures bear the verdict out, None
    when they cannot (missing or NaN figures; accuracy goals on a slice of
    the test set; a wall time under the limit from a cached teacher or a
    slice of the training set).
    """
    rows = summary["rows"]
    teacher = rows["teacher"]
    distilled = rows["student_distilled"]
    full = summary["test_examples"] == FULL_TEST_SET
    verdicts = []

    def add(goal, holds, measured):
        verdicts.append({"goal": goal, "holds": holds, "measured": measured})

    def add_ratio(goal, ratio, minimum, missing):
        if ratio is None:
            add(goal, None, missing)
        else:
            add(goal, ratio >= minimum, f"{ratio:.1f}x")

    add_ratio(
        f"student has >= {MIN_PARAMETER_RATIO:g}x fewer parameters",
        _ratio(teacher["parameters"], distilled["parameters"]),
        MIN_PARAMETER_RATIO,
        "not measured (parameter count missing)",
    )
    add_ratio(
        f"student has >= {MIN_FLOPS_RATIO:g}x fewer FLOPs per example",
        _ratio(teacher["flops"], distilled["flops"]),
        MIN_FLOPS_RATIO,
        "not measured (FLOPs missing)",
    )
    alone_errors = rows["student_alone"]["errors"]
    add(
        "distilled student makes fewer test errors than the student alone",
        distilled["errors"] < alone_errors if full else None,
        f"{distilled['errors']} vs {alone_errors}",
    )
    closed = _number(summary["gap_closed"])
    if alone_errors <= teacher["errors"]:
        holds, measured = False, "no gap (student alone not worse than the teacher)"
    elif closed is None:
        holds, measured = None, "not measured (gap fraction missing)"
    else:
        holds, measured = closed >= MIN_GAP_CLOSED, f"{closed:.1%}"
    add(
        f"distillation closes >= {MIN_GAP_CLOSED:.0%} of the gap",
        holds if full else None,
        measured,
    )
    int8_goal = "int8 student loses <= 0.5 pp against the fp32 student"
    int8_row = rows.get("student_distilled_int8")
    loss = None
    if int8 is not None and int8_row is not None:
        loss = _number(distilled["accuracy"] - int8_row["accuracy"])
    if loss is None:
        add(int8_goal, None, "not measured (int8 export skipped or failed)")
    else:
        add(
            int8_goal,
            loss <= MAX_INT8_ACCURACY_LOSS if full else None,
            f"{100 * loss:+.2f} pp",
        )
    for batch in BATCH_SIZES:
        add_ratio(
            f"student's best runtime >= {MIN_SPEEDUP[batch]:g}x faster "
            f"than the teacher's at batch {batch}",
            _ratio(teacher["p50_ms"].get(batch), distilled["p50_ms"].get(batch)),
            MIN_SPEEDUP[batch],
            "not measured (report skipped or failed)",
        )
    if report is not None and report.get("release") is not None:
        release = summary.get("released")
        add(
            "a variant of the student meets its release budget "
            "(examples/budget.yaml) and is released",
            release is not None,
            f"{release['label']}: {release['file']}"
            if release
            else "no variant meets the budget",
        )
    elif report is not None and report.get("budget"):
        add(
            "student within its release budget (examples/budget.yaml)",
            report["budget"].get("passed") is True,
            "; ".join(str(v) for v in report["budget"].get("violations", []))
            or "no violation",
        )
    trained = bool(summary["teacher_trained"])
    limit = MAX_WALL_TIME_S[trained]
    wall_time = _number(summary["wall_time_s"])
    whole = summary.get("train_examples") == FULL_TRAIN_SET and full
    if wall_time is None:
        holds, measured = None, "not measured"
    else:
        # Over the limit is borne out by any run; under it, only by a run on
        # all the data.
        holds = False if wall_time >= limit else (True if whole else None)
        teacher_seconds = _number(summary.get("teacher_train_seconds"))
        measured = f"{wall_time:.0f} s"
        if teacher_seconds is not None:
            measured += f" (of which the teacher {teacher_seconds:.0f} s)"
        if not whole:
            measured += " (on a slice of the data)"
    add(
        f"whole demo under {limit / 60:g} minutes "
        + ("training its teacher" if trained else "reusing its teacher"),
        holds,
        measured,
    )
    return verdicts


def format_table(summary):
    """The summary as a fixed-width text table, one line per model."""
    rows = summary["rows"]

    def cell(value, fmt):
        width = int(fmt.split(".")[0])
        return "-".rjust(width) if value is None else format(value, fmt)

    header = (
        f"{'model':24s} {'params':>8s} {'TFLite MB':>9s} {'errors':>6s} "
        f"{'accuracy':>8s} {'p50 ms @1':>9s} {'p50 ms @64':>10s}"
    )
    lines = [header, "-" * len(header)]
    for key, label in ROWS:
        if key not in rows:
            continue
        model = rows[key]
        size = None if model["tflite_bytes"] is None else model["tflite_bytes"] / 1e6
        lines.append(
            f"{label:24s} {model['parameters']:8,d} {cell(size, '9.3f')} "
            f"{model['errors']:6d} {model['accuracy']:8.4f} "
            f"{cell(model['p50_ms'].get('1'), '9.4f')} "
            f"{cell(model['p50_ms'].get('64'), '10.4f')}"
        )
    closed = summary["gap_closed"]
    lines.append(
        f"Distillation closed {'-' if closed is None else f'{closed:.1%}'} of "
        f"the student-alone -> teacher gap ({summary['test_examples']:,d} "
        "test images; p50 = the fastest runtime's median latency)."
    )
    if summary.get("seeds_note"):
        lines.append(summary["seeds_note"][0].upper() + summary["seeds_note"][1:] + ".")
    release = summary.get("released")
    if release:
        lines.append(
            f"Released: {release['file']} ({release['label']}: the lowest "
            f"{release['objective']} of the {release['candidates']} variants "
            "measured, within examples/budget.yaml)."
        )
    return "\n".join(lines)
