"""export.runtimes: one adapter per format, used by verify and by the measurement child."""

import numpy as np
import pytest

from export import measure
from export import runtimes


def test_onnx_providers_prefer_cuda_when_installed(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: [
            "AzureExecutionProvider",
            "CUDAExecutionProvider",
            "CPUExecutionProvider",
        ],
    )
    assert runtimes.onnx_providers() == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
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
    quantised = runtimes.quantize_input(x, detail)
    assert quantised.dtype == dtype
    restored = runtimes.dequantize_output(quantised, detail)
    assert np.max(np.abs(restored - x)) <= scale / 2 + 1e-7


def test_quantisation_clips_to_the_integer_range():
    detail = {"dtype": np.int8, "quantization": (0.1, 0)}
    values = runtimes.quantize_input(
        np.array([-100.0, 0.04, 100.0], np.float32), detail
    )
    np.testing.assert_array_equal(values, np.array([-128, 0, 127], np.int8))


def test_float_tensors_pass_through():
    detail = {"dtype": np.float32, "quantization": (0.0, 0)}
    x = np.array([1.5, -2.0], np.float32)
    np.testing.assert_array_equal(
        runtimes.dequantize_output(runtimes.quantize_input(x, detail), detail), x
    )


def test_unknown_format_rejected():
    with pytest.raises(ValueError, match="`fmt` must be one of"):
        runtimes.load("x", "coreml")


@pytest.mark.parametrize(
    "fmt, options",
    [
        ("keras", {}),
        ("savedmodel", {}),
        ("tflite", {}),
        ("onnx", {}),
        ("onnx", {"io_binding": True}),
        ("numpy", {}),
        ("numpy", {"transposed_gemv": True}),
    ],
)
def test_timed_call_computes_the_models_output(artifacts, tmp_path, fmt, options):
    """What is timed is the real inference: its output equals Keras on fresh inputs."""
    model, paths = artifacts
    path = paths[fmt]
    if fmt == "numpy":
        path = measure.save_dense_layers(
            measure.dense_layers(model), str(tmp_path / "w.npz")
        )
    runtime = runtimes.load(path, fmt, 1, options)
    for batch in (1, 3):  # batch 1: the GEMV path of the floor's transposed_gemv option
        x = np.random.default_rng(7).random((batch, 6, 6, 1), dtype=np.float32)
        x = x.reshape(runtime.input_shape(batch, x.shape[1:]))
        _, call, args = runtime.timed(x)
        output = call(*args)
        if options.get("io_binding"):
            output = runtime.bound[1]
        elif isinstance(output, dict):
            output = next(iter(output.values()))
        elif isinstance(output, list):
            output = output[0]
        expected = np.asarray(model(x.reshape(batch, 6, 6, 1), training=False))
        np.testing.assert_allclose(
            np.asarray(output).reshape(batch, -1), expected, rtol=1e-4, atol=1e-5
        )


def test_tflite_weight_tensors_are_the_models_kernels(artifacts):
    model, paths = artifacts
    tensors = runtimes.tflite_weight_tensors(paths["tflite"], min_size=64)
    kernels = sorted(
        np.asarray(layer.kernel).size
        for layer in model.layers
        if hasattr(layer, "kernel")
    )
    assert sorted(array.size for array in tensors.values()) == [
        size for size in kernels if size >= 64
    ]
    first = np.asarray(model.layers[1].kernel)
    assert any(
        array.shape == first.T.shape and np.allclose(array, first.T)
        for array in tensors.values()
    )
