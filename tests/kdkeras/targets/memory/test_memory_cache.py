"""Tests for kdkeras/targets/memory/cache.py and fingerprint.py: the soft-target cache."""

import os

import keras
import numpy as np
import pytest

from kdkeras import teachers
from kdkeras.targets import augmentation
from kdkeras.targets import fingerprint
from kdkeras.targets.memory import cache
from tests import reference
from tests.kdkeras.targets.targets_setup import CLASSES
from tests.kdkeras.targets.targets_setup import dense_model
from tests.kdkeras.targets.targets_setup import random_x

pytestmark = pytest.mark.usefixtures("deterministic")


def build_teacher(seed, **options):
    """The module's teacher: Dropout after its hidden layer (off for targets)."""
    return dense_model(seed, dropout=True, **options)


@pytest.mark.parametrize("softmax", [False, True])
def test_cache_computes_teacher_logits_then_reuses_them(
    tmp_path, teacher_calls, softmax
):
    teacher = build_teacher(1, softmax=softmax)
    x = random_x(2, count=37)
    path = tmp_path / "targets.npz"

    first = cache.cache_soft_targets(teacher, x, path, batch_size=8)
    second = cache.cache_soft_targets(teacher, x, path, batch_size=8)

    # Logits (also for a softmax teacher), in inference mode (no dropout).
    np.testing.assert_allclose(
        first, reference.dense_relu_logits(teacher, x), atol=1e-5
    )
    np.testing.assert_array_equal(second, first)
    assert first.dtype == np.float32 and first.shape == (37, CLASSES)
    assert len(teacher_calls) == 1
    assert sorted(os.listdir(tmp_path)) == ["targets.npz"]  # no temp files


def test_float16_cache_is_rounded_logits(tmp_path):
    teacher = build_teacher(3)
    x = random_x(4)
    full = cache.cache_soft_targets(teacher, x, tmp_path / "a.npz")
    half = cache.cache_soft_targets(teacher, x, tmp_path / "b.npz", dtype="float16")
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half, full.astype(np.float16))
    loaded = cache.load_soft_targets(tmp_path / "b.npz", teacher, x, dtype="float16")
    np.testing.assert_array_equal(loaded, half)


