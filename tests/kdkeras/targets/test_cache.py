"""The one soft-target cache entry point: every input `fit` takes, both storages."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdkeras
from kdkeras.targets import cache as cache_lib
from kdkeras.targets.batch import LABELS_KEY
from kdkeras.targets.batch import TEACHER_LOGITS_KEY
from kdkeras.targets.memory.cache import StaleSoftTargetsError

COUNT = 37
CLASSES = 5
BATCH = 8


def _two_input_model(seed):
    """Inputs `a` (4 features) and `b` (3 features), concatenated, 5 logits."""
    keras.utils.set_random_seed(seed)
    a = keras.Input((4,), name="a")
    b = keras.Input((3,), name="b")
    hidden = keras.layers.Dense(8, activation="relu")(
        keras.layers.Concatenate()([a, b])
    )
    return keras.Model({"a": a, "b": b}, keras.layers.Dense(CLASSES)(hidden))


def _one_input_model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(CLASSES),
        ]
    )


class _Batches(keras.utils.PyDataset):
    """`(x, y)` batches of arrays, as a user's PyDataset would yield them."""

    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return -(-len(self.y) // self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[rows], self.y[rows]


def _arrays(two_inputs, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, COUNT).astype("int32")
    if two_inputs:
        x = {
            "a": rng.standard_normal((COUNT, 4)).astype("float32"),
            "b": rng.standard_normal((COUNT, 3)).astype("float32"),
        }
    else:
        x = rng.standard_normal((COUNT, 6)).astype("float32")
    return x, y


# kind: (model, the input given to cache_soft_targets, storage chosen by "auto")
KINDS = {
    "array": (False, lambda x, y: x, "memory"),
    "dict": (True, lambda x, y: x, "memory"),
    "dataset": (
        False,
        lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH),
        "shards",
    ),
    "dict_dataset": (
        True,
        lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH),
        "shards",
    ),
    "py_dataset": (False, lambda x, y: _Batches(x, y, BATCH), "shards"),
}


def _cached(kind, tmp_path, teacher_seed=1, **kwargs):
    two_inputs, make_input, _ = KINDS[kind]
    x, y = _arrays(two_inputs)
    teacher = (_two_input_model if two_inputs else _one_input_model)(teacher_seed)
    data = make_input(x, y)
    cache = kdkeras.cache_soft_targets(teacher, data, tmp_path / kind, **kwargs)
    return teacher, x, y, data, cache


