"""Tests for export.measure.child: an ONNX Runtime or LiteRT child never imports TensorFlow."""

import json
import subprocess
import sys

import pytest

from export import measure
from export.measure import worker
from tests.export.tiny_mlp import FAST

# The module each child must import, to show that `-X importtime` saw its imports.
RUNTIME_MODULE = {"onnx": "onnxruntime", "tflite": "ai_edge_litert", "numpy": "numpy"}


def run_child(spec, folder, name):
    """Runs the child under `-X importtime`: one window, then finish."""
    spec_path = folder / f"{name}.json"
    spec_path.write_text(json.dumps(spec))
    commands = [
        {
            "op": "time",
            "batch_size": 1,
            "min_time_s": 0.01,
            "min_iterations": 5,
            "max_time_s": 0.1,
            "warmup_s": 0.0,
        },
        {"op": "finish"},
    ]
    completed = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-P",
            "-m",
            worker.CHILD_MODULE,
            str(spec_path),
        ],
        input="".join(json.dumps(command) + "\n" for command in commands),
        capture_output=True,
        text=True,
        env=worker.child_environment(spec["format"], spec["threads"]),
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    imported = {
        line.split("|")[-1].strip()
        for line in completed.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    replies = [
        json.loads(line) for line in completed.stdout.splitlines() if line.strip()
    ]
    return imported, replies


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "numpy"])
def test_child_never_imports_tensorflow(artifacts, tmp_path, fmt):
    _, paths = artifacts
    spec, _ = measure.build_spec(paths[fmt], fmt, (1,), 1, str(tmp_path), timing=FAST)
    imported, replies = run_child(spec, tmp_path, fmt)
    top_level = {name.split(".")[0] for name in imported}
    assert RUNTIME_MODULE[fmt] in top_level  # the import log is complete...
    assert "tensorflow" not in top_level  # ...and holds no TensorFlow
    assert "keras" not in top_level
    ready, window, result = replies
    assert ready["ready"] and window["calls"] >= 5
    assert "tensorflow" not in result["loaded_modules"]
    assert result["latency"]["1"]["iterations"] == window["calls"]
    # How it was timed is recorded: calls per timed sample, the same in both places.
    stats = result["latency"]["1"]
    assert stats["calls_per_sample"] == window["calls_per_sample"] >= 1
    assert stats["samples"] * stats["calls_per_sample"] == window["calls"]
    assert len(result["samples_ms"]["1"]) == stats["samples"]


@pytest.mark.parametrize("min_sample_s, blocks", [(0.0, False), (0.002, True)])
def test_child_times_short_calls_in_blocks(artifacts, tmp_path, min_sample_s, blocks):
    """`min_sample_s` 0 keeps one call a sample; 2 ms makes a tiny model's samples blocks."""
    _, paths = artifacts
    spec, _ = measure.build_spec(
        paths["tflite"], "tflite", (1,), 1, str(tmp_path), timing=FAST
    )
    spec["min_sample_s"] = min_sample_s
    _, (_, window, result) = run_child(spec, tmp_path, "tflite")
    stats = result["latency"]["1"]
    assert (stats["calls_per_sample"] > 1) == blocks
    assert stats["iterations"] == stats["samples"] * stats["calls_per_sample"]
    # A block lasts about `min_sample_s` (k was estimated from a probe of single calls).
    block_ms = stats["p50_ms"] * stats["calls_per_sample"]
    assert block_ms >= min_sample_s * 1e3 * 0.5


@pytest.mark.e2e
def test_keras_child_does_import_tensorflow(artifacts, tmp_path):
    """The check above can fail: a Keras child shows TensorFlow in the same log."""
    _, paths = artifacts
    spec, _ = measure.build_spec(
        paths["keras"], "keras", (1,), 1, str(tmp_path), timing=FAST
    )
    imported, replies = run_child(spec, tmp_path, "keras")
    assert "tensorflow" in {name.split(".")[0] for name in imported}
    assert "tensorflow" in replies[-1]["loaded_modules"]


@pytest.mark.parametrize("arguments", [[], ["--help"], ["absent.json"], ["a", "b"]])
def test_child_without_a_spec_file_prints_its_usage_and_exits_2(arguments, tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "export.measure.child", *arguments],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=worker.child_environment("numpy", 1),
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("usage: python -m export.measure.child")
    assert "Traceback" not in completed.stderr
