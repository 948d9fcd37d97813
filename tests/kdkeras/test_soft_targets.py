"""Tests for kdkeras/soft_targets.py: the soft-target cache and dataset."""

import os

import numpy as np
import pytest
import tensorflow as tf

import keras
from tests import reference
from kdkeras import soft_targets
from kdkeras import teachers

pytestmark = pytest.mark.usefixtures("deterministic")

FEATURES = 6
CLASSES = 4


def build_teacher(seed, activation="relu", augment=False, softmax=False):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((FEATURES,))]
    if augment:  # Image-style jitter, reshaped around the 1-D features.
        layers += [
            keras.layers.Reshape((2, 3, 1)),
            keras.layers.RandomTranslation(0.3, 0.3),
            keras.layers.Flatten(),
        ]
    layers += [
        keras.layers.Dense(8, activation=activation),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(
            CLASSES, activation="softmax" if softmax else None
        ),
    ]
    return keras.Sequential(layers)


def random_x(seed, count=50):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, FEATURES)).astype("float32")


@pytest.fixture
def teacher_calls(monkeypatch):
    """Counts how often the teacher actually runs."""
    calls = []
    original = soft_targets.compute_soft_targets

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(soft_targets, "compute_soft_targets", counting)
    return calls


@pytest.mark.parametrize("softmax", [False, True])
def test_cache_computes_teacher_logits_then_reuses_them(
    tmp_path, teacher_calls, softmax
):
    teacher = build_teacher(1, softmax=softmax)
    x = random_x(2, count=37)
    path = tmp_path / "targets.npz"

    first = soft_targets.cache_soft_targets(teacher, x, path, batch_size=8)
    second = soft_targets.cache_soft_targets(teacher, x, path, batch_size=8)

    # Logits (also for a softmax teacher), in inference mode (no dropout).
    np.testing.assert_allclose(first, reference.dense_relu_logits(teacher, x), atol=1e-5)
    np.testing.assert_array_equal(second, first)
    assert first.dtype == np.float32 and first.shape == (37, CLASSES)
    assert len(teacher_calls) == 1
    assert sorted(os.listdir(tmp_path)) == ["targets.npz"]  # no temp files


def test_float16_cache_is_rounded_logits(tmp_path):
    teacher = build_teacher(3)
    x = random_x(4)
    full = soft_targets.cache_soft_targets(teacher, x, tmp_path / "a.npz")
    half = soft_targets.cache_soft_targets(
        teacher, x, tmp_path / "b.npz", dtype="float16"
    )
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half, full.astype(np.float16))
    loaded = soft_targets.load_soft_targets(
        tmp_path / "b.npz", teacher, x, dtype="float16"
    )
    np.testing.assert_array_equal(loaded, half)


def test_float16_refuses_logits_it_cannot_hold(tmp_path):
    teacher = build_teacher(3)
    last = teacher.layers[-1]
    last.bias.assign(np.full(CLASSES, 1e6, "float32"))
    with pytest.raises(ValueError, match="`dtype`"):
        soft_targets.cache_soft_targets(
            teacher, random_x(1), tmp_path / "t.npz", dtype="float16"
        )
    assert not os.listdir(tmp_path)


def change_weight(teacher):
    kernel = teacher.layers[0].kernel
    kernel.assign(kernel.numpy() + 0.25)


def change_data(x):
    x = x.copy()
    x[17, 3] += 1e-3
    return x


