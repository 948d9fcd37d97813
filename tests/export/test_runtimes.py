"""export.runtimes: provider choice and int8 (de)quantisation of LiteRT I/O."""

import numpy as np
import pytest

from export import runtimes


def test_onnx_providers_prefer_cuda_when_installed(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["AzureExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert runtimes.onnx_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["AzureExecutionProvider", "CPUExecutionProvider"],
    )
    assert runtimes.onnx_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_int_quantisation_round_trip_within_half_a_step(dtype):
    scale, zero_point = 1 / 255, -128 if dtype == np.int8 else 0
    detail = {"dtype": dtype, "quantization": (scale, zero_point)}
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)
    quantised = runtimes._quantize(x, detail)
    assert quantised.dtype == dtype
    restored = runtimes._dequantize(quantised, detail)
    assert np.max(np.abs(restored - x)) <= scale / 2 + 1e-7


def test_quantisation_clips_to_the_integer_range():
    detail = {"dtype": np.int8, "quantization": (0.1, 0)}
    values = runtimes._quantize(np.array([-100.0, 0.04, 100.0], np.float32), detail)
    np.testing.assert_array_equal(values, np.array([-128, 0, 127], np.int8))


def test_float_tensors_pass_through():
    detail = {"dtype": np.float32, "quantization": (0.0, 0)}
    x = np.array([1.5, -2.0], np.float32)
    np.testing.assert_array_equal(runtimes._dequantize(runtimes._quantize(x, detail), detail), x)


def test_unknown_format_rejected():
    with pytest.raises(ValueError, match="format must be one of"):
        runtimes.artifact_runner("x", "coreml")
