"""Render a report (from `export.report.build`) as Markdown, HTML, JSON and plots.

`tables` holds every table once, as `(title, headers, rows, note)`; the
Markdown and HTML pages render the same tables, so they cannot disagree.
`write_report` renders every document first, then writes each atomically
(`export.staging`).
"""

import base64
import html
import io
import json
import os
import re

import numpy as np

from export import staging
from export.measure.worker import REWARM_S
from export.report.build import measured

FORMAT_NAMES = {
    "keras": "Keras (.keras)",
    "savedmodel": "SavedModel",
    "tflite": "TFLite (LiteRT)",
    "onnx": "ONNX Runtime",
    "numpy": "NumPy floor",
}


QUANTIZE_NAMES = {"float16": "float16", "dynamic": "dynamic-range", "int8": "int8"}


def variant_name(entry):
    """`TFLite (LiteRT)`, `TFLite (LiteRT) int8`, ...: format and quantisation."""
    name = FORMAT_NAMES[entry["format"]]
    quantize = entry.get("quantize", "none")
    return (
        name
        if quantize == "none"
        else f"{name} {QUANTIZE_NAMES.get(quantize, quantize)}"
    )


def megabytes(value):
    return None if value is None else value / 1e6


def format_number(value, digits=3):
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def format_ratio(value):
    return "–" if value is None else f"{value:.2f}×"


def threads_label(entry, batch=None):
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

    headers = [
        "model",
        "format",
        "parameters",
        "size MB",
        "gzip MB",
        "peak RSS MB",
        "runtime-only RSS MB",
        "accuracy",
        "threads",
    ]
    rows = []
    for r in results:
        if not measured(r):
            status = (
                "n/a: "
                if r.get("not_applicable")
                else "REJECTED: "
                if r.get("rejected")
                else "FAILED: "
            )
            rows.append(
                [
                    r["model"],
                    variant_name(r),
                    "–",
                    "–",
                    "–",
                    "–",
                    "–",
                    "–",
                    status + str(r["error"]),
                ]
            )
            continue
        rows.append(
            [
                r["model"],
                variant_name(r),
                f"{r['parameters']:,}" if r["parameters"] else "–",
                format_number(megabytes(r["size_bytes"])),
                format_number(megabytes(r["gzip_bytes"])),
                format_number(megabytes(r["peak_rss_bytes"]), 1),
                format_number(megabytes(r["baseline_rss_bytes"]), 1),
                format_number(r["accuracy"], 4),
                threads_label(r),
            ]
        )
    out.append(
        (
            "Size, memory and accuracy",
            headers,
            rows,
            "Peak RSS: resident-memory high-water mark of the subprocess that loaded the artifact "
            "and ran the timed inference (before the accuracy pass). Runtime-only RSS: the same "
            "mark right after importing the runtime, before loading the model. MB = 10^6 bytes; "
            "gzip at level 6.",
        )
    )

    for b in batch_sizes:
        headers = [
            "model",
            "format",
            "timed call",
            "threads",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "samples/s",
            "calls",
            "× NumPy floor (p50)",
        ]
        rows = []
        for r in results:
            if not measured(r):
                continue
            stats = r["latency"][b]
            ratio = (r.get("floor_ratio") or {}).get(b)
            rows.append(
                [
                    r["model"],
                    variant_name(r),
                    f"`{r['timed_call']}`",
                    threads_label(r, b),
                    format_number(stats["p50_ms"]),
                    format_number(stats["p90_ms"]),
                    format_number(stats["p99_ms"]),
                    format_number(stats["max_ms"]),
                    f"{stats['throughput_sps']:.0f}",
                    str(stats["iterations"]),
                    format_ratio(ratio),
                ]
            )
            for label, per_batch in (r.get("alternatives") or {}).items():
                stats = per_batch[b]
                rows.append(
                    [
                        r["model"],
                        variant_name(r),
                        f"`{label}`",
                        str(r["threads"]),
                        format_number(stats["p50_ms"]),
                        format_number(stats["p90_ms"]),
                        format_number(stats["p99_ms"]),
                        format_number(stats["max_ms"]),
                        f"{stats['throughput_sps']:.0f}",
                        str(stats["iterations"]),
                        "–",
                    ]
                )
        out.append(
            (
                f"Latency at batch {b}",
                headers,
                rows,
                "Warm-up excluded. Each sample is `time.perf_counter_ns()` around the timed call "
                "only, with the input preallocated. Fewer than 200 calls means the call hit the "
                "per-batch time bound: its p99 and max rest on few samples.",
            )
        )

    searched = [r for r in results if measured(r) and r.get("thread_runs")]
    if searched:
        counts = sorted({int(t) for r in searched for t in r["thread_runs"]})
        headers = ["model", "format", "batch"] + [
            f"p50 ms, {t} thread{'s' * (t != 1)}" for t in counts
        ]
        headers.append("kept")
        rows = []
        for r in searched:
            for b in batch_sizes:
                cells = [r["model"], variant_name(r), b]
                cells += [
                    format_number((r["thread_runs"].get(str(t)) or {}).get(b))
                    for t in counts
                ]
                cells.append(threads_label(r, b))
                rows.append(cells)
        out.append(
            (
                "Thread search",
                headers,
                rows,
                "Each thread count ran in its own process, timed in the same interleaved rounds; the "
                "latency tables keep the faster per batch size. To reproduce a figure, give the runtime "
                "that thread count: LiteRT's `Interpreter` without `num_threads` runs like 1 thread "
                "(BENCHMARKS.md), ONNX Runtime's default (`intra_op_num_threads=0`) one thread per "
                "physical core.",
            )
        )

    headers = [
        "student",
        "format",
        "parameters",
        "size",
        "gzip",
        "peak RSS",
        "accuracy",
    ]
    for b in batch_sizes:
        headers += [f"p50@{b}", f"p99@{b}", f"samples/s@{b}"]
    rows = []
    for row in report["ratios"]:
        cells = [row.get("model", "student"), FORMAT_NAMES[row["format"]]] + [
            format_ratio(row[f])
            for f in (
                "parameters",
                "size_bytes",
                "gzip_bytes",
                "peak_rss_bytes",
                "accuracy",
            )
        ]
        for b in batch_sizes:
            lat = row["latency"][b]
            cells += [
                format_ratio(lat["p50_ms"]),
                format_ratio(lat["p99_ms"]),
                format_ratio(lat["throughput_sps"]),
            ]
        rows.append(cells)
    out.append(
        (
            "Student / teacher ratios",
            headers,
            rows,
            "Each figure of the student divided by the same figure of the teacher, same format "
            "(below 1× means the student is smaller / faster / lighter; for accuracy and "
            "samples/s, higher is better).",
        )
    )

    headers = [
        "model",
        "batch",
        "fastest runtime",
        "p50 ms",
        "NumPy floor p50 ms",
        "× floor",
        "threads",
        "settings",
    ]
    rows = []
    for name, per_batch in report["best_fp32"].items():
        for b, best in per_batch.items():
            settings = ", ".join(
                f"{k}={v}" for k, v in best["runtime_settings"].items()
            )
            rows.append(
                [
                    name,
                    b,
                    FORMAT_NAMES[best["format"]],
                    format_number(best["p50_ms"]),
                    format_number(best["floor_p50_ms"]),
                    format_ratio(best["floor_ratio"]),
                    str(best["threads"]),
                    settings,
                ]
            )
    out.append(
        (
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
        )
    )
    out += variant_tables(report)
    return out


