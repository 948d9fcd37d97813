"""Tests for export.measure: structure and meaning of the figures (never timing asserts)."""

import gzip
import os

import keras
import numpy as np
import pytest

from export import _runner
from export import measure

BATCH_SIZES = (1, 4)
THREADS = 2
THREAD_SETTING = {
    "keras": "intra_op_parallelism_threads",
    "savedmodel": "intra_op_parallelism_threads",
    "tflite": "num_threads",
    "onnx": "intra_op_num_threads",
    "numpy": "OPENBLAS_NUM_THREADS",
}
# Small timing bounds: these tests check what is reported, not how fast anything is.
FAST = {"min_time_s": 0.02, "min_iterations": 25, "max_time_s": 0.3, "warmup_s": 0.01}


def _tiny_mlp(seed=0, hidden=(12, 8)):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((6, 6, 1)), keras.layers.Flatten()]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
    layers.append(keras.layers.Dense(10))
    model = keras.Sequential(layers)
    # Non-zero biases, so that no converter can drop them.
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            layer.bias.assign(np.random.default_rng(seed).normal(0, 0.5, layer.bias.shape))
    return model


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """One tiny MLP in every format, exported with the project's verified converters."""
    from export.to_onnx import export_onnx
    from export.to_savedmodel import export_savedmodel
    from export.to_tflite import export_tflite

    folder = tmp_path_factory.mktemp("measure")
    model = _tiny_mlp()
    paths = {"keras": str(folder / "mlp.keras")}
    model.save(paths["keras"])
    paths["savedmodel"] = export_savedmodel(model, str(folder / "mlp_savedmodel")).path
    paths["tflite"] = export_tflite(model, str(folder / "mlp.tflite")).path
    paths["onnx"] = export_onnx(model, str(folder / "mlp.onnx")).path
    paths["numpy"] = paths["keras"]  # the floor extracts the weights from the .keras file
    return model, paths


@pytest.fixture(scope="module")
def labelled(artifacts):
    """Inputs whose labels make the accuracy exactly 0.5: half right, half wrong."""
    model, _ = artifacts
    x = np.random.default_rng(1).random((60, 6, 6, 1), dtype=np.float32)
    logits = np.asarray(model(x, training=False))
    top2 = np.sort(logits, axis=1)[:, -2:]
    keep = (top2[:, 1] - top2[:, 0]) > 1e-3  # no near-ties that rounding could flip
    x, predicted = x[keep][:40], logits[keep][:40].argmax(axis=1)
    y = predicted.copy()
    y[::2] = (predicted[::2] + 1) % 10
    return x, y


@pytest.fixture(scope="module")
def results(artifacts, labelled):
    _, paths = artifacts
    x, y = labelled
    return {
        fmt: measure.measure_artifact(
            paths[fmt], fmt, batch_sizes=BATCH_SIZES, threads=THREADS, x=x, y=y, **FAST
        )
        for fmt in measure.FORMATS
    }


@pytest.mark.parametrize("fmt", measure.FORMATS)
def test_percentiles_are_ordered_and_counted(results, fmt):
    result = results[fmt]
    assert set(result["latency"]) == {str(b) for b in BATCH_SIZES}
    for batch, stats in result["latency"].items():
        assert 0 < stats["min_ms"] <= stats["p50_ms"] <= stats["p90_ms"]
        assert stats["p90_ms"] <= stats["p99_ms"] <= stats["max_ms"]
        assert stats["iterations"] == len(result["samples_ms"][batch]) >= 3
        assert stats["warmup_iterations"] >= 3
        assert stats["max_ms"] == pytest.approx(max(result["samples_ms"][batch]), abs=1e-4)
        # Throughput is samples per second of timed calls: batch / mean latency.
        assert stats["throughput_sps"] == pytest.approx(int(batch) * 1e3 / stats["mean_ms"], rel=1e-6)


@pytest.mark.parametrize("fmt", measure.FORMATS)
def test_accuracy_on_constructed_labels(results, fmt):
    assert results[fmt]["accuracy"] == pytest.approx(0.5)
    assert results[fmt]["accuracy_examples"] == 40


@pytest.mark.parametrize("fmt", measure.FORMATS)
def test_size_and_gzip_size_are_of_the_loaded_artifact(results, artifacts, fmt):
    _, paths = artifacts
    result = results[fmt]
    if fmt == "savedmodel":
        expected = sum(
            os.path.getsize(os.path.join(root, name))
            for root, _, names in os.walk(paths[fmt])
            for name in names
        )
        assert result["size_bytes"] == expected
    elif fmt != "numpy":
        assert result["size_bytes"] == os.path.getsize(paths[fmt])
    else:  # the floor loads an .npz of float32 weights: at least 4 bytes per parameter
        assert result["size_bytes"] >= 4 * result["parameters"]
    assert 0 < result["gzip_bytes"]


