"""Tests of kdkeras/distribute/multi_worker.py: fit under MultiWorkerMirroredStrategy.

Multi-process tests start real workers on 127.0.0.1 (TF_CONFIG), each bounded
by a timeout, and compare the final student with a single-process Keras
`fit` of the same distillation at the same global batch.
"""

import json
import os
import subprocess

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from kdkeras.distribute import multi_worker
from tests.kdkeras.distribute.multi_worker_scripts import runner

RUN_TIMEOUT = 240  # seconds per subprocess, generous for a loaded 2-core box
ATOL = 1e-6


# ------------------------------------------------------------ in-process


def _mlp(seed):
    initializer = keras.initializers.GlorotUniform(seed=seed)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu", kernel_initializer=initializer),
            keras.layers.Dense(3, kernel_initializer=initializer),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, 6)).astype("float32"),
        rng.integers(0, 3, size=n).astype("int32"),
    )


def test_needs_multi_worker_fit():
    default = tf.distribute.get_strategy()
    assert not multi_worker.needs_multi_worker_fit(default)
    assert not multi_worker.needs_multi_worker_fit(
        default, [keras.callbacks.BackupAndRestore("/tmp/unused")]
    )
    assert multi_worker.needs_multi_worker_fit(
        default, [keras.callbacks.BackupAndRestore("/tmp/unused", save_freq=3)]
    )


@pytest.mark.parametrize("batch_size", [8, 12])  # 12: partial last batch
def test_fit_matches_keras_fit_for_a_plain_model(batch_size):
    """The loop is generic: a plain keras.Model trains exactly as in Keras."""
    tf.config.experimental.enable_op_determinism()
    x, y = _data()
    (val_x, val_y) = _data(16, seed=1)
    keras_model, loop_model = _mlp(3), _mlp(3)
    expected = keras_model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=2,
        shuffle=False,
        verbose=0,
        validation_data=(val_x, val_y),
    )
    history = multi_worker.fit(
        loop_model,
        x,
        y,
        batch_size=batch_size,
        epochs=2,
        shuffle=False,
        verbose=0,
        validation_data=(val_x, val_y),
    )
    assert history is loop_model.history
    assert sorted(history.history) == sorted(expected.history)
    for key, values in expected.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-5, atol=1e-6)
    for got, want in zip(
        loop_model.get_weights(), keras_model.get_weights(), strict=True
    ):
        np.testing.assert_allclose(got, want, atol=ATOL)


def test_fit_with_dataset_and_steps_per_epoch():
    x, y = _data(48)
    model = _mlp(4)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    history = multi_worker.fit(model, dataset, epochs=3, steps_per_epoch=2, verbose=0)
    assert len(history.history["loss"]) == 3
    assert int(model.optimizer.iterations) == 6


def test_fit_rejects_class_weight():
    x, y = _data()
    with pytest.raises(ValueError, match="class_weight"):
        multi_worker.fit(_mlp(0), x, y, class_weight={0: 1.0}, verbose=0)


def test_backup_resumes_mid_epoch_exactly(tmp_path):
    """Interrupted at a batch, the restarted fit skips what was done."""
    tf.config.experimental.enable_op_determinism()
    x, y = _data(48)
    arguments = dict(batch_size=8, epochs=2, shuffle=True, verbose=0)

    uninterrupted = _mlp(5)
    multi_worker.fit(uninterrupted, x, y, **arguments)

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3 and self.model.optimizer.iterations.numpy() == 10:
                raise KeyboardInterrupt  # epoch 1, batch 3

    backup_dir = str(tmp_path / "backup")
    model = _mlp(5)
    backup = keras.callbacks.BackupAndRestore(backup_dir, save_freq=2)
    with pytest.raises(KeyboardInterrupt):
        multi_worker.fit(model, x, y, callbacks=[backup, Interrupt()], **arguments)
    state = multi_worker.read_training_state(
        os.path.join(backup_dir, "latest.weights.h5")
    )
    assert state == {"epoch": 1, "steps_done": 4}

    resumed = _mlp(5)  # a fresh process would rebuild the model like this
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: seen.append(batch)
    )
    history = multi_worker.fit(resumed, x, y, callbacks=[backup, record], **arguments)
    assert seen == [4, 5]  # only the rest of epoch 1
    assert len(history.history["loss"]) == 1
    assert int(resumed.optimizer.iterations) == 12
    for got, want in zip(
        resumed.get_weights(), uninterrupted.get_weights(), strict=True
    ):
        np.testing.assert_allclose(got, want, atol=ATOL)
    assert not os.path.exists(backup_dir)  # deleted after a completed run


