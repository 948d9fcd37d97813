"""Tiny streams, teachers and caches shared by the sharded-cache tests."""

import numpy as np
import tensorflow as tf

from kdkeras.targets.batch import LABELS_KEY
from kdkeras.targets.batch import TEACHER_LOGITS_KEY
from kdkeras.targets.shards.writer import cache_soft_target_shards
from tests.kdkeras import distiller_setup

FEATURES = 6
CLASSES = 10
COUNT = 53
PER_SHARD = 10  # 6 shards, the last one of 3 examples


def build_teacher(seed=1):
    """A seeded Dense(16, relu) -> Dropout -> Dense(CLASSES) teacher."""
    return distiller_setup.mlp(
        16, seed=seed, dropout=0.5, classes=CLASSES, features=FEATURES
    )


def indexed_x(count=COUNT, seed=0):
    """Random inputs whose first feature is the example's index."""
    x = np.random.default_rng(seed).standard_normal((count, FEATURES))
    x[:, 0] = np.arange(count)
    return x.astype("float32")


def labels(count=COUNT):
    return (np.arange(count) * 7 % CLASSES).astype("int32")


def stream(x, *rest, batch_size=7):
    data = x if not rest else (x, *rest)
    return tf.data.Dataset.from_tensor_slices(data).batch(batch_size)


def build_cache(tmp_path, teacher=None, data=None, name="targets", **kwargs):
    teacher = teacher or build_teacher()
    data = data if data is not None else stream(indexed_x())
    kwargs.setdefault("examples_per_shard", PER_SHARD)
    path = tmp_path / name
    return teacher, data, cache_soft_target_shards(teacher, data, path, **kwargs)


def all_logits(shards):
    return shards.logits(np.arange(len(shards)))


def collect(dataset):
    xs, ys, logits, weights = [], [], [], []
    for element in dataset:
        xs.append(element[0].numpy())
        logits.append(element[1][TEACHER_LOGITS_KEY].numpy())
        if LABELS_KEY in element[1]:
            ys.append(element[1][LABELS_KEY].numpy())
        if len(element) == 3:
            weights.append(element[2].numpy())
    join = lambda parts: np.concatenate(parts) if parts else None  # noqa: E731
    return join(xs), join(ys), join(logits), join(weights)


def assert_same_files(folder, expected):
    """`folder` holds the same file names as `expected`, byte for byte."""
    names = sorted(p.name for p in expected.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == names
    for name in names:
        assert (folder / name).read_bytes() == (expected / name).read_bytes(), name
