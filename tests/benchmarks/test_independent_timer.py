"""benchmarks.independent_timer: it times what the report recorded, the same way.

No assertion here is about how fast anything runs: a fake clock makes every timing
figure exact, and the release check is run against stand-in timers that record what
they were asked to do.
"""

import ast
import json
import os

import numpy as np
import pytest

from benchmarks import independent_timer
from benchmarks import inference_latency
from tests.command_line import run_module


def release_record(latency, lineage_threads=2, timing=None):
    record = {
        "artifact": "student_int8.tflite",
        "format": "tflite",
        "quantize": "int8",
        "lineage": {"threads": lineage_threads},
        "measured": {"threads": lineage_threads, "latency": latency},
    }
    if timing is not None:
        record["timing"] = timing
    return record


def test_release_settings_reads_block_size_and_threads_per_batch():
    record = release_record(
        {
            "1": {"p50_ms": 0.0044, "calls_per_sample": 12, "threads": 1},
            "64": {"p50_ms": 0.15, "calls_per_sample": 1, "threads": 2},
        }
    )
    assert independent_timer.release_settings(record) == {
        1: {"p50_ms": 0.0044, "calls_per_sample": 12, "threads": 1},
        64: {"p50_ms": 0.15, "calls_per_sample": 1, "threads": 2},
    }


def test_release_settings_falls_back_to_one_call_and_the_lineage_threads():
    record = release_record({"8": {"p50_ms": 0.5}}, lineage_threads=3)
    assert independent_timer.release_settings(record) == {
        8: {"p50_ms": 0.5, "calls_per_sample": 1, "threads": 3}
    }


def test_release_timing_uses_the_recorded_warm_up():
    record = release_record({}, timing={"warmup_s": 0.25, "rewarm_s": 0.01})
    assert independent_timer.release_timing(record) == (0.25, 0.01)
    assert independent_timer.release_timing(release_record({})) == (
        independent_timer.DEFAULT_WARMUP_S,
        independent_timer.DEFAULT_REWARM_S,
    )


@pytest.mark.parametrize("calls_per_sample", [1, 7])
def test_time_blocks_times_blocks_of_the_given_size(monkeypatch, calls_per_sample):
    clock = {"ns": 0, "reads": 0}

    def fake_clock():
        clock["reads"] += 1
        return clock["ns"]

    calls = []

    def call(x):
        calls.append(x)
        clock["ns"] += 2_000 + 1_000 * (len(calls) % 2)  # 2 µs, 3 µs alternating

    monkeypatch.setattr(independent_timer.time, "perf_counter_ns", fake_clock)
    samples = independent_timer.time_blocks(
        call, (5,), calls_per_sample, seconds=1e-4, warmup_s=0.0
    )
    warmup = 3
    timed = len(calls) - warmup
    assert timed == len(samples) * calls_per_sample
    assert len(samples) >= 3
    if calls_per_sample == 1:
        assert sorted(set(samples)) == [0.002, 0.003]
    else:  # 7 calls: three or four 3-µs calls per block
        assert set(samples) <= {17_000 / 7 / 1e6, 18_000 / 7 / 1e6}


class FakeTimer:
    made = []

    def __init__(self, fmt, path, threads, imports=(), import_path=()):
        self.fmt, self.path, self.threads = fmt, path, threads
        self.samples, self.asked = {}, []
        FakeTimer.made.append(self)

    def wait_ready(self):
        pass

    def time(self, batch_size, calls_per_sample, seconds, warmup_s):
        self.asked.append((batch_size, calls_per_sample, seconds, warmup_s))
        window = [0.001 * batch_size, 0.002 * batch_size, 0.003 * batch_size]
        self.samples.setdefault(batch_size, []).append(window)
        return window

    def close(self):
        pass


class FakeWorker:
    def __init__(self, spec, spec_path, timeout_s=900):
        self.spec = spec

    def wait_ready(self):
        return 0.0

    def time(self, batch_size, min_time_s, min_iterations, max_time_s, warmup_s):
        return {"calls_per_sample": 1}

    def finish(self):
        return {
            "latency": {
                str(b): {"p50_ms": 0.002 * b, "calls_per_sample": 1}
                for b in self.spec["batch_sizes"]
            }
        }

    def close(self):
        pass


def _write_release(folder, record, data):
    """A release folder holding `data` as the artifact, recorded with its digest."""
    import hashlib

    record.update(size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (folder / "release.json").write_text(json.dumps(record))
    (folder / record["artifact"]).write_bytes(data)


@pytest.mark.parametrize(
    "tamper, match",
    [
        (
            lambda folder: (folder / "student_int8.tflite").write_bytes(b"teacher"),
            "SHA-256",
        ),
        (
            lambda folder: _rename(folder, "../elsewhere/student.tflite"),
            "plain file name",
        ),
    ],
    ids=["swapped-file", "path-outside"],
)
def test_release_check_refuses_a_release_that_is_not_what_it_records(
    tmp_path, monkeypatch, tamper, match
):
    from export.verify_release import ReleaseError

    release = tmp_path / "release"
    release.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "student.tflite").write_bytes(b"teacher!")
    record = release_record({"1": {"p50_ms": 0.002, "threads": 1}})
    _write_release(release, record, b"student")
    tamper(release)
    monkeypatch.setattr(inference_latency, "IndependentTimer", None)  # never reached
    with pytest.raises(ReleaseError, match=match):
        inference_latency._release_check(str(release), rounds=1, seconds=0.1)


