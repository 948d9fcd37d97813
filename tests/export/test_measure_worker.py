"""Tests for export.measure.worker: interleaved timing windows (what is timed when, never how fast)."""

import time

import pytest

from export import measure
from export.measure import timing
from export.measure import worker
from tests.export.tiny_mlp import FAST

BATCH_SIZES = (1, 4)
ROUNDS = 3


@pytest.fixture(scope="module")
def interleaved(artifacts):
    _, paths = artifacts
    jobs = [worker.Job(paths[fmt], fmt, 1) for fmt in ("onnx", "tflite", "numpy")]
    steps = []
    results = measure.measure_artifacts(
        jobs, BATCH_SIZES, rounds=ROUNDS, on_step=steps.append, **FAST
    )
    return results, steps


def test_every_runtime_gets_one_window_per_round_and_batch_size(interleaved):
    results, _ = interleaved
    for result in results:
        windows = result["windows"]
        assert [w["batch_size"] for w in windows].count(1) == ROUNDS
        assert [w["batch_size"] for w in windows].count(4) == ROUNDS
        for batch in BATCH_SIZES:
            calls = sum(w["calls"] for w in windows if w["batch_size"] == batch)
            # The percentiles are over the samples of all of a batch size's windows.
            assert result["latency"][str(batch)]["iterations"] == calls
            per_sample = {
                w["calls_per_sample"] for w in windows if w["batch_size"] == batch
            }
            assert per_sample == {result["latency"][str(batch)]["calls_per_sample"]}
            assert len(result["samples_ms"][str(batch)]) * per_sample.pop() == calls
        assert result["timing"]["rounds"] == ROUNDS
        assert result["timing"]["interleaved_with"] == len(results) - 1


def test_each_latency_records_the_spread_of_its_rounds(interleaved):
    results, _ = interleaved
    for result in results:
        for batch in BATCH_SIZES:
            stats = result["latency"][str(batch)]
            rounds = [
                w["p50_ms"] for w in result["windows"] if w["batch_size"] == batch
            ]
            assert stats["round_p50_ms"] == rounds and len(rounds) == ROUNDS
            low, high = stats["p50_spread_ms"]
            assert (low, high) == (min(rounds), max(rounds))
            # The pooled median lies between the fastest and slowest round's.
            assert low <= stats["p50_ms"] <= high


def test_windows_of_different_processes_never_overlap(interleaved):
    results, _ = interleaved
    assert len({result["pid"] for result in results}) == len(results)
    windows = sorted(
        (w["start_ns"], w["end_ns"], result["format"])
        for result in results
        for w in result["windows"]
    )
    assert len(windows) == len(results) * ROUNDS * len(BATCH_SIZES)
    for (_, end, _), (start, _, _) in zip(windows, windows[1:], strict=False):
        assert end <= start  # one process timed at a time


def test_the_order_rotates_between_rounds(interleaved):
    results, _ = interleaved
    windows = sorted(
        (w["start_ns"], result["format"], w["batch_size"])
        for result in results
        for w in result["windows"]
    )
    per_round = len(results) * len(BATCH_SIZES)
    rounds = [windows[i : i + per_round] for i in range(0, len(windows), per_round)]
    firsts = [round_windows[0][1] for round_windows in rounds]
    assert len(set(firsts)) == ROUNDS  # a different runtime opens each round
    # Within a runtime's turn the batch-size order alternates between rounds.
    assert rounds[0][0][2] == 1 and rounds[1][0][2] == 4


def test_progress_is_reported_per_phase(interleaved):
    _, steps = interleaved
    assert steps[0] == "loading 3 runtimes"
    assert steps[1 : 1 + ROUNDS] == [
        f"timing round {r}/{ROUNDS}" for r in range(1, ROUNDS + 1)
    ]
    assert steps[1 + ROUNDS :] == [
        "finishing mlp.onnx (1 thread)",
        "finishing mlp.tflite (1 thread)",
        "finishing dense_layers_2.npz (1 thread)",
    ]


def test_a_runtime_that_fails_does_not_stop_the_others(artifacts, tmp_path):
    _, paths = artifacts
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    outcomes = measure.measure_artifacts(
        [(str(broken), "onnx", 1), (paths["tflite"], "tflite", 1)],
        (1,),
        rounds=2,
        **FAST,
    )
    assert isinstance(outcomes[0], RuntimeError)
    assert "measuring onnx" in str(outcomes[0]) and "\n" not in str(outcomes[0])
    assert outcomes[1]["latency"]["1"]["iterations"] >= 3


@pytest.mark.parametrize("rounds", [0, 1.5, True, None])
def test_rounds_must_be_a_positive_integer(artifacts, rounds):
    _, paths = artifacts
    with pytest.raises(ValueError, match="`rounds` must be an integer >= 1") as error:
        measure.measure_artifacts(
            [(paths["onnx"], "onnx", 1)], (1,), rounds=rounds, **FAST
        )
    assert "\n" not in str(error.value)


def test_jobs_must_not_be_empty():
    with pytest.raises(ValueError, match="`jobs` must name at least one artifact"):
        measure.measure_artifacts([], (1,))


def test_windows_split_the_timing_and_keep_the_minimum_calls():
    assert worker.windows(4, 1.0, 200, 3.0) == (0.25, 50, 0.75)
    assert worker.windows(3, 0.5, 100, 3.0) == pytest.approx(
        (0.5 / 3, 34, 1.0)
    )  # ceil: >= 100 in all


def test_settle_waits_for_a_spinning_thread_and_no_longer():
    import threading

    stop = time.perf_counter() + 0.15

    def spin():
        while time.perf_counter() < stop:
            pass

    spinner = threading.Thread(target=spin)
    spinner.start()
    waited = timing.settle(max_s=1.0)
    spinner.join()
    assert waited >= 0.1  # it waited for the spinning thread to stop...
    assert timing.settle(max_s=1.0) < 0.1  # ...and an idle process answers at once


def test_an_idle_worker_uses_no_cpu_while_another_is_timed(artifacts, tmp_path):
    _, paths = artifacts
    specs = [
        measure.build_spec(
            paths[fmt], fmt, (4,), 2, str(tmp_path), timing=FAST, name=fmt
        )[0]
        for fmt in ("numpy", "onnx")
    ]
    handles = [
        worker.MeasurementWorker(spec, str(tmp_path / f"{i}.json"))
        for i, spec in enumerate(specs)
    ]
    try:
        for handle in handles:
            handle.wait_ready()
        handles[0].time(
            4, 0.3, 1, 1.0, 0.05
        )  # OpenBLAS spins after this: the worker settles
        before = _cpu_seconds(handles[0].process.pid)
        handles[1].time(4, 0.3, 1, 1.0, 0.05)
        assert _cpu_seconds(handles[0].process.pid) - before < 0.03
    finally:
        for handle in handles:
            handle.close()


def _cpu_seconds(pid):
    """User + system CPU seconds of a process, all threads (Linux /proc)."""
    import os

    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_worker_that_dies_is_a_one_line_runtime_error(artifacts, tmp_path):
    _, paths = artifacts
    spec, _ = measure.build_spec(
        paths["onnx"], "onnx", (1,), 1, str(tmp_path), timing=FAST
    )
    with worker.MeasurementWorker(spec, str(tmp_path / "spec.json")) as handle:
        handle.wait_ready()
        handle.process.kill()
        handle.process.wait()
        with pytest.raises(RuntimeError, match="measuring onnx .* failed") as error:
            handle.time(1, 0.01, 1, 0.1, 0.0)
    assert "\n" not in str(error.value)