def validity_label(stats):
    validity = stats.get("validity")
    if validity is None:
        return "–"
    return "VALID" if validity["valid"] else f"INVALID ({validity['reason']})"


def lineage_label(entry):
    lineage = entry.get("lineage") or {}
    parts = [lineage.get("converter") or "–"]
    settings = lineage.get("settings") or {}
    keys = (
        "quantize",
        "int8_io",
        "activation_type",
        "weight_type",
        "per_channel",
        "reduce_range",
        "calibrate_method",
        "calibration_samples",
        "opset",
    )
    shown = ", ".join(f"{k}={settings[k]}" for k in keys if settings.get(k) is not None)
    if shown:
        parts.append(shown)
    if lineage.get("calibration_digest"):
        parts.append(
            f"calibration {lineage['calibration_data']} sha256:{lineage['calibration_digest']}"
        )
    parts.append(f"{lineage.get('threads')} thread(s)")
    return "; ".join(str(p) for p in parts)


def variant_tables(report):
    """Per variant: parity, start-up, full latency distribution, Pareto, release."""
    results = [r for r in report["results"] if measured(r) and r["format"] != "numpy"]
    batch_sizes = [str(b) for b in report["settings"]["batch_sizes"]]
    out = []
    headers = [
        "model",
        "variant",
        "max abs diff vs Keras",
        "top-1 agreement",
        "examples",
        "import s",
        "load s",
        "first inference ms",
    ]
    rows = []
    for r in results:
        parity = r.get("parity") or {}
        first = r.get("first_inference_ms")
        rows.append(
            [
                r["model"],
                variant_name(r),
                format_number(parity.get("max_abs_diff"), 6),
                format_number(parity.get("top1_agreement"), 4),
                str(parity.get("examples", "–")),
                format_number(r.get("import_s")),
                format_number(r.get("init_s")),
                "–"
                if first is None
                else f"{first:.3f} (batch {r.get('first_inference_batch_size')})",
            ]
        )
    out.append(
        (
            "Parity with Keras and start-up",
            headers,
            rows,
            "Parity: every runtime's outputs in the measurement process on the held-out labelled "
            "inputs (never the calibration data), against Keras' `model(x, training=False)`. "
            "Import: the runtime's import; load: the artifact's load and initialisation; first "
            "inference: the first call after loading (not part of the percentiles).",
        )
    )
    for b in batch_sizes:
        headers = [
            "model",
            "variant",
            "p50",
            "p90",
            "p95",
            "p99",
            "max",
            "mean ± std",
            "samples/s",
            "calls",
            "timed s",
            "validity",
        ]
        rows = []
        for r in results:
            stats = r["latency"][b]
            mean_std = (
                f"{stats['mean_ms']:.3f} ± {stats['std_ms']:.3f}"
                if "std_ms" in stats
                else format_number(stats.get("mean_ms"))
            )
            rows.append(
                [
                    r["model"],
                    variant_name(r),
                    format_number(stats["p50_ms"]),
                    format_number(stats["p90_ms"]),
                    format_number(stats.get("p95_ms")),
                    format_number(stats["p99_ms"]),
                    format_number(stats["max_ms"]),
                    mean_std,
                    f"{stats['throughput_sps']:.0f}",
                    str(stats["iterations"]),
                    format_number(stats.get("timed_s")),
                    validity_label(stats),
                ]
            )
        out.append(
            (
                f"Latency distribution at batch {b} (ms)",
                headers,
                rows,
                "VALID: the run met both its minimum call count and its minimum timed duration "
                "(as LiteRT's benchmark_model, onnxruntime_perf_test and MLPerf's run rules "
                "require); INVALID runs stopped at the time bound, their tails rest on few calls.",
            )
        )
    headers = ["model", "variant", "accuracy"] + [f"p99 ms@{b}" for b in batch_sizes]
    headers += ["size MB", "Pareto front", "lineage"]
    rows = []
    for r in results:
        fronts = r.get("pareto") or []
        rows.append(
            [
                r["model"],
                variant_name(r),
                format_number(r.get("accuracy"), 4),
                *[format_number(r["latency"][b]["p99_ms"]) for b in batch_sizes],
                format_number(megabytes(r.get("size_bytes"))),
                ("**" + ", ".join(fronts) + "**") if fronts else "–",
                lineage_label(r),
            ]
        )
    out.append(
        (
            "Pareto: accuracy against p99 latency and size",
            headers,
            rows,
            "A variant is on a front when no other is at least as accurate and at least as fast "
            "(or small) and better in one of the two. Lineage: converter and its settings, "
            "calibration data and its digest, threads of the figures.",
        )
    )
    for r in report["results"]:
        if not r.get("layer_errors"):
            continue
        rows = [
            [
                r["model"],
                str(rank),
                row["layer"],
                row["op"],
                format_number(row["rmse_over_scale"]),
                format_number(row["max_abs_error"], 5),
            ]
            for rank, row in enumerate(r["layer_errors"], start=1)
        ]
        out.append(
            (
                f"Why {r['model']} {r['variant']} lost accuracy: quantisation error per layer",
                [
                    "model",
                    "rank",
                    "layer (output tensor)",
                    "op",
                    "RMSE / scale",
                    "max abs error",
                ],
                rows,
                "LiteRT's QuantizationDebugger on the calibration inputs: each quantised op's "
                "output against its float value; RMSE in units of the quantisation scale (about "
                "0.29 is rounding alone). The variant `tflite_int8_selective` keeps the worst "
                "layers in float and is measured with the others.",
            )
        )
    release = report.get("release")
    if release:
        headers = [
            "rank",
            "candidate",
            release["objective"],
            "meets budget",
            "shortfall",
        ]
        rows = []
        for rank, c in enumerate(release["candidates"], start=1):
            rows.append(
                [
                    str(rank),
                    c["label"],
                    format_number(c["value"], 4),
                    "**RELEASE**"
                    if c is release["winner"]
                    else ("yes" if c["meets"] else "no"),
                    "; ".join(c["violations"]) or "–",
                ]
            )
        out.append(
            (
                "Release choice",
                headers,
                rows,
                f"The release is the variant meeting every limit with the lowest "
                f"{release['objective']}; ties go to the smaller file.",
            )
        )
    return out