def test_a_crash_while_saving_keeps_the_previous_backup(tmp_path, monkeypatch):
    """A save killed mid-write leaves the last complete backup readable."""
    model = _mlp(6)
    model.build((None, 6))
    directory = str(tmp_path)
    multi_worker.save_weights_atomically(
        model, directory, {"epoch": 0, "steps_done": 2}
    )
    saved = [w.copy() for w in model.get_weights()]

    def crash_midway(filepath, overwrite=True):
        with open(filepath, "wb") as file:
            file.write(b"\x89HDF\r\n partial")  # a torn write
        raise KeyboardInterrupt  # the process dies here

    model.set_weights([w + 1.0 for w in saved])
    monkeypatch.setattr(model, "save_weights", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        multi_worker.save_weights_atomically(
            model, directory, {"epoch": 0, "steps_done": 4}
        )
    monkeypatch.undo()
    path = os.path.join(directory, "latest.weights.h5")
    assert multi_worker.read_training_state(path) == {"epoch": 0, "steps_done": 2}
    with open(os.path.join(directory, "training_metadata.json")) as file:
        assert json.load(file) == {"epoch": 0, "batch": 1}
    restored = _mlp(6)
    restored.build((None, 6))
    restored.load_weights(path)
    for got, want in zip(restored.get_weights(), saved, strict=True):
        np.testing.assert_array_equal(got, want)


def test_stock_backup_is_not_silently_mixed(tmp_path):
    """A backup without kdkeras' state (e.g. stock Keras) is refused clearly."""
    model = _mlp(7)
    model.build((None, 6))
    model.save_weights(str(tmp_path / "latest.weights.h5"))
    x, y = _data()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path), save_freq=2)
    with pytest.raises(ValueError, match="backup_dir"):
        multi_worker.fit(model, x, y, callbacks=[backup], verbose=0)
    with h5py.File(tmp_path / "latest.weights.h5") as file:
        assert multi_worker.STATE_ATTRIBUTE not in file.attrs


# ------------------------------------------------------- multi-process


@pytest.fixture(scope="module", autouse=True)
def _single_process_run(request, tmp_path_factory):
    """Starts Keras' own fit in one process early, overlapping other tests.

    Only if a selected test needs its result.
    """
    needed = any(
        "single_process_weights" in item.fixturenames for item in request.session.items
    )
    if not needed:
        yield None
        return
    out = tmp_path_factory.mktemp("single")
    with open(out / "run.log", "wb") as log:  # the child keeps its own handle
        process = runner.start(
            [runner.DISTIL, "--out", str(out), "--strategy", "default"], log=log
        )
    yield out, process
    runner.kill(process)


@pytest.fixture
def single_process_weights(_single_process_run):
    """The student after Keras' own fit in one process, same global batch."""
    out, process = _single_process_run
    code = process.wait(timeout=RUN_TIMEOUT)
    assert code == 0, (out / "run.log").read_text()[-2000:]
    return runner.student_weights(out)


def _assert_same_weights(out_dir, expected):
    got = runner.student_weights(out_dir)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)