@pytest.mark.parametrize("fmt", measure.FORMATS)
def test_parameters_and_threads_recorded(results, artifacts, fmt):
    model, _ = artifacts
    assert results[fmt]["parameters"] == model.count_params()
    assert results[fmt]["threads"] == THREADS
    assert results[fmt]["timed_call"]
    # The runtime's own thread setting carries the requested count.
    assert str(results[fmt]["runtime_settings"][THREAD_SETTING[fmt]]) == str(THREADS)


def test_each_runtime_ran_in_its_own_process(results):
    pids = [result["pid"] for result in results.values()]
    assert os.getpid() not in pids
    assert len(set(pids)) == len(pids)


@pytest.mark.parametrize("fmt", measure.FORMATS)
def test_peak_memory_is_the_childs(results, fmt):
    result = results[fmt]
    assert 0 < result["baseline_rss_bytes"] <= result["peak_rss_bytes"]
    if fmt in ("tflite", "onnx", "numpy"):
        # A child that never imports TensorFlow must not report TensorFlow's memory
        # (ru_maxrss would: it survives exec from the forked parent).
        assert result["peak_rss_bytes"] < 400e6


def test_keras_also_reports_model_predict(results):
    alternatives = results["keras"]["alternatives"]
    assert set(alternatives) == {"model.predict"}
    assert set(alternatives["model.predict"]) == {str(b) for b in BATCH_SIZES}
    assert "training=False" in results["keras"]["timed_call"]


def test_gzip_size_small_for_sparse_file_and_directory(tmp_path):
    sparse = tmp_path / "sparse.bin"
    data = np.zeros(200_000, np.uint8)
    data[::997] = 7
    sparse.write_bytes(data.tobytes())
    assert measure.artifact_size(str(sparse)) == os.path.getsize(sparse)
    size = measure.gzip_size(str(sparse))
    assert size < os.path.getsize(sparse) / 20
    # Same answer as the gzip module's own output, up to the header's file name and time.
    assert abs(size - len(gzip.compress(data.tobytes(), compresslevel=6))) < 32
    noise = tmp_path / "folder" / "noise.bin"
    noise.parent.mkdir()
    noise.write_bytes(np.random.default_rng(0).bytes(50_000))
    (tmp_path / "folder" / "copy.bin").write_bytes(data.tobytes())
    folder = str(tmp_path / "folder")
    assert measure.artifact_size(folder) == 250_000
    assert 50_000 < measure.gzip_size(folder) < 60_000  # noise does not compress


ACTIVATIONS = ["relu", "tanh", "sigmoid", "linear", "softmax", "relu6"]


@pytest.mark.parametrize("transposed_gemv", [False, True])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_numpy_forward_equals_keras(activation, transposed_gemv):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation=activation),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(16),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dense(10),
        ]
    )
    batch_norm = model.layers[4]
    rng = np.random.default_rng(4)
    batch_norm.moving_mean.assign(rng.normal(0, 1, 16))
    batch_norm.moving_variance.assign(rng.uniform(0.5, 2, 16))
    batch_norm.gamma.assign(rng.normal(1, 0.3, 16))
    forward = measure.numpy_forward(model, transposed_gemv=transposed_gemv)
    for batch in (1, 7):  # with transposed_gemv, batch 1 takes the matrix-vector path
        x = np.random.default_rng(5).random((batch, 28, 28, 1), dtype=np.float32)
        expected = np.asarray(model(x, training=False), dtype=np.float64)
        np.testing.assert_allclose(forward(x), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(forward.bind(x)(), expected, rtol=1e-5, atol=1e-5)
    # gamma, beta, moving mean and variance fold into the preceding kernel and bias.
    assert forward.parameters() == model.count_params() - 4 * 16


def test_numpy_forward_refuses_convolutions():
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv"), keras.layers.Flatten(),
         keras.layers.Dense(10)]
    )
    with pytest.raises(ValueError, match=r"not a dense network.*'conv' \(Conv2D\)"):
        measure.dense_layers(model)


def test_numpy_floor_refuses_branching_functional_model():
    inputs = keras.Input((5,))
    left = keras.layers.Dense(4, name="left")(inputs)
    right = keras.layers.Dense(4, name="right")(inputs)
    model = keras.Model(inputs, keras.layers.Add()([left, right]))
    with pytest.raises(ValueError, match="not a"):
        measure.dense_layers(model)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fmt": "pytorch"}, "fmt must be one of"),
        ({"batch_sizes": (0,)}, "batch_sizes must be positive"),
        ({"batch_sizes": ()}, "batch_sizes must be positive"),
        ({"threads": 0}, "threads must be a positive"),
        ({"options": {"spin": True}}, r"options for onnx must be among \['allow_spinning'"),
        ({"min_time_s": 0}, "min_time_s must be > 0"),
        ({"x": np.zeros((2, 6, 6, 1))}, "x and y must be given together"),
        ({"x": np.zeros((2, 6, 6, 1)), "y": np.zeros(3, int)}, "y must be 1-D integer labels"),
    ],
)
def test_bad_arguments_fail_in_one_line(artifacts, kwargs, match):
    _, paths = artifacts
    arguments = {"fmt": "onnx", **kwargs}
    with pytest.raises(ValueError, match=match) as error:
        measure.measure_artifact(paths["onnx"], **arguments)
    assert "\n" not in str(error.value)


