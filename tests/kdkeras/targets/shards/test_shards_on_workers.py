"""`cache_soft_target_shards(..., shard="auto")` on 2 worker processes on
loopback (TF_CONFIG from `kdkeras.distribute.launch`): each computes its
shards, the chief merges, and the cache is byte for byte one process's."""

import io
import json
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdkeras.distribute import launch
from kdkeras.targets.shards.writer import cache_soft_target_shards
from kdkeras.targets.shards.writer import load_soft_target_shards
from tests.kdkeras import distiller_setup
from tests.kdkeras.targets.shards.shards_setup import assert_same_files

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))


@pytest.mark.e2e
def test_two_workers_write_the_cache_one_process_writes(tmp_path, monkeypatch):
    teacher = distiller_setup.mlp(16, seed=1, classes=10, features=6)
    x = np.random.default_rng(0).standard_normal((53, 6)).astype("float32")
    workers = tmp_path / "workers"
    workers.mkdir()
    teacher.save(workers / "teacher.keras")
    np.save(workers / "x.npy", x)

    monkeypatch.setenv("PYTHONPATH", ROOT)
    output = io.StringIO()
    code = launch.launch(
        [sys.executable, os.path.join(HERE, "cache_on_workers.py"), str(workers)],
        workers=2,
        timeout=600,
        output=output,
    )
    assert code == 0, output.getvalue()[-3000:]
    reports = {}
    for line in output.getvalue().splitlines():
        prefix, _, text = line.partition("] ")
        if text.startswith("{"):
            reports[prefix] = json.loads(text)
    # Both workers return the merged cache: every shard, every example.
    assert sorted(reports) == ["[worker 0", "[worker 1"]
    for report in reports.values():
        assert report == {
            "path": "targets",
            "shards": [0, 1, 2, 3, 4, 5],
            "examples": 53,
        }
    # The parts are gone once merged; nothing half-written is left.
    assert sorted(os.listdir(workers)) == ["targets", "teacher.keras", "x.npy"]

    data = tf.data.Dataset.from_tensor_slices(x).batch(7)
    cache_soft_target_shards(
        teacher,
        data,
        tmp_path / "single",
        top_k=3,
        temperature=2.0,
        examples_per_shard=10,
    )
    assert_same_files(workers / "targets", tmp_path / "single")
    load_soft_target_shards(workers / "targets", teacher, data)


def _small_case():
    keras.utils.set_random_seed(1)
    teacher = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    x = np.random.default_rng(0).standard_normal((9, 3)).astype("float32")
    return teacher, tf.data.Dataset.from_tensor_slices(x).batch(4)


def test_auto_without_tf_config_is_one_process(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    teacher, data = _small_case()
    auto = cache_soft_target_shards(teacher, data, tmp_path / "a", shard="auto")
    plain = cache_soft_target_shards(teacher, data, tmp_path / "b")
    assert auto.index == plain.index
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_auto_on_an_evaluator_task_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps(
            {
                "cluster": {
                    "worker": ["127.0.0.1:1", "127.0.0.1:2"],
                    "evaluator": ["127.0.0.1:3"],
                },
                "task": {"type": "evaluator", "index": 0},
            }
        ),
    )
    teacher, data = _small_case()
    with pytest.raises(ValueError, match="chief or worker") as raised:
        cache_soft_target_shards(teacher, data, tmp_path / "a", shard="auto")
    assert "\n" not in str(raised.value)
    assert not os.listdir(tmp_path)


def test_a_shard_that_is_not_auto_is_refused(tmp_path):
    teacher, data = _small_case()
    with pytest.raises(ValueError, match="`shard` must be None, 'auto'"):
        cache_soft_target_shards(teacher, data, tmp_path / "a", shard="all")