def markdown_table(headers, rows):
    def clean(cell):
        return str(cell).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict_lines(report):
    failed = [
        r for r in report["results"] if r.get("error") and not r.get("not_applicable")
    ]
    budget = report["budget"]
    lines = []
    if budget is None:
        lines.append("No budget given: nothing gated.")
    elif budget["passed"]:
        lines.append("**Budget: PASSED** (every limit met).")
    else:
        lines.append(f"**Budget: FAILED** ({len(budget['violations'])} violation(s)):")
        lines += [f"- {v['message']}" for v in budget["violations"]]
    release = report.get("release")
    if release:
        if release["winner"]:
            lines.append(
                f"**Release: {release['winner']['label']}** (lowest "
                f"{release['objective']} among the variants meeting the budget)."
            )
        else:
            lines.append("**Release: none** (no variant meets the budget).")
    rejected = [r for r in report["results"] if r.get("rejected")]
    if rejected:
        lines.append(
            f"{len(rejected)} quantised variant(s) REJECTED by their parity check:"
        )
        lines += [f"- {r['model']} {r['variant']}: {r['error']}" for r in rejected]
    failed = [r for r in failed if not r.get("rejected")]
    if failed:
        lines.append(f"**{len(failed)} export(s)/measurement(s) FAILED:**")
        lines += [f"- {r['model']} {r['format']}: {r['error']}" for r in failed]
    return lines