def test_missing_path_and_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match="path must exist"):
        measure.measure_artifact(str(tmp_path / "nothing.onnx"), "onnx")
    with pytest.raises(ValueError, match="path must end in one of"):
        measure.infer_format(str(tmp_path / "model.pt"))


def test_runtime_failure_is_one_line_runtime_error(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    with pytest.raises(RuntimeError, match="measuring onnx .* failed") as error:
        measure.measure_artifact(str(broken), "onnx", batch_sizes=(1,), **FAST)
    assert "\n" not in str(error.value)


def test_latency_summary_matches_numpy_percentiles():
    samples = np.random.default_rng(0).integers(1_000, 1_000_000, 501)
    summary = _runner.latency_summary(samples, batch_size=8)
    p50, p90, p99 = np.percentile(samples / 1e6, [50, 90, 99])
    assert summary["p50_ms"] == pytest.approx(p50)
    assert summary["p90_ms"] == pytest.approx(p90)
    assert summary["p99_ms"] == pytest.approx(p99)
    assert summary["max_ms"] == pytest.approx(samples.max() / 1e6)
    assert summary["throughput_sps"] == pytest.approx(8 * 501 / (samples.sum() / 1e9))


def test_time_call_is_bounded_and_counts_only_the_call():
    calls = []

    def call(value):
        calls.append(value)

    samples, warmup = _runner.time_call(call, (1,), min_iterations=50, min_time_s=0.0,
                                        max_time_s=10.0, warmup_s=0.0)
    assert len(samples) == 50 and warmup == 3 and len(calls) == 53
    import time

    samples, _ = _runner.time_call(time.sleep, (0.02,), min_iterations=1000, min_time_s=0.0,
                                   max_time_s=0.1, warmup_s=0.0)
    assert 3 <= len(samples) <= 6  # the time bound wins over min_iterations
    assert min(samples) >= 0.02e9


def test_floor_keeps_the_faster_thread_count_per_batch_size(artifacts):
    _, paths = artifacts
    floor = measure.measure_floor(paths["keras"], batch_sizes=BATCH_SIZES, threads=2, **FAST)
    assert set(floor["thread_runs"]) == {"1", "2"}
    assert floor["runtime_settings"]["threads_tried"] == [1, 2]
    assert len(set(floor["pid"])) == 2
    for batch, stats in floor["latency"].items():
        assert floor["runtime_settings"]["threads_per_batch"][batch] == stats["threads"]
        p50s = {t: run[batch] for t, run in floor["thread_runs"].items()}
        assert stats["p50_ms"] == min(p50s.values())
        assert p50s[str(stats["threads"])] == stats["p50_ms"]
        assert len(floor["samples_ms"][batch]) == stats["iterations"]


@pytest.mark.parametrize(
    "fmt, options",
    [("keras", {}), ("savedmodel", {}), ("tflite", {}), ("onnx", {}), ("onnx", {"io_binding": True}),
     ("numpy", {}), ("numpy", {"transposed_gemv": True})],
)
def test_timed_call_computes_the_models_output(artifacts, tmp_path, fmt, options):
    """What is timed is the real inference: its output equals Keras on fresh inputs."""
    model, paths = artifacts
    path = paths[fmt]
    if fmt == "numpy":
        path = measure.save_dense_layers(measure.dense_layers(model), str(tmp_path / "w.npz"))
    runtime = _runner.RUNTIMES[fmt](path, 1, options)
    for batch in (1, 3):  # batch 1: the GEMV path of the floor's transposed_gemv option
        x = np.random.default_rng(7).random((batch, 6, 6, 1), dtype=np.float32)
        x = x.reshape(runtime.input_shape(batch, x.shape[1:]))
        _, call, args = runtime.timed(x)
        output = call(*args)
        if options.get("io_binding"):
            output = runtime._bound[1]
        elif isinstance(output, dict):
            output = next(iter(output.values()))
        elif isinstance(output, list):
            output = output[0]
        expected = np.asarray(model(x.reshape(batch, 6, 6, 1), training=False))
        np.testing.assert_allclose(
            np.asarray(output).reshape(batch, -1), expected, rtol=1e-4, atol=1e-5
        )
