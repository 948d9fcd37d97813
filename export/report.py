"""Teacher against student, in every format: a report a team can sign off for production.

    python -m export.report --teacher teacher.keras --student student.keras \\
        [--formats keras,savedmodel,tflite,onnx] [--batch-sizes 1,64] \\
        [--budget budget.yaml] [--output-dir report/] [--json-only] \\
        [--labelled-data test.npz] [--threads N]

Exports both models to each format (through `export.to_savedmodel`, `export.to_tflite`,
`export.to_onnx`, which verify parity before anything lands), measures every artifact in
its own subprocess with `export.measure`, adds the NumPy floor (a float32 NumPy forward
pass of the same weights, for dense networks), and writes `report.md`, `report.json` and
`report.html` (latency distributions and accuracy versus latency, PNGs embedded) into
`--output-dir`. Every figure has its student/teacher ratio.

Exit status: 0 all budgets met; 1 a budget was violated (the violations are listed in the
report and on stderr); 2 usage error (bad flag, unreadable budget or data); 3 an export or
a measurement failed (the report is still written, with the error in place of the figures).
Errors are one line on stderr, without a traceback unless `--verbose`.
"""

import base64
import datetime
import html
import io
import json
import os
import platform
import shlex
import sys
import time

import numpy as np

from export import budgets as budgets_lib
from export import measure
from export.measure.worker import REWARM_S

PROGRAM = "export.report"
FORMATS = ("keras", "savedmodel", "tflite", "onnx")
MODELS = ("teacher", "student")
EXIT_OK, EXIT_BUDGET, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
SCHEMA_VERSION = 1
FORMAT_NAMES = {
    "keras": "Keras (.keras)",
    "savedmodel": "SavedModel",
    "tflite": "TFLite (LiteRT)",
    "onnx": "ONNX Runtime",
    "numpy": "NumPy floor",
}


class UsageError(ValueError):
    """Bad command-line input (exit status 2)."""


# ----------------------------------------------------------------------- progress


class Progress:
    """A minimal progress bar on stderr (never stdout, so `--json-only` stays clean)."""

    def __init__(self, total, stream=None, width=24):
        self.total, self.done, self.width = total, 0, width
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._running = False

    def step(self, label):
        """Announces the step now starting."""
        self._draw(label)

    def advance(self):
        self.done += 1

    def next_step(self, label):
        """Marks the running step done (if any) and announces the next."""
        if self._running:
            self.done += 1
        self._running = True
        self._draw(label)

    def finish(self):
        if self._running:
            self.done += 1
            self._running = False
        self._draw("done")
        if self.interactive:
            self.stream.write("\n")
        self.stream.flush()

    def _draw(self, label):
        filled = int(self.width * self.done / max(self.total, 1))
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        line = f"[{bar}] {self.done}/{self.total} {elapsed:5.1f}s {label}"
        if self.interactive:
            self.stream.write("\r" + line.ljust(100))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


# ----------------------------------------------------------------------- building


def _export(model, fmt, path, labelled):
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


def _artifact_path(directory, model_name, fmt):
    return os.path.join(
        directory,
        {
            "savedmodel": f"{model_name}_savedmodel",
            "tflite": f"{model_name}.tflite",
            "onnx": f"{model_name}.onnx",
            "numpy": f"{model_name}_dense_layers.npz",
        }[fmt],
    )