def _batches(cache, y, **kwargs):
    """`soft_target_dataset(cache)`, passing `y` only for cached arrays."""
    if cache_lib._is_stream(cache.x):
        y = None
    return kdkeras.soft_target_dataset(cache, y, batch_size=BATCH, **kwargs)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_cached_logits_are_the_teachers_in_the_storage_auto_picks(kind, tmp_path):
    teacher, x, _, _, cache = _cached(kind, tmp_path)
    assert cache.storage == KINDS[kind][2]
    assert cache.shape == (COUNT, CLASSES)
    expected = teacher.predict(x, verbose=0)
    np.testing.assert_allclose(cache.logits, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(cache), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cache[3], expected[3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cache[-5:], expected[-5:], rtol=1e-5, atol=1e-6)
    assert (tmp_path / kind).is_dir() == (cache.storage == "shards")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_batches_join_every_example_with_its_logits_and_label(kind, tmp_path):
    teacher, x, y, _, cache = _cached(kind, tmp_path)
    expected = teacher.predict(x, verbose=0)
    seen = []
    for inputs, targets in _batches(cache, y, seed=3):
        first = inputs["a"] if isinstance(inputs, dict) else inputs
        # Find each example by its input row; its logits and label follow it.
        rows = [
            int(np.flatnonzero((_first_input(x) == row).all(axis=1))[0])
            for row in first.numpy()
        ]
        np.testing.assert_allclose(
            targets[TEACHER_LOGITS_KEY], expected[rows], rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(targets[LABELS_KEY], y[rows])
        seen += rows
    assert sorted(seen) == list(range(COUNT))
    assert seen != list(range(COUNT))  # shuffled


def _first_input(x):
    return x["a"] if isinstance(x, dict) else x


@pytest.mark.parametrize("two_inputs", [False, True], ids=["array", "dict"])
def test_arrays_above_the_size_limit_go_to_shards(two_inputs, tmp_path, monkeypatch):
    # 37 examples x 5 classes x 4 bytes = 740 bytes.
    monkeypatch.setattr(cache_lib, "MEMORY_LIMIT_BYTES", 739)
    kind = "dict" if two_inputs else "array"
    teacher, x, y, _, cache = _cached(kind, tmp_path, examples_per_shard=None)
    assert cache.storage == "shards"
    assert (tmp_path / kind / "index.json").is_file()
    np.testing.assert_allclose(
        cache.logits, teacher.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    monkeypatch.setattr(cache_lib, "MEMORY_LIMIT_BYTES", 740)
    _, _, _, _, small = _cached(kind, tmp_path / "small")
    assert small.storage == "memory"


@pytest.mark.parametrize(
    ("kwargs", "storage"),
    [
        ({"storage": "shards"}, "shards"),
        ({"storage": "memory"}, "memory"),
        ({"examples_per_shard": 10}, "shards"),
        ({"top_k": 2, "temperature": 3.0}, "shards"),
    ],
)
def test_the_caller_picks_the_storage(kwargs, storage, tmp_path):
    teacher, x, _, _, cache = _cached("array", tmp_path, **kwargs)
    assert cache.storage == storage
    if "top_k" in kwargs:
        assert (cache.top_k, cache.temperature) == (2, 3.0)
        assert cache.dtype == np.float16
    else:
        np.testing.assert_allclose(
            cache.logits, teacher.predict(x, verbose=0), rtol=1e-5, atol=1e-6
        )


def _student_weights(kind, tmp_path, storage):
    """A student distilled for two epochs on `soft_target_dataset(cache)`."""
    two_inputs = KINDS[kind][0]
    teacher, _, y, _, cache = _cached(kind, tmp_path / storage, storage=storage)
    assert cache.storage == storage
    student = (_two_input_model if two_inputs else _one_input_model)(seed=7)
    distiller = kdkeras.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.1),
        alpha=0.3,
        temperature=2.0,
        jit_compile=False,
    )
    distiller.fit(_batches(cache, y, shuffle=False), epochs=2, verbose=0)
    return student.get_weights()


@pytest.fixture(scope="module")
def memory_weights(tmp_path_factory):
    """The student trained from the memory storage, once per input kind."""
    trained = {}

    def weights(kind):
        if kind not in trained:
            folder = tmp_path_factory.mktemp("memory")
            trained[kind] = _student_weights(kind, folder, "memory")
        return trained[kind]

    return weights


@pytest.mark.parametrize("kind", ["array", "dict", "dataset", "py_dataset"])
def test_the_sharded_storage_trains_the_student_the_memory_one_does(
    kind, tmp_path, memory_weights
):
    two_inputs = KINDS[kind][0]
    expected = memory_weights("dict" if two_inputs else "array")
    sharded = _student_weights(kind, tmp_path, "shards")
    initial = (_two_input_model if two_inputs else _one_input_model)(7)
    for a, b, start in zip(expected, sharded, initial.get_weights(), strict=True):
        assert not np.allclose(a, start)  # it trained
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["array", "dataset"])
def test_a_second_call_loads_the_cache_and_staleness_is_checked(kind, tmp_path):
    teacher, _, _, data, first = _cached(kind, tmp_path, storage="shards")
    again = kdkeras.cache_soft_targets(
        teacher, data, tmp_path / kind, storage="shards", on_stale="error"
    )
    np.testing.assert_array_equal(again.logits, first.logits)
    other = _one_input_model(seed=2)
    with pytest.raises(StaleSoftTargetsError, match="teacher"):
        kdkeras.cache_soft_targets(
            other, data, tmp_path / kind, storage="shards", on_stale="error"
        )


def test_memory_storage_keeps_its_staleness_checks(tmp_path):
    teacher, x, _, _, _ = _cached("array", tmp_path)
    with pytest.raises(StaleSoftTargetsError, match="`x` changed"):
        kdkeras.cache_soft_targets(
            teacher, x[::-1], tmp_path / "array", on_stale="error"
        )


