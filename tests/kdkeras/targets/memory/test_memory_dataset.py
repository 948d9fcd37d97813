"""Tests for kdkeras/targets/memory/dataset.py: batches of inputs with cached logits."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdkeras.targets.batch import LABELS_KEY
from kdkeras.targets.batch import TEACHER_LOGITS_KEY
from kdkeras.targets.cache import soft_target_dataset
from kdkeras.targets.memory import cache
from tests import reference
from tests.kdkeras.targets.targets_setup import CLASSES
from tests.kdkeras.targets.targets_setup import FEATURES
from tests.kdkeras.targets.targets_setup import dense_model
from tests.kdkeras.targets.targets_setup import random_x

pytestmark = pytest.mark.usefixtures("deterministic")


def collect(dataset):
    xs, labels, logits, weights = [], [], [], []
    for element in dataset:
        xs.append(element[0].numpy())
        labels.append(element[1][LABELS_KEY].numpy())
        logits.append(element[1][TEACHER_LOGITS_KEY].numpy())
        if len(element) == 3:
            weights.append(element[2].numpy())
    stack = np.concatenate
    return (
        stack(xs),
        stack(labels),
        stack(logits),
        stack(weights) if weights else None,
    )


@pytest.mark.parametrize("with_weights", [False, True])
def test_shuffled_dataset_keeps_each_example_with_its_targets(with_weights):
    teacher = dense_model(10, dropout=True)
    x = random_x(11, count=203)
    y = np.random.default_rng(12).integers(0, CLASSES, 203).astype("int32")
    teacher_logits = cache.compute_soft_targets(teacher, x)
    weights = np.random.default_rng(13).uniform(size=203).astype("float32")

    dataset = soft_target_dataset(
        x,
        y,
        teacher_logits,
        batch_size=32,
        seed=4,
        sample_weight=weights if with_weights else None,
    )
    orders = []
    for _ in range(2):  # Two epochs, reshuffled.
        batch_x, labels, logits, batch_weights = collect(dataset)
        # Each example's position in the original arrays.
        order = [int(np.flatnonzero((x == row).all(1))[0]) for row in batch_x]
        assert sorted(order) == list(range(203))  # each once per epoch
        np.testing.assert_array_equal(labels, y[order])
        # Every element's targets are the teacher's logits for THAT x.
        np.testing.assert_allclose(
            logits, reference.dense_relu_logits(teacher, batch_x), rtol=1e-5, atol=1e-5
        )
        if with_weights:
            np.testing.assert_array_equal(batch_weights, weights[order])
        else:
            assert batch_weights is None
        orders.append(order)
    assert orders[0] != list(range(203))
    assert orders[0] != orders[1]


def test_dataset_order_is_reproducible_and_unshuffled_on_request():
    x = random_x(1, count=40)
    y = np.arange(40)
    logits = np.random.default_rng(2).normal(size=(40, CLASSES))

    def labels(**kwargs):
        dataset = soft_target_dataset(x, y, logits, batch_size=16, **kwargs)
        return collect(dataset)[1].tolist()

    assert labels(seed=3) == labels(seed=3)
    assert labels(shuffle=False) == list(range(40))
    dataset = soft_target_dataset(
        x, y, logits.astype("float16"), batch_size=16, shuffle=False
    )
    first = next(iter(dataset))
    assert first[1][TEACHER_LOGITS_KEY].dtype == tf.float32
    assert [int(b[0].shape[0]) for b in dataset] == [16, 16, 8]


def test_dataset_with_dict_inputs():
    x = {"a": random_x(1, count=10), "b": np.arange(10.0)[:, None]}
    dataset = soft_target_dataset(
        x, np.arange(10), np.eye(10, CLASSES), batch_size=4, seed=1
    )
    for batch_x, targets in dataset:
        rows = batch_x["b"].numpy()[:, 0].astype(int)
        np.testing.assert_array_equal(targets[LABELS_KEY], rows)
        np.testing.assert_array_equal(batch_x["a"], x["a"][rows])


def augmented_student():
    return keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            keras.layers.RandomFlip("horizontal"),
            keras.layers.Flatten(),
            keras.layers.Dense(CLASSES),
        ]
    )


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"augmentation": True}, "`augmentation`"),
        ({"augmentation": [keras.layers.RandomRotation(0.1)]}, "`augmentation`"),
        ({"augmentation": keras.layers.RandomFlip()}, "`augmentation`"),
        ({"student": "augmented"}, "RandomFlip"),
    ],
    ids=["true", "layer-list", "layer", "student"],
)
def test_dataset_refuses_student_augmentation(kwargs, word):
    if kwargs.get("student") == "augmented":
        kwargs = {"student": augmented_student()}
    with pytest.raises(ValueError, match=word) as info:
        soft_target_dataset(
            random_x(1, 8), np.arange(8), np.zeros((8, CLASSES)), **kwargs
        )
    assert "online" in str(info.value) and "\n" not in str(info.value)


def test_dataset_accepts_a_student_without_augmentation():
    student = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(CLASSES),
        ]
    )
    dataset = soft_target_dataset(
        random_x(1, 8),
        np.arange(8),
        np.zeros((8, CLASSES)),
        student=student,
        augmentation=False,
    )
    assert sum(int(b[0].shape[0]) for b in dataset) == 8


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"y": np.arange(7)}, "`y`"),
        ({"teacher_logits": np.zeros((9, CLASSES))}, "`teacher_logits`"),
        ({"teacher_logits": np.zeros(8)}, "`teacher_logits`"),
        ({"sample_weight": np.ones(3)}, "`sample_weight`"),
        ({"batch_size": 0}, "`batch_size`"),
        ({"x": [1, 2]}, "`x`"),
    ],
)
def test_dataset_bad_arguments(kwargs, word):
    arguments = {
        "x": random_x(1, 8),
        "y": np.arange(8),
        "teacher_logits": np.zeros((8, CLASSES)),
    }
    arguments.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=word) as info:
        soft_target_dataset(**arguments)
    assert "\n" not in str(info.value)


def test_distiller_on_cached_targets_trains_like_online():
    """The dataset's contract: kdkeras.Distiller trains on it without the
    teacher, to the same student as online distillation in the same order."""
    import kdkeras

    x = random_x(20, count=96)
    y = np.random.default_rng(21).integers(0, CLASSES, 96).astype("int32")
    teacher = dense_model(22, dropout=True)
    teacher_logits = cache.compute_soft_targets(teacher, x)

    def train(cached):
        keras.utils.set_random_seed(23)
        student = keras.Sequential(
            [keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)]
        )
        distiller = kdkeras.Distiller(student=student, teacher=teacher)
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.1), alpha=0.3, temperature=2.0
        )
        if cached:
            data = soft_target_dataset(
                x, y, teacher_logits, batch_size=32, shuffle=False
            )
        else:
            data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
        history = distiller.fit(data, epochs=2, verbose=0, shuffle=False)
        return student.get_weights(), history.history

    cached_weights, cached_history = train(cached=True)
    online_weights, online_history = train(cached=False)
    for cached, online in zip(cached_weights, online_weights, strict=True):
        np.testing.assert_allclose(cached, online, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        cached_history["distillation_loss"],
        online_history["distillation_loss"],
        rtol=1e-5,
    )
    keras.utils.set_random_seed(23)
    initial = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)])
    # The student did train.
    assert np.abs(cached_weights[0] - initial.get_weights()[0]).max() > 1e-3
