"""Build the report: export teacher and student, measure every runtime, compare.

`build_report` exports both models to each format (through `export.to_savedmodel`,
`export.to_tflite`, `export.to_onnx`, which verify parity before anything lands),
measures every artifact in its own subprocess with `export.measure` (all of them
in one interleaved run), adds the NumPy floor (a float32 NumPy forward pass of
the same weights, for dense networks), and returns the report dict that
`export.report.render` turns into Markdown, HTML and JSON. Every figure has its
student/teacher ratio.
"""

import datetime
import os
import time

from export import cli
from export import loading
from export import measure
from export.measure import environment
from export.report import budgets

FORMATS = ("keras", "savedmodel", "tflite", "onnx")
MODELS = ("teacher", "student")
SCHEMA_VERSION = 1


def export_verified(model, fmt, path):
    """Exports with the verified converters; returns their sidecar (parity etc.)."""
    if fmt == "savedmodel":
        from export.to_savedmodel import export_savedmodel

        result = export_savedmodel(model, path, overwrite=True)
    elif fmt == "tflite":
        from export.to_tflite import export_tflite

        result = export_tflite(model, path, quantize="none", overwrite=True)
    elif fmt == "onnx":
        from export.to_onnx import export_onnx

        result = export_onnx(model, path, overwrite=True)
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(f"cannot export format {fmt!r}")
    return {
        "sidecar_path": result.sidecar_path,
        "parity": result.sidecar.get("parity"),
    }


def artifact_path(directory, model_name, fmt):
    """Where `build_report` writes the artifact of `model_name` in `fmt`."""
    return os.path.join(
        directory,
        {
            "savedmodel": f"{model_name}_savedmodel",
            "tflite": f"{model_name}.tflite",
            "onnx": f"{model_name}.onnx",
            "numpy": f"{model_name}_dense_layers.npz",
        }[fmt],
    )