def _one_line(error):
    text = " ".join(next((l for l in str(error).splitlines() if l.strip()), "").split())
    return text or type(error).__name__


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
    from export.loading import load_model

    started = time.perf_counter()
    load_start = os.getloadavg()
    threads = measure.available_threads() if threads is None else int(threads)
    timing = dict(timing or {})
    artifacts = os.path.join(output_dir, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    sources = {"teacher": teacher_path, "student": student_path}
    models = {name: load_model(path) for name, path in sources.items()}
    exports = len(MODELS) * (len(formats) + 1)
    timing_settings = _timing_settings(timing)
    searched = set(search_threads) | {"numpy"}  # the floor is the reference: always searched
    bar = Progress(exports) if progress else None  # the measurement's steps are added below
    x, y = (labelled[0], labelled[1]) if labelled else (None, None)
    results = []
    for name in MODELS:
        model = models[name]
        for fmt in tuple(formats) + ("numpy",):
            if bar:
                bar.step(f"{name} {fmt}: exporting")
            results.append(_exported_entry(name, fmt, model, sources[name], artifacts, labelled))
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
        bar.total = exports + 1 + timing_settings["rounds"] + len(jobs)
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
            entry["error"] = f"{type(failed[0]).__name__}: {_one_line(failed[0])}"
            continue
        artifact = entry["artifact"]
        entry.update(measure.best_of_threads(runs) if entry["format"] in searched else runs[0])
        entry["artifact"] = artifact
    if bar:
        bar.finish()
    _add_floor_ratios(results, batch_sizes)
    report = {
        "schema_version": SCHEMA_VERSION,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "environment": _environment(threads, load_start),
        "settings": {
            "formats": list(formats),
            "batch_sizes": [int(b) for b in batch_sizes],
            "threads": threads,
            "runtime_options": dict(runtime_options or {}),
            "thread_search": sorted(searched),
            "timing": timing_settings,
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
        "ratios": _ratios(results, formats, batch_sizes),
        "best_fp32": _best_fp32(results, batch_sizes),
        "budget": None,
    }
    if budget is not None:
        violations = budgets_lib.check_budget(budget, results)
        report["budget"] = {
            "limits": [list(row) for row in budgets_lib.describe(budget)],
            "violations": violations,
            "passed": not violations,
        }
    report["environment"]["load_average_end"] = list(os.getloadavg())
    report["wall_time_s"] = time.perf_counter() - started
    return report


def _exported_entry(name, fmt, model, source, artifacts, labelled):
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
                entry.update(error=_one_line(error), not_applicable=True)
                return entry
            entry["artifact"] = measure.save_dense_layers(layers, _artifact_path(artifacts, name, fmt))
        else:
            entry["artifact"] = _artifact_path(artifacts, name, fmt)
            entry["export"] = _export(model, fmt, entry["artifact"], labelled)
    except Exception as error:  # recorded in the report; exit status 3
        entry["error"] = f"{type(error).__name__}: {_one_line(error)}"
    return entry


def _timing_settings(timing):
    return {
        "min_time_s": timing.get("min_time_s", measure.DEFAULT_MIN_TIME_S),
        "min_iterations": timing.get("min_iterations", measure.DEFAULT_MIN_ITERATIONS),
        "max_time_s": timing.get("max_time_s", measure.DEFAULT_MAX_TIME_S),
        "warmup_s": timing.get("warmup_s", measure.DEFAULT_WARMUP_S),
        "rounds": timing.get("rounds", measure.DEFAULT_ROUNDS),
    }


def _environment(threads, load_start):
    from importlib import metadata

    versions = {}
    for package in ("tensorflow", "keras", "onnxruntime", "ai-edge-litert", "numpy", "tf2onnx"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores_available": measure.available_threads(),
        "threads_per_runtime": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "load_average_start": list(load_start),
    }


def _ok(entry):
    return not entry.get("error") and "latency" in entry


def _add_floor_ratios(results, batch_sizes):
    floors = {
        r["model"]: r for r in results if r["format"] == "numpy" and _ok(r)
    }
    for entry in results:
        floor = floors.get(entry["model"])
        if not _ok(entry) or floor is None:
            entry["floor_ratio"] = None
            continue
        entry["floor_ratio"] = {
            str(b): entry["latency"][str(b)]["p50_ms"] / floor["latency"][str(b)]["p50_ms"]
            for b in batch_sizes
        }


def _ratio(student, teacher):
    if student is None or teacher is None or teacher == 0:
        return None
    return student / teacher


def _ratios(results, formats, batch_sizes):
    """Student/teacher ratio of every figure, per format (NumPy floor included)."""
    by_key = {(r["model"], r["format"]): r for r in results}
    rows = []
    for fmt in tuple(formats) + ("numpy",):
        student, teacher = by_key.get(("student", fmt)), by_key.get(("teacher", fmt))
        if not student or not teacher or not _ok(student) or not _ok(teacher):
            continue
        row = {"format": fmt}
        for field in ("parameters", "size_bytes", "gzip_bytes", "peak_rss_bytes", "accuracy"):
            row[field] = _ratio(student.get(field), teacher.get(field))
        row["latency"] = {
            str(b): {
                key: _ratio(student["latency"][str(b)][key], teacher["latency"][str(b)][key])
                for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "throughput_sps")
            }
            for b in batch_sizes
        }
        rows.append(row)
    return rows


def _best_fp32(results, batch_sizes):
    """Per model and batch size: the fastest runtime (p50) and its ratio to the floor."""
    best = {}
    for name in MODELS:
        floor = next(
            (r for r in results if r["model"] == name and r["format"] == "numpy" and _ok(r)), None
        )
        candidates = [r for r in results if r["model"] == name and r["format"] != "numpy" and _ok(r)]
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
                "floor_ratio": _ratio(p50, floor_p50),
                "threads": winner["latency"][str(b)].get("threads", winner["threads"]),
                "runtime_settings": winner["runtime_settings"],
            }
        best[name] = per_batch
    return best