def _rename(folder, name):
    record = json.loads((folder / "release.json").read_text())
    record["artifact"] = name
    (folder / "release.json").write_text(json.dumps(record))


def test_release_settings_reads_the_spread_of_the_rounds():
    record = release_record(
        {"1": {"p50_ms": 0.1, "threads": 1, "p50_spread_ms": [0.09, 0.12]}}
    )
    assert independent_timer.release_settings(record)[1]["p50_spread_ms"] == [
        0.09,
        0.12,
    ]


@pytest.mark.parametrize(
    "independent, spread, holds",
    [
        (0.105, [0.1, 0.11], True),
        # Within 10% of the recorded p50 but outside every round: not borne out.
        (0.108, [0.099, 0.101], False),
        (0.2, None, False),  # no spread recorded: the 10% rule
        (0.104, None, True),
    ],
)
def test_the_release_check_holds_only_inside_the_recorded_spread(
    independent, spread, holds, capsys
):
    row = {
        "recorded": 0.1,
        "threads": 1,
        "calls_per_sample": 1,
        "independent": independent,
        "independent_window_median": independent,
        "report": independent,
        "recorded_spread": spread,
    }
    record = {"artifact": "student.tflite", "format": "tflite"}
    assert inference_latency._print_release(record, {1: row}, "release") is holds
    assert ("| yes |" in capsys.readouterr().out) is (spread is not None and holds)


def test_release_check_times_with_the_recorded_settings(tmp_path, monkeypatch):
    from export.measure import worker as worker_lib

    record = release_record(
        {
            "1": {"p50_ms": 0.0021, "calls_per_sample": 12, "threads": 1},
            "64": {"p50_ms": 0.126, "calls_per_sample": 1, "threads": 2},
        },
        timing={"warmup_s": 0.3, "rewarm_s": 0.02},
    )
    _write_release(tmp_path, record, b"not read by the fakes")
    FakeTimer.made = []
    monkeypatch.setattr(inference_latency, "IndependentTimer", FakeTimer)
    monkeypatch.setattr(worker_lib, "MeasurementWorker", FakeWorker)
    monkeypatch.setattr(inference_latency.time, "sleep", lambda s: None)
    _, rows = inference_latency._release_check(str(tmp_path), rounds=3, seconds=0.6)
    by_threads = {timer.threads: timer for timer in FakeTimer.made}
    assert sorted(by_threads) == [1, 2]
    assert all(t.path == str(tmp_path / "student_int8.tflite") for t in FakeTimer.made)
    # batch 1: 1 thread, blocks of 12; batch 64: 2 threads, one call; full warm-up
    # in the first round, the recorded re-warm-up after.
    assert by_threads[1].asked == [
        (1, 12, pytest.approx(0.2), 0.3),
        (1, 12, pytest.approx(0.2), 0.02),
        (1, 12, pytest.approx(0.2), 0.02),
    ]
    assert [a[:2] for a in by_threads[2].asked] == [(64, 1)] * 3
    assert rows[1]["independent"] == pytest.approx(0.002)
    assert rows[1]["recorded"] / rows[1]["independent"] == pytest.approx(1.05)
    assert rows[64]["independent"] == pytest.approx(0.128)
    assert rows[64]["threads"] == 2 and rows[1]["calls_per_sample"] == 12


def test_independent_timer_process_times_a_numpy_file(tmp_path):
    from export import measure

    rng = np.random.default_rng(0)
    layers = [
        (
            rng.standard_normal((16, 8), dtype=np.float32),
            np.zeros(8, np.float32),
            "relu",
        ),
        (
            rng.standard_normal((8, 3), dtype=np.float32),
            np.zeros(3, np.float32),
            "linear",
        ),
    ]
    path = measure.save_dense_layers(layers, str(tmp_path / "mlp.npz"))
    timer = independent_timer.IndependentTimer("numpy", path, 1)
    try:
        timer.wait_ready()
        samples = timer.time(4, 5, 0.02, 0.0)
    finally:
        timer.close()
    assert len(samples) >= 3 and all(s > 0 for s in samples)
    assert timer.samples == {4: [samples]}


def test_independent_timer_imports_nothing_from_export():
    source_path = os.path.join(
        os.path.dirname(independent_timer.__file__), "independent_timer.py"
    )
    with open(source_path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported.isdisjoint({"export", "kdkeras", "models", "benchmarks"})


@pytest.mark.parametrize(
    "value, words",
    [
        ("layers.py", ["`--import` must be", "layers.py"]),
        ("/" + "x" * 5000, ["`--import` must be"]),
        ("no_such_module_kd", ["no_such_module_kd could not be imported"]),
    ],
)
def test_import_is_checked_before_any_work(value, words, tmp_path):
    completed = run_module(
        "benchmarks.inference_latency",
        f"--import={value}",
        f"--json={tmp_path / 'latency.json'}",
        cwd=tmp_path,
    )
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 600, completed.stderr
    assert lines[0].startswith("benchmarks.inference_latency: error: ")
    assert all(word in lines[0] for word in words)
    assert os.listdir(tmp_path) == []


def test_timer_child_imports_the_users_modules_first(tmp_path):
    """The child imports `--import`'s modules from their folder, before loading."""
    (tmp_path / "timer_user_layers.py").write_text("import sys\nsys.exit(7)\n")
    timer = independent_timer.IndependentTimer(
        "numpy",
        str(tmp_path / "missing.npz"),
        1,
        imports=["timer_user_layers"],
        import_path=[str(tmp_path)],
    )
    try:
        assert timer.process.wait(timeout=60) == 7  # Its import ran, first.
    finally:
        timer.close()