@pytest.mark.parametrize(
    "change, word",
    [
        ("weights", "teacher"),
        ("data", "`x`"),
        ("data-rows", "`x`"),
        ("dtype", "float16"),
    ],
)
def test_stale_cache_is_never_used(tmp_path, teacher_calls, change, word):
    teacher = build_teacher(5)
    x = random_x(6)
    path = tmp_path / "targets.npz"
    soft_targets.cache_soft_targets(teacher, x, path)
    dtype = "float32"
    if change == "weights":
        change_weight(teacher)
    elif change == "data":
        x = change_data(x)
    elif change == "data-rows":
        x = x[:-1]
    else:
        dtype = "float16"

    with pytest.raises(soft_targets.StaleSoftTargetsError, match=word):
        soft_targets.cache_soft_targets(
            teacher, x, path, dtype=dtype, on_stale="error"
        )
    with pytest.raises(soft_targets.StaleSoftTargetsError, match=word):
        soft_targets.load_soft_targets(path, teacher, x, dtype=dtype)

    recomputed = soft_targets.cache_soft_targets(teacher, x, path, dtype=dtype)
    expected = reference.dense_relu_logits(teacher, x).astype(dtype)
    np.testing.assert_allclose(recomputed, expected, rtol=1e-3, atol=1e-3)
    assert len(teacher_calls) == 2
    # The rewritten cache now matches and is reused.
    soft_targets.cache_soft_targets(teacher, x, path, dtype=dtype)
    assert len(teacher_calls) == 2


def test_corrupt_cache_is_recomputed_or_rejected(tmp_path):
    teacher = build_teacher(5)
    x = random_x(6)
    path = tmp_path / "targets.npz"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(soft_targets.StaleSoftTargetsError, match="`path`"):
        soft_targets.cache_soft_targets(teacher, x, path, on_stale="error")
    logits = soft_targets.cache_soft_targets(teacher, x, path)
    np.testing.assert_allclose(logits, reference.dense_relu_logits(teacher, x), atol=1e-5)


def test_failed_write_leaves_previous_cache_and_no_temporary(
    tmp_path, monkeypatch
):
    teacher = build_teacher(5)
    x = random_x(6)
    path = tmp_path / "targets.npz"
    soft_targets.cache_soft_targets(teacher, x, path)
    before = path.read_bytes()
    change_weight(teacher)

    def broken_savez(file, **arrays):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        soft_targets.cache_soft_targets(teacher, x, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["targets.npz"]


def test_load_missing_cache_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="`path`"):
        soft_targets.load_soft_targets(
            tmp_path / "none.npz", build_teacher(1), random_x(1)
        )


def test_teacher_fingerprint_ignores_layer_names_but_not_weights():
    first = build_teacher(7)
    keras.layers.Dense(3)  # Shifts the automatic names of later layers.
    second = build_teacher(7)
    assert [l.name for l in first.layers] != [l.name for l in second.layers]
    assert soft_targets.teacher_fingerprint(
        first
    ) == soft_targets.teacher_fingerprint(second)

    other_activation = build_teacher(7, activation="tanh")
    assert soft_targets.teacher_fingerprint(
        other_activation
    ) != soft_targets.teacher_fingerprint(first)
    change_weight(second)
    assert soft_targets.teacher_fingerprint(
        first
    ) != soft_targets.teacher_fingerprint(second)


def test_fingerprint_of_augmenting_teacher_is_stable_and_cache_is_clean(
    tmp_path,
):
    teacher = build_teacher(8, augment=True)
    x = random_x(9)
    fingerprint = soft_targets.teacher_fingerprint(teacher)
    logits = soft_targets.cache_soft_targets(teacher, x, tmp_path / "t.npz")
    # Augmentation and dropout are inactive at inference: clean logits.
    np.testing.assert_allclose(
        logits, teacher(x, training=False), rtol=1e-6, atol=1e-6
    )
    assert soft_targets.teacher_fingerprint(teacher) == fingerprint
    assert soft_targets.random_augmentation_layers(teacher)


def test_ensemble_teacher_is_cached(tmp_path):
    members = [build_teacher(s) for s in (1, 2)]
    ensemble = teachers.Ensemble(members, mean="geometric")
    x = random_x(3)
    logits = soft_targets.cache_soft_targets(ensemble, x, tmp_path / "e.npz")
    np.testing.assert_allclose(logits, ensemble(x), rtol=1e-6, atol=1e-6)
    change_weight(members[1])  # A member's change makes the cache stale.
    with pytest.raises(soft_targets.StaleSoftTargetsError, match="teacher"):
        soft_targets.load_soft_targets(tmp_path / "e.npz", ensemble, x)


