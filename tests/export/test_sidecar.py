"""Tests for export.sidecar: a sidecar is checked against the artifact it describes."""

import copy
import json

import pytest

from export import sidecar


@pytest.fixture(scope="module")
def exported(artifacts):
    """`{format: (path, sidecar content)}` of the tiny MLP's verified exports."""
    _, paths = artifacts
    return {
        fmt: (paths[fmt], sidecar.read_sidecar(paths[fmt]))
        for fmt in ("tflite", "onnx", "savedmodel")
    }


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "savedmodel"])
def test_an_exported_sidecar_records_the_digest_and_is_borne_out(exported, fmt):
    path, content = exported[fmt]
    assert content["sha256"] == sidecar.file_digest(path)
    assert sidecar.artifact_discrepancies(content, path) == []


@pytest.mark.parametrize(
    "fmt, change, match",
    [
        ("tflite", {"options": {"quantize": "int8"}}, "quantize 'int8' but"),
        ("tflite", {"options": {"quantize": "float16"}}, "quantize 'float16' but"),
        ("tflite", {"options": {"quantize": "int4"}}, "not a TFLite mode"),
        (
            "tflite",
            {"options": {"tensor_types": {"kernels": {"int8": 3}}}},
            "tensor_types differ",
        ),
        ("tflite", {"options": {"input_dtype": "int8"}}, "input_dtype 'int8' but"),
        ("tflite", {"format": "onnx"}, "format 'onnx' but the file is tflite"),
        ("tflite", {"sha256": "0" * 64}, "sha256 differs"),
        ("onnx", {"options": {"quantize": "int8"}}, "quantize 'int8' but the graph"),
        ("onnx", {"format": "tflite"}, "but the file is onnx"),
        ("savedmodel", {"options": {"quantize": "dynamic"}}, "a SavedModel is float"),
    ],
)
def test_a_sidecar_edited_after_export_is_caught_by_the_artifact(
    exported, fmt, change, match
):
    path, content = exported[fmt]
    edited = copy.deepcopy(content)
    for key, value in change.items():
        if isinstance(value, dict):
            edited[key].update(value)
        else:
            edited[key] = value
    found = sidecar.artifact_discrepancies(edited, path)
    assert any(match in line for line in found), found
    assert all("\n" not in line and len(line) < 300 for line in found)


def test_a_sidecar_claiming_int8_for_a_float_tflite_says_what_the_file_holds(exported):
    path, content = exported["tflite"]
    edited = json.loads(json.dumps(content))
    edited["options"]["quantize"] = "dynamic"
    (line,) = [
        x for x in sidecar.artifact_discrepancies(edited, path) if "quantize" in x
    ]
    assert "float32" in line