# ----------------------------------------------------------------------- rendering


def _mb(value):
    return None if value is None else value / 1e6


def _fmt(value, digits=3):
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _fmt_ratio(value):
    return "–" if value is None else f"{value:.2f}×"


def _threads_label(entry, batch=None):
    if "threads_tried" in entry["runtime_settings"]:
        if batch is not None:
            return str(entry["latency"][batch].get("threads", entry["threads"]))
        tried = "/".join(str(t) for t in entry["runtime_settings"]["threads_tried"])
        return f"best of {tried}"
    return str(entry["threads"])


def tables(report):
    """The report's tables as `(title, headers, rows, note)`; rendered to Markdown and HTML."""
    results = report["results"]
    batch_sizes = [str(b) for b in report["settings"]["batch_sizes"]]
    out = []

    headers = ["model", "format", "parameters", "size MB", "gzip MB", "peak RSS MB",
               "runtime-only RSS MB", "accuracy", "threads"]
    rows = []
    for r in results:
        if not _ok(r):
            rows.append([r["model"], FORMAT_NAMES[r["format"]], "–", "–", "–", "–", "–", "–",
                         ("n/a: " if r.get("not_applicable") else "FAILED: ") + str(r["error"])])
            continue
        rows.append([
            r["model"], FORMAT_NAMES[r["format"]], f"{r['parameters']:,}" if r["parameters"] else "–",
            _fmt(_mb(r["size_bytes"])), _fmt(_mb(r["gzip_bytes"])), _fmt(_mb(r["peak_rss_bytes"]), 1),
            _fmt(_mb(r["baseline_rss_bytes"]), 1),
            _fmt(r["accuracy"], 4), _threads_label(r),
        ])
    out.append((
        "Size, memory and accuracy",
        headers,
        rows,
        "Peak RSS: resident-memory high-water mark of the subprocess that loaded the artifact "
        "and ran the timed inference (before the accuracy pass). Runtime-only RSS: the same "
        "mark right after importing the runtime, before loading the model. MB = 10^6 bytes; "
        "gzip at level 6.",
    ))

    for b in batch_sizes:
        headers = ["model", "format", "timed call", "threads", "p50 ms", "p90 ms", "p99 ms",
                   "max ms", "samples/s", "calls", "× NumPy floor (p50)"]
        rows = []
        for r in results:
            if not _ok(r):
                continue
            stats = r["latency"][b]
            ratio = (r.get("floor_ratio") or {}).get(b)
            rows.append([
                r["model"], FORMAT_NAMES[r["format"]], f"`{r['timed_call']}`",
                _threads_label(r, b), _fmt(stats["p50_ms"]), _fmt(stats["p90_ms"]), _fmt(stats["p99_ms"]),
                _fmt(stats["max_ms"]), f"{stats['throughput_sps']:.0f}", str(stats["iterations"]),
                _fmt_ratio(ratio),
            ])
            for label, per_batch in (r.get("alternatives") or {}).items():
                stats = per_batch[b]
                rows.append([
                    r["model"], FORMAT_NAMES[r["format"]], f"`{label}`",
                    str(r["threads"]), _fmt(stats["p50_ms"]), _fmt(stats["p90_ms"]), _fmt(stats["p99_ms"]),
                    _fmt(stats["max_ms"]), f"{stats['throughput_sps']:.0f}",
                    str(stats["iterations"]), "–",
                ])
        out.append((
            f"Latency at batch {b}",
            headers,
            rows,
            "Warm-up excluded. Each sample is `time.perf_counter_ns()` around the timed call "
            "only, with the input preallocated. Fewer than 200 calls means the call hit the "
            "per-batch time bound: its p99 and max rest on few samples.",
        ))

    searched = [r for r in results if _ok(r) and r.get("thread_runs")]
    if searched:
        counts = sorted({int(t) for r in searched for t in r["thread_runs"]})
        headers = ["model", "format", "batch"] + [f"p50 ms, {t} thread{'s' * (t != 1)}" for t in counts]
        headers.append("kept")
        rows = []
        for r in searched:
            for b in batch_sizes:
                cells = [r["model"], FORMAT_NAMES[r["format"]], b]
                cells += [_fmt((r["thread_runs"].get(str(t)) or {}).get(b)) for t in counts]
                cells.append(_threads_label(r, b))
                rows.append(cells)
        out.append((
            "Thread search",
            headers,
            rows,
            "Each thread count ran in its own process, timed in the same interleaved rounds; the "
            "latency tables keep the faster per batch size. To reproduce a figure, give the runtime "
            "that thread count: LiteRT's `Interpreter` without `num_threads` runs like 1 thread "
            "(BENCHMARKS.md), ONNX Runtime's default (`intra_op_num_threads=0`) one thread per "
            "physical core.",
        ))

    headers = ["format", "parameters", "size", "gzip", "peak RSS", "accuracy"]
    for b in batch_sizes:
        headers += [f"p50@{b}", f"p99@{b}", f"samples/s@{b}"]
    rows = []
    for row in report["ratios"]:
        cells = [FORMAT_NAMES[row["format"]]] + [
            _fmt_ratio(row[f]) for f in ("parameters", "size_bytes", "gzip_bytes",
                                         "peak_rss_bytes", "accuracy")
        ]
        for b in batch_sizes:
            lat = row["latency"][b]
            cells += [_fmt_ratio(lat["p50_ms"]), _fmt_ratio(lat["p99_ms"]),
                      _fmt_ratio(lat["throughput_sps"])]
        rows.append(cells)
    out.append((
        "Student / teacher ratios",
        headers,
        rows,
        "Each figure of the student divided by the same figure of the teacher, same format "
        "(below 1× means the student is smaller / faster / lighter; for accuracy and "
        "samples/s, higher is better).",
    ))

    headers = ["model", "batch", "fastest runtime", "p50 ms", "NumPy floor p50 ms", "× floor",
               "threads", "settings"]
    rows = []
    for name, per_batch in report["best_fp32"].items():
        for b, best in per_batch.items():
            settings = ", ".join(f"{k}={v}" for k, v in best["runtime_settings"].items())
            rows.append([name, b, FORMAT_NAMES[best["format"]], _fmt(best["p50_ms"]),
                         _fmt(best["floor_p50_ms"]), _fmt_ratio(best["floor_ratio"]),
                         str(best["threads"]), settings])
    out.append((
        "Fastest runtime against the NumPy floor",
        headers,
        rows,
        "The NumPy floor is a float32 forward pass of the same weights (`x @ W` with the "
        "kernels as stored, contiguous arrays, "
        "preallocated buffers, in-place bias and activation), measured with 1 and with "
        f"{report['settings']['threads']} BLAS threads, keeping the faster per batch size: "
        "what a runtime must beat to earn its place. Runtimes in "
        f"{', '.join(report['settings']['thread_search'])} get the same search; the "
        "threads column says which count won.",
    ))
    return out


