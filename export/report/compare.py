"""Comparisons within a measured report: ratios, the floor, parity, Pareto fronts.

`measured` says whether an entry holds figures; `ratios` gives every
student/teacher ratio, `add_floor_ratios` each runtime against its model's NumPy
floor, `best_fp32` the fastest float runtime per model, `held_out_parity` a
runtime's outputs against Keras', and `add_pareto` the fronts each variant is on.
"""

import numpy as np

from export.report import choose


def held_out_parity(outputs, reference, source):
    """Max abs diff and top-1 agreement of a runtime's outputs with Keras'."""
    outputs = np.asarray(outputs, np.float64).reshape(len(reference), -1)
    reference = np.asarray(reference, np.float64).reshape(len(reference), -1)
    finite = bool(np.all(np.isfinite(outputs)))
    return {
        "inputs": source,
        "examples": int(len(reference)),
        "max_abs_diff": float(np.max(np.abs(outputs - reference)))
        if finite
        else float("inf"),
        "top1_agreement": float(np.mean(outputs.argmax(1) == reference.argmax(1))),
        "reference": "Keras tf.function(model(x, training=False)) in the report's process",
    }


def add_pareto(results, batch_sizes):
    """Sets `pareto` on each measured entry: the fronts it is on.

    Fronts: accuracy (maximised) against p99 latency at each batch size, and against
    size on disk; every measured runtime but the NumPy floor takes part.
    """
    points, entries = [], []
    for entry in results:
        if not measured(entry) or entry["format"] == "numpy":
            continue
        accuracy = entry.get("accuracy")
        point = {
            "loss": None if accuracy is None else -accuracy,
            "size": entry.get("size_bytes"),
        }
        for b in batch_sizes:
            point[f"p99@{b}"] = entry["latency"][str(b)]["p99_ms"]
        points.append(point)
        entries.append(entry)
    fronts = {f"p99_ms@{b}": ("loss", f"p99@{b}") for b in batch_sizes}
    fronts["size_mb"] = ("loss", "size")
    for entry in entries:
        entry["pareto"] = []
    for front, keys in fronts.items():
        for entry, on in zip(entries, choose.pareto_front(points, keys), strict=True):
            if on:
                entry["pareto"].append(front)


def measured(entry):
    """Whether a report entry holds figures (no error, latency measured)."""
    return not entry.get("error") and "latency" in entry


def add_floor_ratios(results, batch_sizes):
    """Sets each entry's `floor_ratio`: its p50 over its model's NumPy floor p50."""
    floors = {r["model"]: r for r in results if r["format"] == "numpy" and measured(r)}
    for entry in results:
        floor = floors.get(entry["model"])
        if not measured(entry) or floor is None:
            entry["floor_ratio"] = None
            continue
        entry["floor_ratio"] = {
            str(b): entry["latency"][str(b)]["p50_ms"]
            / floor["latency"][str(b)]["p50_ms"]
            for b in batch_sizes
        }


def ratio(student, teacher):
    """`student / teacher`, None when either is missing or the teacher is 0."""
    if student is None or teacher is None or teacher == 0:
        return None
    return student / teacher


def ratios(results, formats, batch_sizes):
    """Student/teacher ratio of every figure, per student and format (floor included)."""
    by_key = {
        (r["model"], r["format"]): r
        for r in results
        if r.get("quantize", "none") == "none"
    }
    students = []
    for r in results:
        if r.get("role", r["model"]) == "student" and r["model"] not in students:
            students.append(r["model"])
    rows = []
    for name in students:
        for fmt in tuple(formats) + ("numpy",):
            student, teacher = by_key.get((name, fmt)), by_key.get(("teacher", fmt))
            if (
                student
                and teacher
                and measured(student)
                and teacher.get("error")
                and not teacher.get("not_applicable")
            ):
                rows.append(
                    {"model": name, "format": fmt, "teacher_error": teacher["error"]}
                )
                continue
            if (
                not student
                or not teacher
                or not measured(student)
                or not measured(teacher)
            ):
                continue
            row = {"model": name, "format": fmt}
            for field in (
                "parameters",
                "size_bytes",
                "gzip_bytes",
                "peak_rss_bytes",
                "accuracy",
            ):
                row[field] = ratio(student.get(field), teacher.get(field))
            row["latency"] = {
                str(b): {
                    key: ratio(
                        student["latency"][str(b)][key], teacher["latency"][str(b)][key]
                    )
                    for key in (
                        "p50_ms",
                        "p90_ms",
                        "p99_ms",
                        "max_ms",
                        "throughput_sps",
                    )
                }
                for b in batch_sizes
            }
            rows.append(row)
    return rows


def best_fp32(results, batch_sizes):
    """Per model and batch size: the fastest float runtime (p50) and its ratio to the floor."""
    best = {}
    names = []
    for r in results:
        if r["model"] not in names:
            names.append(r["model"])
    for name in names:
        floor = next(
            (
                r
                for r in results
                if r["model"] == name and r["format"] == "numpy" and measured(r)
            ),
            None,
        )
        candidates = [
            r
            for r in results
            if r["model"] == name
            and r["format"] != "numpy"
            and measured(r)
            and r.get("quantize", "none") == "none"
        ]
        per_batch = {}
        for b in batch_sizes:
            if not candidates:
                continue
            winner = min(candidates, key=lambda r: r["latency"][str(b)]["p50_ms"])
            p50 = winner["latency"][str(b)]["p50_ms"]
            floor_p50 = floor["latency"][str(b)]["p50_ms"] if floor else None
            per_batch[str(b)] = {
                "format": winner["format"],
                "p50_ms": p50,
                "floor_p50_ms": floor_p50,
                "floor_ratio": ratio(p50, floor_p50),
                "threads": winner["latency"][str(b)].get("threads", winner["threads"]),
                "runtime_settings": winner["runtime_settings"],
            }
        best[name] = per_batch
    return best
