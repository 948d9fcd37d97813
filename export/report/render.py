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

    headers = ["model", "format", "parameters", "size MB", "gzip MB", "peak RSS MB",
               "runtime-only RSS MB", "accuracy", "threads"]
    rows = []
    for r in results:
        if not measured(r):
            rows.append([r["model"], FORMAT_NAMES[r["format"]], "–", "–", "–", "–", "–", "–",
                         ("n/a: " if r.get("not_applicable") else "FAILED: ") + str(r["error"])])
            continue
        rows.append([
            r["model"], FORMAT_NAMES[r["format"]], f"{r['parameters']:,}" if r["parameters"] else "–",
            format_number(megabytes(r["size_bytes"])), format_number(megabytes(r["gzip_bytes"])), format_number(megabytes(r["peak_rss_bytes"]), 1),
            format_number(megabytes(r["baseline_rss_bytes"]), 1),
            format_number(r["accuracy"], 4), threads_label(r),
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
            if not measured(r):
                continue
            stats = r["latency"][b]
            ratio = (r.get("floor_ratio") or {}).get(b)
            rows.append([
                r["model"], FORMAT_NAMES[r["format"]], f"`{r['timed_call']}`",
                threads_label(r, b), format_number(stats["p50_ms"]), format_number(stats["p90_ms"]), format_number(stats["p99_ms"]),
                format_number(stats["max_ms"]), f"{stats['throughput_sps']:.0f}", str(stats["iterations"]),
                format_ratio(ratio),
            ])
            for label, per_batch in (r.get("alternatives") or {}).items():
                stats = per_batch[b]
                rows.append([
                    r["model"], FORMAT_NAMES[r["format"]], f"`{label}`",
                    str(r["threads"]), format_number(stats["p50_ms"]), format_number(stats["p90_ms"]), format_number(stats["p99_ms"]),
                    format_number(stats["max_ms"]), f"{stats['throughput_sps']:.0f}",
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

    searched = [r for r in results if measured(r) and r.get("thread_runs")]
    if searched:
        counts = sorted({int(t) for r in searched for t in r["thread_runs"]})
        headers = ["model", "format", "batch"] + [f"p50 ms, {t} thread{'s' * (t != 1)}" for t in counts]
        headers.append("kept")
        rows = []
        for r in searched:
            for b in batch_sizes:
                cells = [r["model"], FORMAT_NAMES[r["format"]], b]
                cells += [format_number((r["thread_runs"].get(str(t)) or {}).get(b)) for t in counts]
                cells.append(threads_label(r, b))
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
            format_ratio(row[f]) for f in ("parameters", "size_bytes", "gzip_bytes",
                                         "peak_rss_bytes", "accuracy")
        ]
        for b in batch_sizes:
            lat = row["latency"][b]
            cells += [format_ratio(lat["p50_ms"]), format_ratio(lat["p99_ms"]),
                      format_ratio(lat["throughput_sps"])]
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
            rows.append([name, b, FORMAT_NAMES[best["format"]], format_number(best["p50_ms"]),
                         format_number(best["floor_p50_ms"]), format_ratio(best["floor_ratio"]),
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


def markdown_table(headers, rows):
    def clean(cell):
        return str(cell).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict_lines(report):
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
        *verdict_lines(report),
        "",
    ]
    if report["budget"]:
        lines += ["Limits: " + "; ".join(f"{k} {v}" for k, v in report["budget"]["limits"]), ""]
    for title, headers, rows, note in tables(report):
        lines += [f"## {title}", "", markdown_table(headers, rows), "", note, ""]
    lines += ["## Runtime settings", ""]
    for r in report["results"]:
        if measured(r):
            settings = ", ".join(f"{k}={v}" for k, v in r["runtime_settings"].items())
            lines.append(f"- {r['model']} {FORMAT_NAMES[r['format']]} ({r['runtime']}, pid "
                         f"{r['pid']}): {settings}")
    lines += ["", "## Environment", "", *environment_lines(report), ""]
    if report.get("command"):
        lines += ["## Reproduce", "", "```", report["command"], "```", ""]
    return "\n".join(lines)


def render_plots(report):
    """Two PNGs (bytes): latency distributions, accuracy versus latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in report["results"] if measured(r)]
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
    images["latency"] = figure_png(figure, plt)

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
    verdict = verdict_lines(report)
    css = "fail" if any("FAILED" in line for line in verdict) else "pass"
    parts += [f"<li class='{css}'>{inline_markdown(line.lstrip('- '))}</li>" for line in verdict]
    parts.append("</ul>")
    for title, headers, rows, note in tables(report):
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr>")
        parts += [f"<th>{html.escape(h)}</th>" for h in headers]
        parts.append("</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{inline_markdown(c)}</td>" for c in row) + "</tr>")
        parts.append(f"</table><p class='note'>{inline_markdown(note)}</p>")
    parts.append("<h2>Latency distributions</h2>")
    parts.append(f"<img alt='latency distributions' src='data:image/png;base64,"
                 f"{base64.b64encode(images['latency']).decode()}'>")
    parts.append("<h2>Accuracy versus latency</h2>")
    parts.append(f"<img alt='accuracy versus latency' src='data:image/png;base64,"
                 f"{base64.b64encode(images['accuracy_latency']).decode()}'>")
    parts.append("<h2>Environment</h2><ul>")
    parts += [f"<li>{inline_markdown(line[2:])}</li>" for line in environment_lines(report)]
    parts.append("</ul>")
    if report.get("command"):
        parts.append(f"<h2>Reproduce</h2><pre>{html.escape(report['command'])}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def to_json(report):
    """The report as JSON text, without the raw latency samples."""
    slim = dict(report)
    slim["results"] = [{k: v for k, v in r.items() if k != "samples_ms"} for r in report["results"]]
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
        documents += [("report.md", lambda: render_markdown(report)),
                      ("report.html", lambda: render_html(report))]
    rendered = [(name, make().encode("utf-8")) for name, make in documents]  # render all first
    for name, data in rendered:
        path = os.path.join(output_dir, name)
        written[name] = staging.write_bytes_atomically(path, data, overwrite=True)
    return written