def environment_lines(report):
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
        f"warm-up {settings['timing']['warmup_s']} s per batch size right after loading "
        f"and {min(settings['timing']['warmup_s'], REWARM_S)} s before each window "
        "(at least 3 calls each) excluded; each runtime in its own process, all loaded first, then "
        "timed one at a time in interleaved windows (rotating order), so that every figure "
        "and ratio is taken under the same machine conditions.",
        f"- Accuracy data: {report['data']['source'] or 'none'} ({report['data']['examples']} examples)",
        f"- Report wall time: {report['wall_time_s']:.1f} s",
    ]


def models_line(report, code):
    """`Teacher X (N parameters), student Y (M parameters).`, every model named."""
    parts = []
    for name, model in report["models"].items():
        role = model.get("role", name)
        label = (
            "Teacher"
            if role == "teacher"
            else ("student" if name == "student" else f"student {name}")
        )
        parts.append(
            f"{label} {code(model['path'])} ({model['parameters']:,} parameters)"
        )
    return ", ".join(parts) + "."


def render_markdown(report):
    """The report as Markdown."""
    lines = [
        "# Inference report: student against teacher",
        "",
        models_line(report, lambda path: f"`{path}`")
        + f" Generated {report['created_utc']}.",
        "",
        "## Verdict",
        "",
        *verdict_lines(report),
        "",
    ]
    if report["budget"]:
        lines += [
            "Limits: " + "; ".join(f"{k} {v}" for k, v in report["budget"]["limits"]),
            "",
        ]
    for title, headers, rows, note in tables(report):
        lines += [f"## {title}", "", markdown_table(headers, rows), "", note, ""]
    lines += ["## Runtime settings", ""]
    for r in report["results"]:
        if measured(r):
            settings = ", ".join(f"{k}={v}" for k, v in r["runtime_settings"].items())
            lines.append(
                f"- {r['model']} {variant_name(r)} ({r['runtime']}, pid "
                f"{r['pid']}): {settings}"
            )
    lines += ["", "## Environment", "", *environment_lines(report), ""]
    if report.get("command"):
        lines += ["## Reproduce", "", "```", report["command"], "```", ""]
    return "\n".join(lines)