def test_float16_refuses_logits_it_cannot_hold(tmp_path):
    teacher = build_teacher(3)
    last = teacher.layers[-1]
    last.bias.assign(np.full(CLASSES, 1e6, "float32"))
    with pytest.raises(ValueError, match="`dtype`"):
        cache.cache_soft_targets(
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
    cache.cache_soft_targets(teacher, x, path)
    dtype = "float32"
    if change == "weights":
        change_weight(teacher)
    elif change == "data":
        x = change_data(x)
    elif change == "data-rows":
        x = x[:-1]
    else:
        dtype = "float16"

    with pytest.raises(cache.StaleSoftTargetsError, match=word):
        cache.cache_soft_targets(teacher, x, path, dtype=dtype, on_stale="error")
    with pytest.raises(cache.StaleSoftTargetsError, match=word):
        cache.load_soft_targets(path, teacher, x, dtype=dtype)

    recomputed = cache.cache_soft_targets(teacher, x, path, dtype=dtype)
    expected = reference.dense_relu_logits(teacher, x).astype(dtype)
    np.testing.assert_allclose(recomputed, expected, rtol=1e-3, atol=1e-3)
    assert len(teacher_calls) == 2
    # The rewritten cache now matches and is reused.
    cache.cache_soft_targets(teacher, x, path, dtype=dtype)
    assert len(teacher_calls) == 2


def test_corrupt_cache_is_recomputed_or_rejected(tmp_path):
    teacher = build_teacher(5)
    x = random_x(6)
    path = tmp_path / "targets.npz"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(cache.StaleSoftTargetsError, match="`path`"):
        cache.cache_soft_targets(teacher, x, path, on_stale="error")
    logits = cache.cache_soft_targets(teacher, x, path)
    np.testing.assert_allclose(
        logits, reference.dense_relu_logits(teacher, x), atol=1e-5
    )


def test_failed_write_leaves_previous_cache_and_no_temporary(tmp_path, monkeypatch):
    teacher = build_teacher(5)
    x = random_x(6)
    path = tmp_path / "targets.npz"
    cache.cache_soft_targets(teacher, x, path)
    before = path.read_bytes()
    change_weight(teacher)

    def broken_savez(file, **arrays):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        cache.cache_soft_targets(teacher, x, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["targets.npz"]


def test_load_missing_cache_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="`path`"):
        cache.load_soft_targets(tmp_path / "none.npz", build_teacher(1), random_x(1))


def test_teacher_fingerprint_ignores_layer_names_but_not_weights():
    first = build_teacher(7)
    keras.layers.Dense(3)  # Shifts the automatic names of later layers.
    second = build_teacher(7)
    names = [[layer.name for layer in m.layers] for m in (first, second)]
    assert names[0] != names[1]
    assert fingerprint.teacher_fingerprint(first) == fingerprint.teacher_fingerprint(
        second
    )

    other_activation = build_teacher(7, activation="tanh")
    assert fingerprint.teacher_fingerprint(
        other_activation
    ) != fingerprint.teacher_fingerprint(first)
    change_weight(second)
    assert fingerprint.teacher_fingerprint(first) != fingerprint.teacher_fingerprint(
        second
    )


def test_fingerprint_of_augmenting_teacher_is_stable_and_cache_is_clean(
    tmp_path,
):
    teacher = build_teacher(8, augment=True)
    x = random_x(9)
    before = fingerprint.teacher_fingerprint(teacher)
    logits = cache.cache_soft_targets(teacher, x, tmp_path / "t.npz")
    # Augmentation and dropout are inactive at inference: clean logits.
    np.testing.assert_allclose(logits, teacher(x, training=False), rtol=1e-6, atol=1e-6)
    assert fingerprint.teacher_fingerprint(teacher) == before
    assert augmentation.random_augmentation_layers(teacher)


def test_ensemble_teacher_is_cached(tmp_path):
    members = [build_teacher(s) for s in (1, 2)]
    ensemble = teachers.Ensemble(members, mean="geometric")
    x = random_x(3)
    logits = cache.cache_soft_targets(ensemble, x, tmp_path / "e.npz")
    np.testing.assert_allclose(logits, ensemble(x), rtol=1e-6, atol=1e-6)
    change_weight(members[1])  # A member's change makes the cache stale.
    with pytest.raises(cache.StaleSoftTargetsError, match="teacher"):
        cache.load_soft_targets(tmp_path / "e.npz", ensemble, x)


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
        cache.cache_soft_targets(**arguments)
    assert not os.path.exists(tmp_path / "t.npz")


@pytest.mark.parametrize("scale, refused", [(40.0, True), (3.0, False)])
def test_float16_refuses_logits_it_cannot_hold_precisely(tmp_path, scale, refused):
    teacher = build_teacher(3)
    last = teacher.layers[-1]
    last.bias.assign(np.linspace(scale, scale + 0.1, CLASSES).astype("float32"))
    last.kernel.assign(np.zeros_like(last.kernel.numpy()))
    path = tmp_path / "t.npz"
    if refused:
        with pytest.raises(ValueError, match="too coarse") as raised:
            cache.cache_soft_targets(teacher, random_x(1), path, dtype="float16")
        assert "\n" not in str(raised.value)
        assert not os.listdir(tmp_path)
    else:
        half = cache.cache_soft_targets(teacher, random_x(1), path, dtype="float16")
        assert half.dtype == np.float16


def test_inputs_the_teacher_cannot_take_name_both_shapes(tmp_path):
    teacher = build_teacher(3)
    narrow = random_x(1)[:, :-1]
    with pytest.raises(
        ValueError, match=r"\(None, 6\). Received: x of shape \(None, 5\)"
    ):
        cache.cache_soft_targets(teacher, narrow, tmp_path / "t.npz")
    assert not os.listdir(tmp_path)