@pytest.mark.parametrize("storage", ["memory", "shards"])
def test_augmentation_is_refused_for_both_storages(storage, tmp_path):
    _, _, y, _, cache = _cached("array", tmp_path, storage=storage)
    with pytest.raises(ValueError, match="augmentation"):
        kdkeras.soft_target_dataset(
            cache, y, augmentation=keras.layers.RandomFlip("horizontal")
        )


def test_the_sharded_cache_from_arrays_takes_sample_weights(tmp_path):
    _, x, y, _, cache = _cached("array", tmp_path, storage="shards")
    weights = np.linspace(0.5, 1.5, COUNT).astype("float32")
    batches = kdkeras.soft_target_dataset(
        cache, y, sample_weight=weights, batch_size=BATCH, shuffle=False
    )
    got = np.concatenate([element[2].numpy() for element in batches])
    np.testing.assert_array_equal(got, weights)


@pytest.mark.parametrize(
    ("kind", "kwargs", "match"),
    [
        ("array", {"storage": "disk"}, "`storage` must be one of"),
        ("dataset", {"storage": "memory"}, "`storage` 'memory' needs NumPy arrays"),
        ("array", {"storage": "memory", "top_k": 2}, "`top_k` needs storage="),
        ("dataset", {"batch_size": 4}, "`batch_size` must be None"),
        ("array", {"batch_size": 0}, "`batch_size` must be a positive int"),
        ("array", {"dtype": "int8"}, "`dtype` must be one of"),
        ("array", {"on_stale": "ignore"}, "`on_stale` must be"),
    ],
)
def test_bad_arguments_are_refused_before_the_teacher_runs(
    kind, kwargs, match, tmp_path, monkeypatch
):
    for method in ("predict", "predict_on_batch"):
        monkeypatch.setattr(
            keras.Model, method, lambda *a, **k: pytest.fail("the teacher ran")
        )
    with pytest.raises(ValueError, match=match):
        _cached(kind, tmp_path, **kwargs)
    assert not (tmp_path / kind).exists()


def test_other_inputs_are_refused_naming_what_fit_takes(tmp_path):
    with pytest.raises(TypeError, match="`x` must be a NumPy array, a list or dict"):
        kdkeras.cache_soft_targets(_one_input_model(1), "images/", tmp_path / "t")


@pytest.mark.parametrize(
    ("kind", "call", "match"),
    [
        ("dataset", {"y": np.zeros(COUNT)}, "`y` must be None when the inputs"),
        ("array", {"teacher_logits": np.zeros((COUNT, 5))}, "`teacher_logits` must"),
    ],
)
def test_soft_target_dataset_refuses_conflicting_arguments(kind, call, match, tmp_path):
    *_, cache = _cached(kind, tmp_path)
    with pytest.raises(ValueError, match=match):
        kdkeras.soft_target_dataset(cache, **call)


def test_old_names_are_gone():
    for name in ("cache_soft_target_shards", "soft_target_shards_dataset"):
        assert name not in kdkeras.__all__
        assert name not in kdkeras.targets.__all__
        assert not hasattr(kdkeras, name)


@pytest.mark.parametrize("storage", ["memory", "shards"])
def test_a_list_of_arrays_for_a_two_input_model(storage, tmp_path):
    keras.utils.set_random_seed(3)
    a, b = keras.Input((4,)), keras.Input((3,))
    joined = keras.layers.Concatenate()([a, b])
    teacher = keras.Model([a, b], keras.layers.Dense(CLASSES)(joined))
    arrays, y = _arrays(two_inputs=True)
    x = [arrays["a"], arrays["b"]]
    cache = kdkeras.cache_soft_targets(teacher, x, tmp_path / "t", storage=storage)
    expected = teacher.predict(x, verbose=0)
    np.testing.assert_allclose(cache.logits, expected, rtol=1e-5, atol=1e-6)
    for labels in (y, None):
        batches = kdkeras.soft_target_dataset(
            cache, labels, batch_size=BATCH, shuffle=False
        )
        inputs, targets = next(iter(batches))
        np.testing.assert_array_equal(inputs[1], x[1][:BATCH])
        np.testing.assert_allclose(
            targets[TEACHER_LOGITS_KEY], expected[:BATCH], rtol=1e-5, atol=1e-6
        )
        assert (LABELS_KEY in targets) == (labels is not None)
