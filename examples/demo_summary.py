"""The demo's summary: one row per model, the goals of issue 15, the table.

`row` builds a model's line of `summary.json`, `report_figures` reads a
model's best runtime and file size from the sign-off report, `goals` says
which of the goals of issue 15 hold, and `format_table` prints the summary a
person takes in at a glance.
"""

MIN_PARAMETER_RATIO = 10.0
MIN_FLOPS_RATIO = 5.0
MIN_GAP_CLOSED = 0.40
MAX_INT8_ACCURACY_LOSS = 0.005
MIN_SPEEDUP = {"1": 2.0, "64": 5.0}
MAX_WALL_TIME_S = 360.0
FULL_TEST_SET = 10_000
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


def goals(summary, report, int8):
    """Each goal of issue 15: what was measured and whether it holds."""
    rows = summary["rows"]
    teacher = rows["teacher"]
    distilled = rows["student_distilled"]
    full = summary["test_examples"] == FULL_TEST_SET
    verdicts = []

    def add(goal, holds, measured):
        verdicts.append({"goal": goal, "holds": holds, "measured": measured})

    ratio = teacher["parameters"] / distilled["parameters"]
    add(
        f"student has >= {MIN_PARAMETER_RATIO:g}x fewer parameters",
        ratio >= MIN_PARAMETER_RATIO,
        f"{ratio:.1f}x",
    )
    ratio = teacher["flops"] / distilled["flops"]
    add(
        f"student has >= {MIN_FLOPS_RATIO:g}x fewer FLOPs per example",
        ratio >= MIN_FLOPS_RATIO,
        f"{ratio:.1f}x",
    )
    alone_errors = rows["student_alone"]["errors"]
    add(
        "distilled student makes fewer test errors than the student alone",
        distilled["errors"] < alone_errors if full else None,
        f"{distilled['errors']} vs {alone_errors}",
    )
    closed = summary["gap_closed"]
    add(
        f"distillation closes >= {MIN_GAP_CLOSED:.0%} of the gap",
        (closed is not None and closed >= MIN_GAP_CLOSED) if full else None,
        "no gap (student alone not worse than the teacher)"
        if closed is None
        else f"{closed:.1%}",
    )
    if int8 is None:
        add(
            "int8 student loses <= 0.5 pp against the fp32 student",
            None,
            "not measured (int8 export skipped or failed)",
        )
    else:
        loss = distilled["accuracy"] - rows["student_distilled_int8"]["accuracy"]
        add(
            "int8 student loses <= 0.5 pp against the fp32 student",
            loss <= MAX_INT8_ACCURACY_LOSS if full else None,
            f"{100 * loss:+.2f} pp",
        )
    for batch in BATCH_SIZES:
        goal = (
            f"student's best runtime >= {MIN_SPEEDUP[batch]:g}x faster "
            f"than the teacher's at batch {batch}"
        )
        if batch in teacher["p50_ms"] and batch in distilled["p50_ms"]:
            speedup = teacher["p50_ms"][batch] / distilled["p50_ms"][batch]
            add(goal, speedup >= MIN_SPEEDUP[batch], f"{speedup:.1f}x")
        else:
            add(goal, None, "not measured (report skipped or failed)")
    if report is not None and report.get("budget"):
        add(
            "student within its release budget (examples/budget.yaml)",
            bool(report["budget"].get("passed")),
            "; ".join(str(v) for v in report["budget"].get("violations", []))
            or "no violation",
        )
    add(
        f"whole demo under {MAX_WALL_TIME_S / 60:g} minutes",
        summary["wall_time_s"] < MAX_WALL_TIME_S,
        f"{summary['wall_time_s']:.0f} s"
        + ("" if summary["teacher_trained"] else " (teacher reused from cache)"),
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
    return "\n".join(lines)
