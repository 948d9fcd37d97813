"""The JSON sidecar written next to every export (`student.onnx.json`).

It records what a deployer needs to trust the artifact without re-running
the checks: file size and SHA-256, the parity figures from `export.verify`,
accuracy on labelled data when given, the export options (the quantisation
mode and, for TFLite, the tensor types read from the file), and the versions
of the converters and runtimes that produced and checked it.

A sidecar is a claim: `artifact_discrepancies` checks it against the artifact
itself (its digest, and the quantisation mode and tensor types read back from
the TFLite flatbuffer, the ONNX graph or the SavedModel folder), so that an
edited sidecar is never shipped beside a file it does not describe.
"""

import datetime
import importlib.metadata
import json
import os
import platform

from export import staging
from kdutils.digests import file_digest

VERSIONED_DISTRIBUTIONS = (
    ("tensorflow", "tensorflow"),
    ("keras", "keras"),
    ("tf2onnx", "tf2onnx"),
    ("onnx", "onnx"),
    ("onnxruntime", "onnxruntime"),
    ("onnxruntime_gpu", "onnxruntime-gpu"),
    ("litert", "ai-edge-litert"),
    ("numpy", "numpy"),
)


def sidecar_path(artifact_path):
    """`<artifact>.json`, beside the artifact (also for SavedModel dirs)."""
    return os.path.normpath(os.fspath(artifact_path)) + ".json"


def versions():
    """Installed versions of the converters and runtimes (None if absent)."""
    found = {"python": platform.python_version()}
    for key, distribution in VERSIONED_DISTRIBUTIONS:
        try:
            found[key] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[key] = None
    return found


def build_sidecar(artifact_path, size_bytes, source, options, parity, sha256=None):
    """The sidecar content.

    Args:
        artifact_path: Final path of the artifact.
        size_bytes: Artifact size (sum over files for a directory).
        source: Description of the exported model (path or model name).
        options: Export options (format-specific, JSON-serialisable).
        parity: The report of `export.verify.verify_artifact`.
        sha256: `file_digest` of the artifact as written.

    Returns:
        A JSON-serialisable dict.
    """
    return {
        "artifact": os.path.basename(os.path.normpath(os.fspath(artifact_path))),
        "format": parity["format"],
        "size_bytes": int(size_bytes),
        "sha256": sha256,
        "source": source,
        "options": options,
        "parity": {k: v for k, v in parity.items() if k != "accuracy"},
        "accuracy": parity.get("accuracy"),
        "versions": versions(),
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(
            timespec="seconds"
        ),
    }


def encode(content):
    """Sidecar dict -> UTF-8 JSON bytes (indented, sorted keys)."""
    return (json.dumps(content, indent=2, sort_keys=True) + "\n").encode()


def read_json(path, error):
    """The JSON file at `path`, parsed; an unreadable one raises `error(...)`.

    Args:
        path: The file to read.
        error: Called with what went wrong (a string: the reader's or the
            parser's message); returns the exception to raise in its place.

    Returns:
        The parsed JSON value (any type: the caller checks it).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as reason:
        raise error(str(reason)) from None


def read_sidecar(artifact_path):
    """Loads the sidecar of an artifact."""
    with open(sidecar_path(artifact_path), encoding="utf-8") as handle:
        return json.load(handle)


def write_to(path, content):
    """Writes sidecar `content` at `path` (a temporary path, usually)."""
    with open(path, "wb") as handle:
        handle.write(encode(content))


def write_sidecar(artifact_path, content):
    """Writes the sidecar beside `artifact_path` atomically."""
    return staging.write_bytes_atomically(
        sidecar_path(artifact_path), encode(content), overwrite=True
    )


def artifact_discrepancies(content, path):
    """What sidecar `content` claims that the artifact at `path` does not bear out.

    Compared with the artifact itself: its SHA-256 (when the sidecar records
    one); its kind (a TFLite flatbuffer, an ONNX graph, a SavedModel folder)
    against `format`; the quantisation mode `options["quantize"]` against the
    tensor types read from the file (TFLite: every weighted op's kernel and
    activation types, and the model's input and output types, also against
    `options["tensor_types"]`, `input_dtype`, `output_dtype`; ONNX: 8-bit
    weight initializers; a SavedModel is float).

    Args:
        content: A parsed sidecar.
        path: The artifact (file, or SavedModel folder).

    Returns:
        A list of short strings, empty when the sidecar describes the artifact.
    """
    if not isinstance(content, dict):
        return ["the sidecar is not a JSON object"]
    found = []
    recorded = content.get("sha256")
    if recorded is not None and recorded != file_digest(path):
        found.append("sha256 differs from the file's")
    options = content.get("options") if isinstance(content.get("options"), dict) else {}
    fmt, quantize = content.get("format"), options.get("quantize", "none")
    kind = _artifact_kind(path)
    if fmt != kind:
        found.append(
            f"format {_short(fmt)} but the file is {kind or 'of no known kind'}"
        )
    elif fmt == "tflite":
        found += _tflite_discrepancies(path, options, quantize)
    elif fmt == "onnx":
        eight_bit = _onnx_eight_bit_weights(path)
        if (quantize == "int8") != (eight_bit > 0):
            found.append(
                f"quantize {_short(quantize)} but the graph holds {eight_bit} 8-bit "
                "weight tensor(s)"
            )
    elif quantize != "none":
        found.append(f"quantize {_short(quantize)} but a SavedModel is float")
    return found


def _short(value):
    from kdutils.echo import bounded

    return bounded(value, limit=40, quote=True)


def _artifact_kind(path):
    """`"savedmodel"`, `"tflite"`, `"onnx"` or None, from the bytes on disk."""
    if os.path.isdir(path):
        return (
            "savedmodel"
            if os.path.isfile(os.path.join(path, "saved_model.pb"))
            else None
        )
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head[4:8] == b"TFL3":
        return "tflite"
    try:
        import onnx

        onnx.load(path, load_external_data=False)
    except Exception:  # Not a protobuf ONNX model.
        return None
    return "onnx"


def _tflite_discrepancies(path, options, quantize):
    from export import pipeline
    from export import to_tflite

    if quantize not in to_tflite.QUANTIZE_MODES:
        return [f"quantize {_short(quantize)} is not a TFLite mode"]
    found = []
    # int8 with layers kept in float (the report's selective variant, any
    # `--float-fallback=auto` file): some weighted ops in float, one in int8.
    fallback = bool(options.get("selective")) or "float_fallback" in options
    try:
        types = to_tflite.check_tensor_types(
            path, quantize, bool(options.get("int8_io")), float_allowed=fallback
        )
    except pipeline.ConversionError as error:
        found.append(f"quantize {_short(quantize)} but {str(error).split('; ')[0]}")
        types = None
    if (
        types is not None
        and "tensor_types" in options
        and options["tensor_types"] != types
    ):
        found.append("tensor_types differ from the file's")
    _, io = to_tflite.tensor_types(path)
    for side in ("input", "output"):
        claimed = options.get(f"{side}_dtype")
        if claimed is not None and claimed != io[side]:
            found.append(f"{side}_dtype {_short(claimed)} but the file's is {io[side]}")
    return found


def _onnx_eight_bit_weights(path):
    import numpy as np
    import onnx
    from onnx import TensorProto

    graph = onnx.load(path, load_external_data=False).graph
    eight_bit = (TensorProto.INT8, TensorProto.UINT8)
    return sum(
        1
        for t in graph.initializer
        if t.data_type in eight_bit and int(np.prod(t.dims)) > 1
    )