def build_report(
    teacher_path,
    student_path,
    output_dir,
    formats=FORMATS,
    batch_sizes=(1, 64),
    labelled=None,
    budget=None,
    threads=None,
    timing=None,
    progress=True,
    command=None,
    runtime_options=None,
    search_threads=("tflite", "onnx"),
):
    """Exports and measures teacher and student; returns the report dict.

    Args:
        teacher_path: `.keras` file (or SavedModel directory) of the teacher.
        student_path: `.keras` file (or SavedModel directory) of the student.
        output_dir: Folder for the exported artifacts (`artifacts/`).
        formats: Subset of `FORMATS` to export and measure.
        batch_sizes: Batch sizes to time.
        labelled: Optional `(x, y, source)` for test-set accuracy.
        budget: Optional budget from `export.budgets.load_budget`.
        threads: Threads per runtime; None: all available cores.
        timing: Optional dict of `export.measure.measure_artifacts` timing keywords
            (`min_time_s`, `min_iterations`, `max_time_s`, `warmup_s`, `rounds`).
        progress: Show a progress bar on stderr.
        command: The command line, recorded for reproduction.
        runtime_options: Optional `{format: options}` passed to `measure_artifact`
            (e.g. `{"onnx": {"allow_spinning": False}}`).
        search_threads: Formats measured with 1 and with `threads` threads, keeping the
            faster per batch size (`export.measure.best_of_threads`). The NumPy
            floor is always searched. TensorFlow formats are left out by default: each
            extra process pays TensorFlow's import (seconds).

    Returns:
        The report dict (see `report.json`); `samples_ms` stay in each result for the
        plots and are dropped from the JSON file.
    """
    started = time.perf_counter()
    threads = measure.available_threads() if threads is None else int(threads)
    machine = environment.describe_machine(threads)  # the load average at the start
    timing = dict(timing or {})
    artifacts = os.path.join(output_dir, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    sources = {"teacher": teacher_path, "student": student_path}
    models = {name: loading.load_model(path) for name, path in sources.items()}
    exports = len(MODELS) * (len(formats) + 1)
    settings_of_timing = timing_settings(timing)
    searched = set(search_threads) | {"numpy"}  # the floor is the reference: always searched
    bar = cli.Progress(exports) if progress else None  # the measurement's steps are added below
    x, y = (labelled[0], labelled[1]) if labelled else (None, None)
    results = []
    for name in MODELS:
        model = models[name]
        for fmt in tuple(formats) + ("numpy",):
            if bar:
                bar.step(f"{name} {fmt}: exporting")
            results.append(exported_entry(name, fmt, model, sources[name], artifacts))
            if bar:
                bar.advance()
    # Every runtime of both models in one interleaved measurement, so that the
    # student/teacher and floor ratios are taken under the same machine conditions.
    jobs, owners = [], []
    for entry in results:
        if entry.get("error"):
            continue
        fmt = entry["format"]
        counts = measure.thread_counts(threads) if fmt in searched else [threads]
        for count in counts:
            jobs.append((entry["artifact"], fmt, count, (runtime_options or {}).get(fmt)))
            owners.append(entry)
    if bar:  # loading the runtimes, the timing rounds, one finish per process
        bar.total = exports + 1 + settings_of_timing["rounds"] + len(jobs)
    outcomes = []
    if jobs:
        outcomes = measure.measure_artifacts(
            jobs, batch_sizes, x=x, y=y, on_step=(bar.next_step if bar else None), **timing
        )
    for entry in results:
        runs = [outcome for owner, outcome in zip(owners, outcomes) if owner is entry]
        if not runs:
            continue
        failed = [run for run in runs if isinstance(run, Exception)]
        if failed:
            entry["error"] = f"{type(failed[0]).__name__}: {loading.error_summary(failed[0])}"
            continue
        artifact = entry["artifact"]
        entry.update(measure.best_of_threads(runs) if entry["format"] in searched else runs[0])
        entry["artifact"] = artifact
    if bar:
        bar.finish()
    add_floor_ratios(results, batch_sizes)
    report = {
        "schema_version": SCHEMA_VERSION,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "environment": machine,
        "settings": {
            "formats": list(formats),
            "batch_sizes": [int(b) for b in batch_sizes],
            "threads": threads,
            "runtime_options": dict(runtime_options or {}),
            "thread_search": sorted(searched),
            "timing": settings_of_timing,
        },
        "data": {
            "source": labelled[2] if labelled else None,
            "examples": int(len(labelled[1])) if labelled else 0,
        },
        "models": {
            name: {"path": sources[name], "parameters": int(models[name].count_params())}
            for name in MODELS
        },
        "results": results,
        "ratios": ratios(results, formats, batch_sizes),
        "best_fp32": best_fp32(results, batch_sizes),
        "budget": None,
    }
    if budget is not None:
        violations = budgets.check_budget(budget, results)
        report["budget"] = {
            "limits": [list(row) for row in budgets.describe(budget)],
            "violations": violations,
            "passed": not violations,
        }
    report["environment"]["load_average_end"] = list(os.getloadavg())
    report["wall_time_s"] = time.perf_counter() - started
    return report


def exported_entry(name, fmt, model, source, artifacts):
    """Exports `model` to `fmt` (verified); returns its report entry, `artifact` set."""
    entry = {"model": name, "format": fmt, "error": None, "export": None}
    if fmt == "keras" and os.path.isdir(source):
        entry.update(error="the model was given as a SavedModel, not a .keras file", not_applicable=True)
        return entry
    try:
        if fmt == "keras":
            entry["artifact"] = source
        elif fmt == "numpy":
            try:
                layers = measure.dense_layers(model)
            except ValueError as error:
                entry.update(error=loading.error_summary(error), not_applicable=True)
                return entry
            entry["artifact"] = measure.save_dense_layers(layers, artifact_path(artifacts, name, fmt))
        else:
            entry["artifact"] = artifact_path(artifacts, name, fmt)
            entry["export"] = export_verified(model, fmt, entry["artifact"])
    except Exception as error:  # Recorded in the report; exit status 1.
        entry["error"] = f"{type(error).__name__}: {loading.error_summary(error)}"
    return entry


def timing_settings(timing):
    """The timing keywords of `measure_artifacts`, defaults filled in."""
    return {
        "min_time_s": timing.get("min_time_s", measure.DEFAULT_MIN_TIME_S),
        "min_iterations": timing.get("min_iterations", measure.DEFAULT_MIN_ITERATIONS),
        "max_time_s": timing.get("max_time_s", measure.DEFAULT_MAX_TIME_S),
        "warmup_s": timing.get("warmup_s", measure.DEFAULT_WARMUP_S),
        "rounds": timing.get("rounds", measure.DEFAULT_ROUNDS),
    }


def measured(entry):
    """Whether a report entry holds figures (no error, latency measured)."""
    return not entry.get("error") and "latency" in entry


def add_floor_ratios(results, batch_sizes):
    """Sets each entry's `floor_ratio`: its p50 over its model's NumPy floor p50."""
    floors = {
        r["model"]: r for r in results if r["format"] == "numpy" and measured(r)
    }
    for entry in results:
        floor = floors.get(entry["model"])
        if not measured(entry) or floor is None:
            entry["floor_ratio"] = None
            continue
        entry["floor_ratio"] = {
            str(b): entry["latency"][str(b)]["p50_ms"] / floor["latency"][str(b)]["p50_ms"]
            for b in batch_sizes
        }


def ratio(student, teacher):
    """`student / teacher`, None when either is missing or the teacher is 0."""
    if student is None or teacher is None or teacher == 0:
        return None
    return student / teacher


def ratios(results, formats, batch_sizes):
    """Student/teacher ratio of every figure, per format (NumPy floor included)."""
    by_key = {(r["model"], r["format"]): r for r in results}
    rows = []
    for fmt in tuple(formats) + ("numpy",):
        student, teacher = by_key.get(("student", fmt)), by_key.get(("teacher", fmt))
        if not student or not teacher or not measured(student) or not measured(teacher):
            continue
        row = {"format": fmt}
        for field in ("parameters", "size_bytes", "gzip_bytes", "peak_rss_bytes", "accuracy"):
            row[field] = ratio(student.get(field), teacher.get(field))
        row["latency"] = {
            str(b): {
                key: ratio(student["latency"][str(b)][key], teacher["latency"][str(b)][key])
                for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "throughput_sps")
            }
            for b in batch_sizes
        }
        rows.append(row)
    return rows


def best_fp32(results, batch_sizes):
    """Per model and batch size: the fastest runtime (p50) and its ratio to the floor."""
    best = {}
    for name in MODELS:
        floor = next(
            (r for r in results if r["model"] == name and r["format"] == "numpy" and measured(r)), None
        )
        candidates = [r for r in results if r["model"] == name and r["format"] != "numpy" and measured(r)]
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
