"""Tests for export.measure.artifacts: structure and meaning of the figures (never timing asserts)."""

import os

import numpy as np
import pytest

from export import measure
from tests.export.tiny_mlp import FAST

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
        assert stats["samples"] == len(result["samples_ms"][batch]) >= 3
        assert stats["iterations"] == stats["calls_per_sample"] * stats["samples"]
        assert stats["warmup_iterations"] >= 3
        assert stats["max_ms"] == pytest.approx(
            max(result["samples_ms"][batch]), abs=1e-4
        )
        # Throughput is samples per second of timed calls: batch / mean latency.
        assert stats["throughput_sps"] == pytest.approx(
            int(batch) * 1e3 / stats["mean_ms"], rel=1e-6
        )


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


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fmt": "pytorch"}, "`fmt` must be one of"),
        ({"batch_sizes": (0,)}, "`batch_sizes` must be positive"),
        ({"batch_sizes": ()}, "`batch_sizes` must be positive"),
        ({"threads": 0}, "`threads` must be a positive"),
        (
            {"options": {"spin": True}},
            r"`options` for onnx must be among \['allow_spinning'",
        ),
        ({"min_time_s": 0}, "`min_time_s` must be > 0"),
        ({"x": np.zeros((2, 6, 6, 1))}, "`x` and `y` must be given together"),
        (
            {"x": np.zeros((2, 6, 6, 1)), "y": np.zeros(3, int)},
            "`y` must be 1-D integer labels",
        ),
    ],
)
def test_bad_arguments_fail_in_one_line(artifacts, kwargs, match):
    _, paths = artifacts
    arguments = {"fmt": "onnx", **kwargs}
    with pytest.raises(ValueError, match=match) as error:
        measure.measure_artifact(paths["onnx"], **arguments)
    assert "\n" not in str(error.value)


def test_missing_path_and_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match="`path` must exist"):
        measure.measure_artifact(str(tmp_path / "nothing.onnx"), "onnx")
    with pytest.raises(ValueError, match="`path` must end in one of"):
        measure.infer_format(str(tmp_path / "model.pt"))


def test_runtime_failure_is_one_line_runtime_error(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    with pytest.raises(RuntimeError, match="measuring onnx .* failed") as error:
        measure.measure_artifact(str(broken), "onnx", batch_sizes=(1,), **FAST)
    assert "\n" not in str(error.value)


def test_floor_keeps_the_faster_thread_count_per_batch_size(artifacts):
    _, paths = artifacts
    floor = measure.measure_floor(
        paths["keras"], batch_sizes=BATCH_SIZES, threads=2, **FAST
    )
    assert set(floor["thread_runs"]) == {"1", "2"}
    assert floor["runtime_settings"]["threads_tried"] == [1, 2]
    assert len(set(floor["pid"])) == 2
    for batch, stats in floor["latency"].items():
        assert floor["runtime_settings"]["threads_per_batch"][batch] == stats["threads"]
        p50s = {t: run[batch] for t, run in floor["thread_runs"].items()}
        assert stats["p50_ms"] == min(p50s.values())
        assert p50s[str(stats["threads"])] == stats["p50_ms"]
        assert (
            len(floor["samples_ms"][batch]) * stats["calls_per_sample"]
            == stats["iterations"]
        )
