"""The JSON sidecar written next to every export (`student.onnx.json`).

It records what a deployer needs to trust the artifact without re-running
the checks: file size, the parity figures from `export.verify`, accuracy on
labelled data when given, the export options, and the versions of the
converters and runtimes that produced and checked it.
"""

import datetime
import importlib.metadata
import json
import os
import platform

from export import staging

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


def build_sidecar(artifact_path, size_bytes, source, options, parity):
    """The sidecar content.

    Args:
        artifact_path: Final path of the artifact.
        size_bytes: Artifact size (sum over files for a directory).
        source: Description of the exported model (path or model name).
        options: Export options (format-specific, JSON-serialisable).
        parity: The report of `export.verify.verify_artifact`.

    Returns:
        A JSON-serialisable dict.
    """
    return {
        "artifact": os.path.basename(os.path.normpath(os.fspath(artifact_path))),
        "format": parity["format"],
        "size_bytes": int(size_bytes),
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
