"""Cell formatting shared by the report's tables: names, numbers, validity, lineage."""

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


def markdown_table(headers, rows):
    def clean(cell):
        return str(cell).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
