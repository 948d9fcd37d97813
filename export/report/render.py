"""Render a report (from `export.report.build`) as Markdown, HTML and JSON.

The tables come from `export.report.tables` (each held once, so the Markdown and
HTML pages cannot disagree), the plots from `export.report.plots`. `write_report`
renders every document first, then writes each atomically (`export.staging`).
"""

import base64
import html
import json
import os
import re

import numpy as np

from export import staging
from export.measure.worker import REWARM_S
from export.report.cells import markdown_table
from export.report.cells import variant_name
from export.report.compare import measured
from export.report.plots import render_plots
from export.report.tables import tables


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
            if release.get("error"):
                lines.append(f"**Release NOT written:** {release['error']}")
        else:
            lines.append("**Release: none** (no variant meets the budget).")
    rejected = [r for r in report["results"] if r.get("rejected")]
    if rejected:
        lines.append(
            f"{len(rejected)} quantised variant(s) REJECTED by their parity check:"
        )
        lines += [f"- {r['model']} {r['variant']}: {r['error']}" for r in rejected]
    failed = [r for r in failed if not r.get("rejected")]
    teacher = [r for r in failed if r.get("role", r["model"]) == "teacher"]
    failed = [r for r in failed if r not in teacher]
    if failed:
        lines.append(f"**{len(failed)} export(s)/measurement(s) FAILED:**")
        lines += [f"- {r['model']} {r['format']}: {r['error']}" for r in failed]
    if teacher:
        lines.append(
            f"{len(teacher)} teacher format(s) FAILED (the student is judged on its "
            "own formats; ratios against the teacher are missing there):"
        )
        lines += [f"- {r['model']} {r['format']}: {r['error']}" for r in teacher]
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
