"""Tests for kdkeras/targets/shards/dataset.py: training batches joined with
a sharded cache by stream position, shuffled within windows."""

import keras
import numpy as np
import pytest

from kdkeras.targets.batch import LABELS_KEY
from kdkeras.targets.batch import TEACHER_LOGITS_KEY
from kdkeras.targets.shards.dataset import shuffled_batches
from kdkeras.targets.shards.dataset import soft_target_shards_dataset
from tests import reference
from tests.kdkeras.targets.shards.shards_setup import CLASSES
from tests.kdkeras.targets.shards.shards_setup import COUNT
from tests.kdkeras.targets.shards.shards_setup import FEATURES
from tests.kdkeras.targets.shards.shards_setup import PER_SHARD
from tests.kdkeras.targets.shards.shards_setup import all_logits
from tests.kdkeras.targets.shards.shards_setup import build_cache
from tests.kdkeras.targets.shards.shards_setup import collect
from tests.kdkeras.targets.shards.shards_setup import indexed_x
from tests.kdkeras.targets.shards.shards_setup import labels
from tests.kdkeras.targets.shards.shards_setup import stream


@pytest.mark.parametrize(
    "with_labels, with_weights", [(True, False), (True, True), (False, False)]
)
def test_training_batches_join_each_example_with_its_own_logits(
    tmp_path, with_labels, with_weights
):
    x, y = indexed_x(), labels()
    weights = np.linspace(0.5, 2.0, COUNT).astype("float32")
    parts = ([y] if with_labels else []) + ([weights] if with_weights else [])
    data = stream(x, *parts)
    teacher, data, shards = build_cache(tmp_path, data=data)
    dataset = soft_target_shards_dataset(
        data, shards, batch_size=16, shuffle_buffer=32, seed=3
    )
    expected_keys = (
        [LABELS_KEY, TEACHER_LOGITS_KEY] if with_labels else [TEACHER_LOGITS_KEY]
    )
    assert sorted(dataset.element_spec[1]) == expected_keys
    assert len(dataset.element_spec) == (3 if with_weights else 2)
    orders = []
    for _ in range(2):
        batch_x, batch_y, logits, batch_weights = collect(dataset)
        order = batch_x[:, 0].astype(int)
        assert sorted(order) == list(range(COUNT))
        np.testing.assert_allclose(
            logits,
            reference.dense_relu_logits(teacher, x[order]),
            rtol=1e-5,
            atol=1e-5,
        )
        if with_labels:
            np.testing.assert_array_equal(batch_y, y[order])
        if with_weights:
            np.testing.assert_array_equal(batch_weights, weights[order])
        orders.append(order.tolist())
    # Shuffled across shards: the first batch draws from several shards.
    assert len(set(np.array(orders[0][:16]) // PER_SHARD)) > 1
    assert orders[0] != orders[1]
    unshuffled = soft_target_shards_dataset(data, shards, batch_size=16, shuffle=False)
    assert collect(unshuffled)[0][:, 0].astype(int).tolist() == list(range(COUNT))


def test_partial_labels_pass_through(tmp_path):
    x, y = indexed_x(), labels()
    y[::4] = -1
    teacher, data, shards = build_cache(tmp_path, data=stream(x, y))
    _, batch_y, _, _ = collect(soft_target_shards_dataset(data, shards, shuffle=False))
    np.testing.assert_array_equal(batch_y, y)


class ArraySequence(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    @property
    def num_batches(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[rows], self.y[rows]


def test_py_dataset_streams_like_a_tf_dataset(tmp_path):
    x, y = indexed_x(), labels()
    teacher, _, from_tf = build_cache(tmp_path, data=stream(x, y), name="tf")
    sequence = ArraySequence(x, y, batch_size=9)
    _, _, from_py = build_cache(tmp_path, teacher=teacher, data=sequence, name="py")
    # Other batch sizes: the same logits up to float32 rounding.
    np.testing.assert_allclose(
        all_logits(from_py), all_logits(from_tf), rtol=1e-5, atol=1e-5
    )
    assert from_py.index["data"] == from_tf.index["data"]  # batching-independent
    batch_x, batch_y, logits, _ = collect(
        soft_target_shards_dataset(sequence, from_py, batch_size=8)
    )
    order = batch_x[:, 0].astype(int)
    np.testing.assert_array_equal(batch_y, y[order])
    np.testing.assert_array_equal(logits, all_logits(from_py)[order])


def test_distiller_trains_from_the_stream_as_from_the_in_memory_cache(tmp_path):
    import kdkeras
    from kdkeras.targets.cache import soft_target_dataset

    x, y = indexed_x(), labels()
    teacher, data, shards = build_cache(tmp_path, data=stream(x, y))
    logits = all_logits(shards)

    def train(feed):
        keras.utils.set_random_seed(4)
        student = keras.Sequential(
            [keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)]
        )
        initial = student.get_weights()
        distiller = kdkeras.Distiller(student=student, teacher=teacher)
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.1), alpha=0.3, temperature=2.0
        )
        history = distiller.fit(feed, epochs=2, verbose=0)
        return initial, student.get_weights(), history.history

    initial, streamed, streamed_history = train(
        soft_target_shards_dataset(data, shards, batch_size=16, shuffle=False)
    )
    _, in_memory, in_memory_history = train(
        soft_target_dataset(x, y, logits, batch_size=16, shuffle=False)
    )
    for a, b in zip(streamed, in_memory, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        streamed_history["loss"], in_memory_history["loss"], rtol=1e-5
    )
    assert np.abs(streamed[0] - initial[0]).max() > 1e-3  # it did train


@pytest.mark.parametrize("drop_remainder, batches", [(False, 4), (True, 3)])
def test_training_dataset_knows_its_number_of_batches(
    tmp_path, drop_remainder, batches
):
    _, data, shards = build_cache(tmp_path)
    dataset = soft_target_shards_dataset(
        data, shards, batch_size=16, drop_remainder=drop_remainder
    )
    assert int(dataset.cardinality()) == batches
    assert len(list(dataset)) == batches


def epoch_orders(dataset, epochs=2):
    return [collect(dataset)[0][:, 0].astype(int).tolist() for _ in range(epochs)]


def test_shuffle_is_reproducible_with_a_seed_and_new_every_epoch(tmp_path):
    _, data, shards = build_cache(tmp_path, data=stream(indexed_x(), labels()))

    def orders(seed):
        return epoch_orders(
            soft_target_shards_dataset(
                data, shards, batch_size=8, shuffle_buffer=24, seed=seed
            )
        )

    first, again, other = orders(3), orders(3), orders(4)
    assert first == again
    assert first[0] != first[1]
    assert first != other
    for order in first + other:
        assert sorted(order) == list(range(COUNT))


@pytest.mark.parametrize(
    "drop_remainder, sizes",
    [(False, [4] * 13 + [1]), (True, [4] * 13)],
)
def test_shuffled_batches_permute_each_window_of_examples(drop_remainder, sizes):
    import tensorflow as tf

    # Input batches of 7 regrouped into windows of 12 (10 rounded up to a
    # multiple of the batch size 4), each permuted as a whole.
    batches = tf.data.Dataset.range(COUNT).batch(7)
    shuffled = list(
        shuffled_batches(batches, 4, 10, seed=5, drop_remainder=drop_remainder)
    )
    assert [len(batch) for batch in shuffled] == sizes
    order = np.concatenate([batch.numpy() for batch in shuffled])
    assert len(set(order)) == len(order)  # no example twice
    for start in range(0, len(order), 12):
        window = order[start : start + 12]
        assert set(window) <= set(range(start, start + 12))
    # Full windows are whole; only the last, partial batch may be dropped.
    assert sorted(order[:48]) == list(range(48))
    if not drop_remainder:
        assert sorted(order) == list(range(COUNT))
    assert order.tolist() != sorted(order.tolist())


def _distill(feed, loss, temperature):
    import kdkeras

    keras.utils.set_random_seed(4)
    student = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)])
    distiller = kdkeras.Distiller(
        student=student, teacher=keras.Sequential([keras.Input((FEATURES,))])
    )
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.1),
        alpha=0.0,
        temperature=temperature,
        distillation_loss_fn=loss,
    )
    return distiller.fit(feed, epochs=1, verbose=0).history


