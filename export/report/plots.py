"""The report's plots (matplotlib, Agg): latency distributions; accuracy against p99
latency and size, with the Pareto fronts. PNG bytes, embedded in the HTML page.
"""

import io

import numpy as np

from export.report.cells import megabytes
from export.report.cells import variant_name
from export.report.compare import measured


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
