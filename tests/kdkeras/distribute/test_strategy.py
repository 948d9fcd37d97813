"""Tests of kdkeras/distribute/strategy.py: strategy from TF_CONFIG, input sharding."""

import json
import socket
import time

import numpy as np
import pytest
import tensorflow as tf

from kdkeras import distribute
from tests.kdkeras.distribute.multi_worker_scripts import runner

WORKERS = {"worker": ["127.0.0.1:20001", "127.0.0.1:20002"]}


def _config(cluster=WORKERS, task_type="worker", index=0):
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def test_parse_valid_config():
    config = distribute.parse_tf_config(_config(index=1))
    assert config == {"cluster": WORKERS, "task_type": "worker", "task_index": 1}
    assert distribute.num_workers(config) == 2
    assert not distribute.is_chief(config)
    assert distribute.is_chief(distribute.parse_tf_config(_config(index=0)))
    with_chief = {"chief": ["127.0.0.1:20000"], **WORKERS}
    assert not distribute.is_chief(
        distribute.parse_tf_config(_config(with_chief, index=0))
    )
    assert distribute.num_workers(distribute.parse_tf_config(_config(with_chief))) == 3


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_tf_config(monkeypatch, value):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.parse_tf_config(value) is None
    assert distribute.is_chief()
    assert distribute.num_workers(None) == 1


@pytest.mark.parametrize(
    "value, expected",
    [
        ("{cluster: ", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), "no `cluster`"),
        (json.dumps({"cluster": {"worker": []}, "task": {}}), "non-empty list"),
        (json.dumps({"cluster": {"worker": ["127.0.0.1"]}}), "host:port"),
        (json.dumps({"cluster": {"worker": ["h:99999"]}}), "host:port"),
        (json.dumps({"cluster": WORKERS}), "no valid `task`"),
        (_config(index=2), "index 2 is out of range"),
        (_config(index=-1), "index -1 is out of range"),
        (_config(index="0"), "out of range"),
        (_config(task_type="chief"), "not a job in the cluster"),
        (_config(cluster={"ps": ["h:1"], **WORKERS}), "only 'chief' and 'worker'"),
    ],
)
def test_malformed_tf_config_is_a_one_line_error(monkeypatch, value, expected):
    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ValueError, match="TF_CONFIG") as error:
        distribute.strategy_from_environment()
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_strategy_without_tf_config_is_default(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = distribute.strategy_from_environment()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        assert isinstance(strategy, tf.distribute.MirroredStrategy)
    else:
        assert strategy is tf.distribute.get_strategy()
        assert strategy.num_replicas_in_sync == 1


def test_single_worker_tf_config_is_not_multi_worker(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", _config({"worker": ["127.0.0.1:20001"]}))
    strategy = distribute.strategy_from_environment()
    assert not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


@pytest.mark.parametrize("timeout", [0, -1, None])
def test_bad_timeout(timeout):
    with pytest.raises(ValueError, match="timeout_seconds"):
        distribute.strategy_from_environment(timeout_seconds=timeout)


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_chief_times_out_in_process():
    port = _closed_port()
    config = distribute.parse_tf_config(
        _config({"worker": [f"127.0.0.1:{port}", "127.0.0.1:20002"]}, index=1)
    )
    started = time.monotonic()
    with pytest.raises(
        TimeoutError, match=f"chief at 127.0.0.1:{port} .from TF_CONFIG"
    ) as error:
        distribute.wait_for_chief(config, timeout_seconds=1.0)
    assert time.monotonic() - started < 10
    assert "\n" not in str(error.value)


def test_reachable_chief_returns():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        config = distribute.parse_tf_config(
            _config({"worker": [f"127.0.0.1:{port}", "127.0.0.1:20002"]}, index=1)
        )
        distribute.wait_for_chief(config, timeout_seconds=5.0)


_BUILD_STRATEGY = (
    "from kdkeras import distribute; "
    "distribute.strategy_from_environment(timeout_seconds=3)"
)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "case, index, expected",
    [
        # In-process tests above cover these messages; the subprocess runs
        # add the exit code (slow: each one imports TensorFlow).
        pytest.param(
            "out of range",
            5,
            "TF_CONFIG task index 5 is out of range",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "unreachable chief",
            1,
            "Could not reach the chief",
            marks=pytest.mark.slow,
        ),
        # Only a process can show the watchdog ending a blocked start-up.
        ("missing worker", 0, "waiting for the 2 tasks in TF_CONFIG"),
    ],
)
def test_bad_cluster_exits_non_zero_with_one_line_in_bounded_time(
    case, index, expected
):
    ports = [_closed_port(), _closed_port()]
    env = runner.environment(TF_CONFIG=runner.tf_config(ports, index))
    started = time.monotonic()
    result = runner.run(["-c", _BUILD_STRATEGY], timeout=120, env=env)
    assert result.returncode != 0
    assert time.monotonic() - started < 120
    last_line = result.stderr.strip().splitlines()[-1]
    assert expected in last_line, result.stderr[-1500:]


def test_per_replica_batch_size():
    strategy = tf.distribute.get_strategy()
    assert distribute.per_replica_batch_size(64, strategy) == 64


class _FakeStrategy:
    num_replicas_in_sync = 8


@pytest.mark.parametrize("batch, expected", [(64, 8), (8, 1), (1024, 128)])
def test_per_replica_batch_size_splits_evenly(batch, expected):
    assert distribute.per_replica_batch_size(batch, _FakeStrategy()) == expected


@pytest.mark.parametrize(
    "batch, message",
    [
        (60, "must be a multiple of the 8 replicas"),
        (0, "positive int"),
        (8.0, "positive int"),
        (True, "positive int"),
    ],
)
def test_per_replica_batch_size_errors(batch, message):
    with pytest.raises(ValueError, match=message):
        distribute.per_replica_batch_size(batch, _FakeStrategy())


@pytest.mark.parametrize(
    "policy, expected",
    [
        (None, "DATA"),
        ("data", "DATA"),
        ("FILE", "FILE"),
        ("off", "OFF"),
        (tf.data.experimental.AutoShardPolicy.FILE, "FILE"),
    ],
)
def test_with_auto_shard_policy(policy, expected):
    dataset = distribute.with_auto_shard_policy(tf.data.Dataset.range(4), policy)
    assert dataset.options().experimental_distribute.auto_shard_policy == getattr(
        tf.data.experimental.AutoShardPolicy, expected
    )


def test_with_auto_shard_policy_rejects_unknown():
    with pytest.raises(ValueError, match="`policy`"):
        distribute.with_auto_shard_policy(tf.data.Dataset.range(4), "rows")


def test_distribute_dataset_keeps_every_example_once(monkeypatch):
    x = np.arange(20, dtype="float32")
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(8)
    distributed = distribute.distribute_dataset(dataset)
    seen = np.concatenate([np.asarray(batch) for batch in distributed])
    np.testing.assert_array_equal(seen, x)
    # A policy the caller already chose is kept; only AUTO becomes DATA.
    calls = []
    original = distribute.with_auto_shard_policy
    monkeypatch.setattr(
        distribute.strategy,
        "with_auto_shard_policy",
        lambda d, p=None: calls.append(p) or original(d, p),
    )
    distribute.distribute_dataset(original(dataset, "file"))
    assert calls == []
    distribute.distribute_dataset(dataset)
    assert calls == [None]