@pytest.mark.parametrize(
    "loss, temperature",
    [(None, 4.0), ("dkd", None)],
    ids=["default-loss", "dkd"],
)
def test_expanded_top_k_targets_train_at_the_caches_temperature_only(
    tmp_path, loss, temperature
):
    import kdkeras

    _, data, shards = build_cache(tmp_path, top_k=3, temperature=2.0)
    feed = soft_target_shards_dataset(data, shards, batch_size=16, expand_top_k=True)
    wrong = kdkeras.DKD(temperature=4.0) if loss == "dkd" else None
    with pytest.raises(Exception, match="must equal the temperature the top-k"):
        _distill(feed, wrong, temperature)
    # At the cache's temperature it trains.
    right = kdkeras.DKD(temperature=2.0) if loss == "dkd" else None
    history = _distill(feed, right, None if loss == "dkd" else 2.0)
    assert np.isfinite(history["loss"][0])


def stream_that_changes_order(x, stable_passes, batch_size=7):
    """A finite, deterministic-looking stream: the first `stable_passes`
    passes in order, every later one with rows 0-9 and 10-19 swapped."""
    import tensorflow as tf

    passes = []

    def batches():
        passes.append(1)
        rows = x
        if len(passes) > stable_passes:
            rows = np.concatenate([x[10:20], x[:10], x[20:]])
        for start in range(0, len(rows), batch_size):
            yield rows[start : start + batch_size]

    data = tf.data.Dataset.from_generator(
        batches, output_signature=tf.TensorSpec((None, FEATURES), tf.float32)
    )
    count = -(-len(x) // batch_size)
    return data.apply(tf.data.experimental.assert_cardinality(count))


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_stream_that_changes_order_after_the_check_is_stopped(tmp_path, shuffle):
    x = indexed_x()
    # Pass 1 writes the cache, pass 2 checks it, pass 3 is the first epoch.
    data = stream_that_changes_order(x, stable_passes=3)
    _, _, shards = build_cache(tmp_path, data=data)
    dataset = soft_target_shards_dataset(data, shards, batch_size=8, shuffle=shuffle)
    batch_x, _, logits, _ = collect(dataset)  # epoch 1: in order, joined right
    np.testing.assert_array_equal(logits, all_logits(shards)[batch_x[:, 0].astype(int)])
    with pytest.raises(Exception, match="changed order") as raised:
        collect(dataset)  # epoch 2: rows 0-19 reordered
    assert "stream position 0" in str(raised.value)


def test_fingerprints_tell_every_example_and_every_changed_word_apart():
    from kdkeras.targets.shards.stream import row_fingerprints

    x = np.random.default_rng(0).standard_normal((512, 13)).astype("float32")
    fingerprints = row_fingerprints([x, x[:, :3].astype("float16")])
    assert len(np.unique(fingerprints)) == len(x)
    for row, column in [(0, 0), (7, 12), (511, 5)]:
        changed = x.copy()
        changed[row, column] = np.nextafter(changed[row, column], np.inf)
        other = row_fingerprints([changed, x[:, :3].astype("float16")])
        assert np.flatnonzero(other != fingerprints).tolist() == [row]
    # Batching does not matter: each row is hashed on its own.
    halves = np.concatenate([row_fingerprints([x[:100]]), row_fingerprints([x[100:]])])
    np.testing.assert_array_equal(halves, row_fingerprints([x]))