def collect(dataset):
    xs, labels, logits, weights = [], [], [], []
    for element in dataset:
        xs.append(element[0].numpy())
        labels.append(element[1]["labels"].numpy())
        logits.append(element[1]["teacher_logits"].numpy())
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
    teacher = build_teacher(10)
    x = random_x(11, count=203)
    y = np.random.default_rng(12).integers(0, CLASSES, 203).astype("int32")
    teacher_logits = soft_targets.compute_soft_targets(teacher, x)
    weights = np.random.default_rng(13).uniform(size=203).astype("float32")

    dataset = soft_targets.soft_target_dataset(
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
        dataset = soft_targets.soft_target_dataset(
            x, y, logits, batch_size=16, **kwargs
        )
        return collect(dataset)[1].tolist()

    assert labels(seed=3) == labels(seed=3)
    assert labels(shuffle=False) == list(range(40))
    dataset = soft_targets.soft_target_dataset(
        x, y, logits.astype("float16"), batch_size=16, shuffle=False
    )
    first = next(iter(dataset))
    assert first[1]["teacher_logits"].dtype == tf.float32
    assert [int(b[0].shape[0]) for b in dataset] == [16, 16, 8]


def test_dataset_with_dict_inputs():
    x = {"a": random_x(1, count=10), "b": np.arange(10.0)[:, None]}
    dataset = soft_targets.soft_target_dataset(
        x, np.arange(10), np.eye(10, CLASSES), batch_size=4, seed=1
    )
    for batch_x, targets in dataset:
        rows = batch_x["b"].numpy()[:, 0].astype(int)
        np.testing.assert_array_equal(targets["labels"], rows)
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
        soft_targets.soft_target_dataset(
            random_x(1, 8), np.arange(8), np.zeros((8, CLASSES)), **kwargs
        )
    assert "online" in str(info.value) and "\n" not in str(info.value)


def test_dataset_accepts_a_student_without_augmentation():
    student = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dropout(0.2), keras.layers.Dense(CLASSES)]
    )
    dataset = soft_targets.soft_target_dataset(
        random_x(1, 8), np.arange(8), np.zeros((8, CLASSES)),
        student=student, augmentation=False,
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
        soft_targets.soft_target_dataset(**arguments)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"dtype": "int8"}, ValueError, "`dtype`"),
        ({"on_stale": "ignore"}, ValueError, "`on_stale`"),
        ({"batch_size": -1}, ValueError, "`batch_size`"),
        ({"teacher": "model"}, TypeError, "`teacher`"),
    ],
)
def test_cache_bad_arguments(tmp_path, kwargs, error, word):
    arguments = {
        "teacher": build_teacher(1),
        "x": random_x(1),
        "path": tmp_path / "t.npz",
    }
    arguments.update(kwargs)
    with pytest.raises(error, match=word):
        soft_targets.cache_soft_targets(**arguments)
    assert not os.path.exists(tmp_path / "t.npz")


def test_distiller_on_cached_targets_trains_like_online():
    """The dataset's contract: kdkeras.Distiller trains on it without the
    teacher, to the same student as online distillation in the same order."""
    import kdkeras

    x = random_x(20, count=96)
    y = np.random.default_rng(21).integers(0, CLASSES, 96).astype("int32")
    teacher = build_teacher(22)
    teacher_logits = soft_targets.compute_soft_targets(teacher, x)

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
            data = soft_targets.soft_target_dataset(
                x, y, teacher_logits, batch_size=32, shuffle=False
            )
        else:
            data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
        history = distiller.fit(data, epochs=2, verbose=0, shuffle=False)
        return student.get_weights(), history.history

    cached_weights, cached_history = train(cached=True)
    online_weights, online_history = train(cached=False)
    for cached, online in zip(cached_weights, online_weights):
        np.testing.assert_allclose(cached, online, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        cached_history["distillation_loss"],
        online_history["distillation_loss"],
        rtol=1e-5,
    )
    keras.utils.set_random_seed(23)
    initial = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)]
    )
    # The student did train.
    assert np.abs(cached_weights[0] - initial.get_weights()[0]).max() > 1e-3