def render_plots(report):
    """Two PNGs (bytes): latency distributions; accuracy against p99 and size (fronts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in report["results"] if measured(r)]
    batch_sizes = [str(b) for b in report["settings"]["batch_sizes"]]
    images = {}

    figure, axes = plt.subplots(
        1,
        len(batch_sizes),
        figsize=(6 * len(batch_sizes), 0.45 * len(results) + 1.5),
        squeeze=False,
    )
    for axis, b in zip(axes[0], batch_sizes, strict=True):
        data = [np.asarray(r["samples_ms"][b]) for r in results]
        labels = [f"{r['model']} {r.get('variant', r['format'])}" for r in results]
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
    images["latency"] = figure_png(figure, plt)

    panels = [
        (
            f"p99 latency at batch {b} (ms, log)",
            f"p99_ms@{b}",
            (lambda r, b=b: r["latency"][b]["p99_ms"]),
        )
        for b in batch_sizes
    ]
    panels.append(
        ("size on disk (MB, log)", "size_mb", lambda r: megabytes(r["size_bytes"]))
    )
    figure, axes = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels), 5), squeeze=False
    )
    colors = {
        "keras": "C0",
        "savedmodel": "C1",
        "tflite": "C2",
        "onnx": "C3",
        "numpy": "C7",
    }
    markers = {"none": "o", "float16": "s", "dynamic": "D", "int8": "^"}
    points = [
        r for r in results if r.get("accuracy") is not None and r["format"] != "numpy"
    ]
    for axis, (label, front, x_of) in zip(axes[0], panels, strict=True):
        for r in points:
            on_front = front in (r.get("pareto") or [])
            axis.scatter(
                x_of(r),
                r["accuracy"],
                marker=markers.get(r.get("quantize", "none"), "o"),
                color=colors.get(r["format"], "k"),
                s=90 if on_front else 40,
                edgecolors="black" if on_front else "none",
                alpha=0.85,
                label=f"{r['model']} {variant_name(r)}",
            )
        chosen = sorted(
            (x_of(r), r["accuracy"]) for r in points if front in (r.get("pareto") or [])
        )
        if chosen:
            axis.step(
                *zip(*chosen, strict=True),
                where="post",
                color="black",
                linewidth=1,
                alpha=0.6,
            )
        axis.legend(fontsize=6, loc="best")
        axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel("test accuracy")
        axis.set_title(
            "accuracy vs " + label.split(" (")[0] + " (front: outlined, line)"
        )
        axis.grid(True, alpha=0.3)
    figure.tight_layout()
    images["accuracy_latency"] = figure_png(figure, plt)
    return images


def figure_png(figure, plt):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def inline_markdown(text):
    """Escapes text for HTML and turns `code` and **bold** spans into tags."""
    escaped = html.escape(str(text))
    escaped = re.sub(r"`([^`]*)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]*)\*\*", r"<b>\1</b>", escaped)


def render_html(report):
    """The report as one self-contained HTML page (plots embedded as base64 PNG)."""
    images = render_plots(report)
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
        "<p>"
        + models_line(report, lambda path: f"<code>{html.escape(path)}</code>")
        + f" Generated {report['created_utc']}.</p>",
        "<h2>Verdict</h2><ul>",
    ]
    verdict = verdict_lines(report)
    css = "fail" if any("FAILED" in line for line in verdict) else "pass"
    parts += [
        f"<li class='{css}'>{inline_markdown(line.lstrip('- '))}</li>"
        for line in verdict
    ]
    parts.append("</ul>")
    for title, headers, rows, note in tables(report):
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr>")
        parts += [f"<th>{html.escape(h)}</th>" for h in headers]
        parts.append("</tr>")
        for row in rows:
            parts.append(
                "<tr>"
                + "".join(f"<td>{inline_markdown(c)}</td>" for c in row)
                + "</tr>"
            )
        parts.append(f"</table><p class='note'>{inline_markdown(note)}</p>")
    parts.append("<h2>Latency distributions</h2>")
    parts.append(
        f"<img alt='latency distributions' src='data:image/png;base64,"
        f"{base64.b64encode(images['latency']).decode()}'>"
    )
    parts.append("<h2>Accuracy against p99 latency and size (Pareto fronts)</h2>")
    parts.append(
        f"<img alt='accuracy versus latency' src='data:image/png;base64,"
        f"{base64.b64encode(images['accuracy_latency']).decode()}'>"
    )
    parts.append("<h2>Environment</h2><ul>")
    parts += [
        f"<li>{inline_markdown(line[2:])}</li>" for line in environment_lines(report)
    ]
    parts.append("</ul>")
    if report.get("command"):
        parts.append(f"<h2>Reproduce</h2><pre>{html.escape(report['command'])}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def to_json(report):
    """The report as JSON text, without the raw latency samples."""
    slim = dict(report)
    slim["results"] = [
        {k: v for k, v in r.items() if k != "samples_ms"} for r in report["results"]
    ]
    return json.dumps(slim, indent=2, default=json_default)


def json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_report(report, output_dir, json_only=False):
    """Writes report.json (and report.md, report.html) atomically; returns their paths."""
    written = {}
    documents = [("report.json", lambda: to_json(report))]
    if not json_only:
        documents += [
            ("report.md", lambda: render_markdown(report)),
            ("report.html", lambda: render_html(report)),
        ]
    rendered = [
        (name, make().encode("utf-8")) for name, make in documents
    ]  # render all first
    for name, data in rendered:
        path = os.path.join(output_dir, name)
        written[name] = staging.write_bytes_atomically(path, data, overwrite=True)
    return written
