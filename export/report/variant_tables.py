"""Per-variant tables: parity, start-up, latency distribution, Pareto fronts, release."""

from export.report.cells import format_number
from export.report.cells import lineage_label
from export.report.cells import megabytes
from export.report.cells import validity_label
from export.report.cells import variant_name
from export.report.compare import measured


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
                format_number(row.get("zero_collapsed")),
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
                    "values sent to zero",
                    "max abs error",
                ],
                rows,
                "LiteRT's QuantizationDebugger on the calibration inputs: each quantised op's "
                "output against its float value; RMSE in units of the quantisation scale (about "
                "0.29 is rounding alone); the fraction of its nonzero values int8 sends to zero "
                "(near 1 when a mask or an outlier stretches the range; those layers rank first). The variant `tflite_int8_selective` keeps the fewest "
                "layers in float that pass (export.float_fallback) and is measured with the "
                "others.",
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