@pytest.mark.e2e
def test_two_workers_match_single_process_and_only_chief_writes(
    tmp_path, single_process_weights
):
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    scratch.mkdir()
    env = runner.environment(TMPDIR=scratch)  # where workers make temp dirs
    result = runner.launch(
        runner.DISTIL, "--out", out, "--checkpoint", timeout=RUN_TIMEOUT, env=env
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert result.stdout.count("] done ") == 2  # both workers finished
    assert "[worker 0] done" in result.stdout and "[worker 1] done" in result.stdout
    _assert_same_weights(out, single_process_weights)
    # The chief wrote each file once, in one place; nothing half written.
    assert sorted(os.listdir(out)) == [
        "checkpoint.weights.h5",
        "history.json",
        "student.keras",
        "student_weights.npz",
    ]
    student = keras.saving.load_model(out / "student.keras", safe_mode=True)
    for a, b in zip(student.get_weights(), single_process_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)
    # The non-chief's temporary checkpoint directory is gone.
    assert os.listdir(scratch) == []


@pytest.mark.e2e
def test_single_process_kill_and_resume(tmp_path, single_process_weights):
    out, backup = tmp_path / "out", tmp_path / "backup"
    marker, record = tmp_path / "marker", tmp_path / "record.json"
    common = [
        runner.DISTIL,
        "--out",
        str(out),
        "--strategy",
        "default",
        "--backup",
        str(backup),
        "--save-freq",
        "2",
    ]
    with open(tmp_path / "killed.log", "wb") as log:
        process = runner.start(
            common + ["--stall-at", "5", "--marker", str(marker)], log=log
        )
    try:
        runner.wait_for_file(marker, process, RUN_TIMEOUT)
    finally:
        runner.kill(process)  # kill -9 mid-epoch 0 (after step 5 of 8)
    assert process.returncode == -9
    assert not os.path.exists(out / "student_weights.npz")
    state = multi_worker.read_training_state(backup / "latest.weights.h5")
    assert state == {"epoch": 0, "steps_done": 4}

    result = runner.run(common + ["--record", str(record)], RUN_TIMEOUT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert json.loads(record.read_text()) == {"epoch": 0, "batch": 4}
    _assert_same_weights(out, single_process_weights)
    assert not backup.exists()


@pytest.mark.slow
def test_two_workers_kill_one_and_restart_both(tmp_path, single_process_weights):
    """Worker 1 is killed -9 mid-epoch; the chief fails by itself, no hang."""
    out, backup = tmp_path / "out", tmp_path / "backup"
    marker, record = tmp_path / "marker", tmp_path / "record.json"
    ports = [int(p) for p in _free_ports(2)]
    common = [
        runner.DISTIL,
        "--out",
        str(out),
        "--backup",
        str(backup),
        "--save-freq",
        "2",
        "--heartbeat",
        "10",
    ]
    processes = []
    for index in range(2):
        env = runner.environment(TF_CONFIG=runner.tf_config(ports, index))
        with open(tmp_path / f"worker{index}.log", "wb") as log:
            processes.append(
                runner.start(
                    common
                    + ["--stall-at", "5", "--stall-task", "1", "--marker", str(marker)],
                    env=env,
                    log=log,
                )
            )
    try:
        runner.wait_for_file(marker, processes[1], RUN_TIMEOUT)
        runner.kill(processes[1])
        # The chief is blocked in the next all-reduce; the heartbeat must end it.
        try:
            code = processes[0].wait(timeout=120)
        except subprocess.TimeoutExpired:
            code = None
        assert code not in (None, 0), "chief hung or succeeded after losing a worker"
    finally:
        for process in processes:
            runner.kill(process)
    state = multi_worker.read_training_state(backup / "latest.weights.h5")
    assert state == {"epoch": 0, "steps_done": 4}

    ports = [int(p) for p in _free_ports(2)]
    processes = []
    for index in range(2):
        env = runner.environment(TF_CONFIG=runner.tf_config(ports, index))
        arguments = common + (["--record", str(record)] if index == 0 else [])
        with open(tmp_path / f"r{index}.log", "wb") as log:
            processes.append(runner.start(arguments, env=env, log=log))
    try:
        codes = [process.wait(timeout=RUN_TIMEOUT) for process in processes]
    finally:
        for process in processes:
            runner.kill(process)
    assert codes == [0, 0], (tmp_path / "r0.log").read_text()[-2000:]
    assert json.loads(record.read_text()) == {"epoch": 0, "batch": 4}
    _assert_same_weights(out, single_process_weights)


def _free_ports(count):
    from kdkeras.distribute import launch

    return launch.free_ports(count)