def _md_table(headers, rows):
    def clean(cell):
        return str(cell).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _verdict(report):
    failed = [r for r in report["results"] if r.get("error") and not r.get("not_applicable")]
    budget = report["budget"]
    lines = []
    if budget is None:
        lines.append("No budget given: nothing gated.")
    elif budget["passed"]:
        lines.append("**Budget: PASSED** (every limit met).")
    else:
        lines.append(f"**Budget: FAILED** ({len(budget['violations'])} violation(s)):")
        lines += [f"- {v['message']}" for v in budget["violations"]]
    if failed:
        lines.append(f"**{len(failed)} export(s)/measurement(s) FAILED:**")
        lines += [f"- {r['model']} {r['format']}: {r['error']}" for r in failed]
    return lines


def _environment_lines(report):
    env = report["environment"]
    settings = report["settings"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    load = lambda values: " / ".join(f"{v:.2f}" for v in values)  # noqa: E731
    return [
        f"- Machine: {env['cpu']}, {env['cores_available']} cores available, "
        f"{env['threads_per_runtime']} threads per runtime; {env['platform']}, Python {env['python']}",
        f"- Versions: {versions}",
        f"- Load average (1/5/15 min) at start {load(env['load_average_start'])}, at end "
        f"{load(env['load_average_end'])}: a load above the core count means other processes "
        "competed for the CPU and the tails (p99, max) are inflated.",
        f"- Timing: at least {settings['timing']['min_iterations']} calls and "
        f"{settings['timing']['min_time_s']} s per batch size, at most "
        f"{settings['timing']['max_time_s']} s, in {settings['timing'].get('rounds', 1)} windows; "
        f"warm-up {settings['timing']['warmup_s']} s before a runtime's first window of a batch "
        f"size and {min(settings['timing']['warmup_s'], REWARM_S)} s before each later one "
        "(at least 3 calls each) excluded; each runtime in its own process, all loaded first, then "
        "timed one at a time in interleaved windows (rotating order), so that every figure "
        "and ratio is taken under the same machine conditions.",
        f"- Accuracy data: {report['data']['source'] or 'none'} ({report['data']['examples']} examples)",
        f"- Report wall time: {report['wall_time_s']:.1f} s",
    ]


def render_markdown(report):
    """The report as Markdown."""
    models = report["models"]
    lines = [
        "# Inference report: student against teacher",
        "",
        f"Teacher `{models['teacher']['path']}` ({models['teacher']['parameters']:,} parameters), "
        f"student `{models['student']['path']}` ({models['student']['parameters']:,} parameters). "
        f"Generated {report['created_utc']}.",
        "",
        "## Verdict",
        "",
        *_verdict(report),
        "",
    ]
    if report["budget"]:
        lines += ["Limits: " + "; ".join(f"{k} {v}" for k, v in report["budget"]["limits"]), ""]
    for title, headers, rows, note in tables(report):
        lines += [f"## {title}", "", _md_table(headers, rows), "", note, ""]
    lines += ["## Runtime settings", ""]
    for r in report["results"]:
        if _ok(r):
            settings = ", ".join(f"{k}={v}" for k, v in r["runtime_settings"].items())
            lines.append(f"- {r['model']} {FORMAT_NAMES[r['format']]} ({r['runtime']}, pid "
                         f"{r['pid']}): {settings}")
    lines += ["", "## Environment", "", *_environment_lines(report), ""]
    if report.get("command"):
        lines += ["## Reproduce", "", "```", report["command"], "```", ""]
    return "\n".join(lines)


def _plots(report):
    """Two PNGs (bytes): latency distributions, accuracy versus latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in report["results"] if _ok(r)]
    batch_sizes = [str(b) for b in report["settings"]["batch_sizes"]]
    images = {}

    figure, axes = plt.subplots(1, len(batch_sizes), figsize=(6 * len(batch_sizes), 0.45 * len(results) + 1.5),
                                squeeze=False)
    for axis, b in zip(axes[0], batch_sizes):
        data = [np.asarray(r["samples_ms"][b]) for r in results]
        labels = [f"{r['model']} {r['format']}" for r in results]
        try:
            axis.boxplot(data, orientation="horizontal", whis=(1, 99), showfliers=False)
        except TypeError:  # matplotlib < 3.10
            axis.boxplot(data, vert=False, whis=(1, 99), showfliers=False)
        axis.set_yticks(range(1, len(labels) + 1))
        axis.set_yticklabels(labels)
        for i, r in enumerate(results, start=1):
            stats = r["latency"][b]
            axis.plot([stats["p99_ms"]], [i], marker="|", color="red", markersize=10)
        axis.set_xscale("log")
        axis.set_xlabel("latency (ms, log); box p25–p75, whiskers p1–p99, red: p99")
        axis.set_title(f"batch {b}")
        axis.grid(True, axis="x", alpha=0.3)
    figure.tight_layout()
    images["latency"] = _png(figure, plt)

    figure, axes = plt.subplots(1, len(batch_sizes), figsize=(6 * len(batch_sizes), 5), squeeze=False)
    markers = {"teacher": "o", "student": "^"}
    colors = {"keras": "C0", "savedmodel": "C1", "tflite": "C2", "onnx": "C3", "numpy": "C7"}
    for axis, b in zip(axes[0], batch_sizes):
        for r in results:
            if r.get("accuracy") is None:
                continue
            axis.scatter(r["latency"][b]["p50_ms"], r["accuracy"], marker=markers[r["model"]],
                         color=colors.get(r["format"], "k"), s=60, alpha=0.8,
                         label=f"{r['model']} {FORMAT_NAMES[r['format']]}")
        axis.legend(fontsize=7, loc="best")
        axis.set_xscale("log")
        axis.set_xlabel(f"p50 latency at batch {b} (ms, log)")
        axis.set_ylabel("test accuracy")
        axis.set_title(f"accuracy vs latency, batch {b} (o teacher, ^ student)")
        axis.grid(True, alpha=0.3)
    figure.tight_layout()
    images["accuracy_latency"] = _png(figure, plt)
    return images


def _png(figure, plt):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def _inline_md(text):
    """Escapes text for HTML and turns `code` and **bold** spans into tags."""
    import re

    escaped = html.escape(str(text))
    escaped = re.sub(r"`([^`]*)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]*)\*\*", r"<b>\1</b>", escaped)


def render_html(report):
    """The report as one self-contained HTML page (plots embedded as base64 PNG)."""
    images = _plots(report)
    models = report["models"]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>Inference report: student against teacher</title>",
        "<style>body{font-family:sans-serif;max-width:1300px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
        "td:first-child,td:nth-child(2),th{text-align:left}"
        ".fail{color:#b00020}.pass{color:#1b5e20}.note{color:#555;font-size:13px}</style>",
        "</head><body>",
        "<h1>Inference report: student against teacher</h1>",
        f"<p>Teacher <code>{html.escape(models['teacher']['path'])}</code> "
        f"({models['teacher']['parameters']:,} parameters), student "
        f"<code>{html.escape(models['student']['path'])}</code> "
        f"({models['student']['parameters']:,} parameters). Generated {report['created_utc']}.</p>",
        "<h2>Verdict</h2><ul>",
    ]
    verdict = _verdict(report)
    css = "fail" if any("FAILED" in line for line in verdict) else "pass"
    parts += [f"<li class='{css}'>{_inline_md(line.lstrip('- '))}</li>" for line in verdict]
    parts.append("</ul>")
    for title, headers, rows, note in tables(report):
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr>")
        parts += [f"<th>{html.escape(h)}</th>" for h in headers]
        parts.append("</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{_inline_md(c)}</td>" for c in row) + "</tr>")
        parts.append(f"</table><p class='note'>{_inline_md(note)}</p>")
    parts.append("<h2>Latency distributions</h2>")
    parts.append(f"<img alt='latency distributions' src='data:image/png;base64,"
                 f"{base64.b64encode(images['latency']).decode()}'>")
    parts.append("<h2>Accuracy versus latency</h2>")
    parts.append(f"<img alt='accuracy versus latency' src='data:image/png;base64,"
                 f"{base64.b64encode(images['accuracy_latency']).decode()}'>")
    parts.append("<h2>Environment</h2><ul>")
    parts += [f"<li>{_inline_md(line[2:])}</li>" for line in _environment_lines(report)]
    parts.append("</ul>")
    if report.get("command"):
        parts.append(f"<h2>Reproduce</h2><pre>{html.escape(report['command'])}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def to_json(report):
    """The report as JSON text, without the raw latency samples."""
    slim = dict(report)
    slim["results"] = [{k: v for k, v in r.items() if k != "samples_ms"} for r in report["results"]]
    return json.dumps(slim, indent=2, default=_json_default)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_report(report, output_dir, json_only=False):
    """Writes report.json (and report.md, report.html) atomically; returns their paths."""
    from export.staging import write_bytes_atomically

    written = {}
    documents = [("report.json", lambda: to_json(report))]
    if not json_only:
        documents += [("report.md", lambda: render_markdown(report)),
                      ("report.html", lambda: render_html(report))]
    rendered = [(name, make().encode("utf-8")) for name, make in documents]  # render all first
    for name, data in rendered:
        path = os.path.join(output_dir, name)
        written[name] = write_bytes_atomically(path, data, overwrite=True)
    return written


def exit_status(report):
    """0 ok, 1 budget violated, 3 an export/measurement failed."""
    if any(r.get("error") and not r.get("not_applicable") for r in report["results"]):
        return EXIT_FAILED
    if report["budget"] and not report["budget"]["passed"]:
        return EXIT_BUDGET
    return EXIT_OK


# ----------------------------------------------------------------------- command line


def _parse_batch_sizes(text):
    try:
        sizes = [int(part) for part in text]
    except (TypeError, ValueError):
        sizes = []
    if not sizes or any(s < 1 for s in sizes) or len(set(sizes)) != len(sizes):
        raise UsageError(f"--batch-sizes must be distinct positive integers like 1,64, got {','.join(text)}")
    return sizes


def _parse_formats(text):
    formats = [part.strip() for part in text if part.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown or len(set(formats)) != len(formats):
        raise UsageError(
            f"--formats must be distinct names from {','.join(FORMATS)}, got {','.join(text)}"
        )
    return formats


def _labelled_data(path, model_path):
    if path:
        from export.loading import input_signature, load_model
        from export.verify import load_labelled

        input_shape, _ = input_signature(load_model(model_path))
        try:
            x, y = load_labelled(path, input_shape)
        except (ValueError, OSError) as error:
            raise UsageError(_one_line(error)) from None
        source = path
    else:
        from models.data import load_fashion_mnist

        _, (x, y) = load_fashion_mnist()
        source = "Fashion-MNIST test set (models.data)"
    y = np.asarray(y)
    if y.ndim == 2:  # one-hot
        y = y.argmax(axis=1)
    return np.asarray(x, np.float32), y.astype(np.int64), source


def _define_flags(flags):
    """Defines the command-line flags on absl's global FLAGS."""
    flags.DEFINE_string("teacher", None, "Teacher model: .keras file (or SavedModel directory).")
    flags.DEFINE_string("student", None, "Student model: .keras file (or SavedModel directory).")
    flags.DEFINE_list("formats", list(FORMATS), "Formats to export and measure.")
    flags.DEFINE_list("batch-sizes", ["1", "64"], "Batch sizes to time.")
    flags.DEFINE_string("budget", None, "Budget file (.yaml/.yml/.json); violations exit 1.")
    flags.DEFINE_string("output-dir", "report", "Folder for artifacts and report.{md,json,html}.")
    flags.DEFINE_boolean("json-only", False, "Print only the JSON report on stdout (and write report.json).")
    flags.DEFINE_string("labelled-data", None,
                        ".npz with x, y for accuracy (default: Fashion-MNIST test set).")
    flags.DEFINE_integer("threads", None, "Threads per runtime (default: all available cores).")
    flags.DEFINE_float("min-time", measure.DEFAULT_MIN_TIME_S, "Minimum seconds timed per batch size.")
    flags.DEFINE_integer("min-iterations", measure.DEFAULT_MIN_ITERATIONS,
                         "Minimum timed calls per batch size.")
    flags.DEFINE_integer(
        "rounds", measure.DEFAULT_ROUNDS,
        "Timing windows per runtime and batch size; every runtime's windows are interleaved "
        "with the others', so that all see the same machine conditions.")
    flags.DEFINE_float("max-time", measure.DEFAULT_MAX_TIME_S,
                       "Maximum seconds timed per batch size (bounds slow calls).")
    flags.DEFINE_string(
        "runtime-options", None,
        'JSON of per-format runtime settings, e.g. \'{"onnx": {"allow_spinning": false, '
        '"execution_mode": "sequential"}, "keras": {"jit_compile": true}}\'.')
    flags.DEFINE_list(
        "search-threads", ["tflite", "onnx"],
        "Formats measured with 1 and with --threads threads, keeping the faster per batch "
        "size (the NumPy floor always is). Empty to disable.")
    flags.DEFINE_boolean("verbose", False, "Show converter logs and full tracebacks.")


def _fail(message, code):
    sys.stderr.write(f"{PROGRAM}: error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


def main(argv=None):
    """Entry point of `python -m export.report` (flags are defined here, not at import)."""
    from absl import app
    from absl import flags

    flag_values = flags.FLAGS
    if "teacher" not in flag_values:
        _define_flags(flags)
    argv = list(argv or sys.argv)

    def parse(arguments):
        try:
            return flag_values(arguments)
        except flags.Error as error:
            _fail(_one_line(error), EXIT_USAGE)

    def run(arguments):
        if len(arguments) > 1:
            _fail(f"unexpected positional arguments {' '.join(arguments[1:])}", EXIT_USAGE)
        verbose = flag_values["verbose"].value
        try:
            return _main(flag_values, argv)
        except UsageError as error:
            if verbose:
                raise
            _fail(str(error), EXIT_USAGE)
        except Exception as error:  # one line, no traceback (unless --verbose)
            if verbose:
                raise
            _fail(f"{type(error).__name__}: {_one_line(error)}", EXIT_FAILED)

    app.run(run, argv=argv, flags_parser=parse)


def _main(flag_values, argv):
    value = lambda name: flag_values[name].value  # noqa: E731
    teacher, student = value("teacher"), value("student")
    for name, path in (("--teacher", teacher), ("--student", student)):
        if not path:
            raise UsageError(f"{name} is required (a .keras file)")
        if not os.path.exists(path):
            raise UsageError(f"{name} {path} does not exist; expected a .keras file")
    formats = _parse_formats(value("formats"))
    batch_sizes = _parse_batch_sizes(value("batch-sizes"))
    threads = value("threads")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be a positive integer, got {threads}")
    if not value("min-time") > 0 or value("max-time") < value("min-time"):
        raise UsageError("--min-time must be > 0 and --max-time >= --min-time")
    if value("rounds") < 1:
        raise UsageError(f"--rounds must be >= 1, got {value('rounds')}")
    runtime_options = {}
    if value("runtime-options"):
        try:
            runtime_options = json.loads(value("runtime-options"))
        except json.JSONDecodeError as error:
            raise UsageError(f"--runtime-options must be JSON, got {error}") from None
        if not isinstance(runtime_options, dict) or not all(
            key in FORMATS and isinstance(v, dict) for key, v in runtime_options.items()
        ):
            raise UsageError(
                "--runtime-options must map format names "
                f"({','.join(FORMATS)}) to objects of settings"
            )
    search_threads = [f.strip() for f in value("search-threads") if f.strip()]
    if any(f not in FORMATS for f in search_threads):
        raise UsageError(
            f"--search-threads must name formats from {','.join(FORMATS)}, "
            f"got {','.join(search_threads)}"
        )
    budget = None
    if value("budget"):
        try:
            budget = budgets_lib.load_budget(value("budget"))
            budgets_lib.check_requested(budget, formats, batch_sizes)
        except budgets_lib.BudgetError as error:
            raise UsageError(str(error)) from None
    output_dir = value("output-dir")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UsageError(f"--output-dir {output_dir} exists and is not a directory")
    parent = os.path.dirname(os.path.abspath(output_dir))
    if not os.path.isdir(parent):
        raise UsageError(f"--output-dir {output_dir}: parent folder {parent} does not exist")
    json_only = value("json-only")
    command = "python -m export.report " + shlex.join(argv[1:])

    # Everything the converters and runtimes print goes to stderr: stdout carries only
    # the JSON (with --json-only) or the final summary.
    if not flag_values["verbose"].value:
        from absl import logging

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        logging.set_verbosity(logging.WARNING)
    saved_stdout = os.dup(1)
    sys.stdout.flush()
    os.dup2(2, 1)
    try:
        labelled = _labelled_data(value("labelled-data"), student)
        os.makedirs(output_dir, exist_ok=True)
        report = build_report(
            teacher, student, output_dir, formats=formats, batch_sizes=batch_sizes,
            labelled=labelled, budget=budget, threads=threads, runtime_options=runtime_options,
            search_threads=search_threads,
            timing={"min_time_s": value("min-time"), "min_iterations": value("min-iterations"),
                    "max_time_s": value("max-time"), "rounds": value("rounds")},
            progress=True, command=command,
        )
        written = write_report(report, output_dir, json_only=json_only)
    finally:
        sys.stdout.flush()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
    if json_only:
        sys.stdout.write(to_json(report) + "\n")
    else:
        for name, path in written.items():
            sys.stdout.write(f"wrote {path}\n")
    sys.stdout.flush()
    status = exit_status(report)
    if report["budget"] and report["budget"]["violations"]:
        for violation in report["budget"]["violations"]:
            sys.stderr.write(f"{PROGRAM}: budget violated: {violation['message']}\n")
    if status == EXIT_FAILED:
        failed = [r for r in report["results"] if r.get("error") and not r.get("not_applicable")]
        sys.stderr.write(
            f"{PROGRAM}: error: {len(failed)} export(s)/measurement(s) failed, first: "
            f"{failed[0]['model']} {failed[0]['format']}: {failed[0]['error']}\n"
        )
    sys.exit(status)


if __name__ == "__main__":
    main()
