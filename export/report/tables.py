"""The report's comparison tables: teacher against student, per format, and the floor.

`tables` holds every table once, as `(title, headers, rows, note)` (the variant
tables of `export.report.variant_tables` last); the Markdown and HTML pages render
the same tables (`export.report.render`), so they cannot disagree.
"""

from export.report.cells import FORMAT_NAMES
from export.report.cells import format_number
from export.report.cells import format_ratio
from export.report.cells import megabytes
from export.report.cells import threads_label
from export.report.cells import variant_name
from export.report.compare import measured
from export.report.variant_tables import variant_tables


def latency_row(entry, call, threads, stats, floor_ratio):
    """One row of the latency table: a runtime's call at one batch size."""
    return [
        entry["model"],
        variant_name(entry),
        f"`{call}`",
        threads,
        format_number(stats["p50_ms"]),
        format_number(stats["p90_ms"]),
        format_number(stats["p99_ms"]),
        format_number(stats["max_ms"]),
        f"{stats['throughput_sps']:.0f}",
        str(stats["iterations"]),
        format_ratio(floor_ratio),
    ]


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
                latency_row(r, r["timed_call"], threads_label(r, b), stats, ratio)
            )
            for label, per_batch in (r.get("alternatives") or {}).items():
                rows.append(
                    latency_row(r, label, str(r["threads"]), per_batch[b], None)
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
        if row.get("teacher_error"):
            blank = len(headers) - 3
            rows.append(
                [row.get("model", "student"), FORMAT_NAMES[row["format"]]]
                + [f"teacher FAILED: {row['teacher_error']}"]
                + ["–"] * blank
            )
            continue
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
