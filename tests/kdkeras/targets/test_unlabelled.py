"""Soft-target datasets without labels and with partial labels."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdkeras
from kdkeras.targets import online
from kdkeras.targets.batch import LABELS_KEY
from kdkeras.targets.batch import TEACHER_LOGITS_KEY
from kdkeras.targets.batch import split_targets
from kdkeras.targets.cache import soft_target_dataset
from kdkeras.targets.memory import cache
from tests import reference
from tests.kdkeras.targets.targets_setup import CLASSES
from tests.kdkeras.targets.targets_setup import dense_model
from tests.kdkeras.targets.targets_setup import indexed_x

UNLABELLED = -1


def partial_labels(count=37, seed=1):
    labels = np.random.default_rng(seed).integers(0, CLASSES, count)
    labels[::3] = UNLABELLED
    return labels.astype("int32")


def build(kind, x, y, teacher, **kwargs):
    if kind == "cached":
        logits = cache.compute_soft_targets(teacher, x)
        return soft_target_dataset(x, y, logits, **kwargs)
    return online.online_soft_target_dataset(x, y, teacher, jit_compile=False, **kwargs)


@pytest.mark.parametrize("kind", ["cached", "online"])
@pytest.mark.parametrize("with_weights", [False, True])
def test_unlabelled_batches_carry_only_the_teachers_logits(kind, with_weights):
    x, teacher = indexed_x(37), dense_model(2)
    weights = np.linspace(0.5, 1.5, len(x)).astype("float32")
    data = build(
        kind,
        x,
        None,
        teacher,
        batch_size=8,
        seed=3,
        sample_weight=weights if with_weights else None,
    )
    spec = data.element_spec
    assert len(spec) == (3 if with_weights else 2)
    assert list(spec[1]) == [TEACHER_LOGITS_KEY]
    assert spec[1][TEACHER_LOGITS_KEY].shape.as_list() == [None, CLASSES]
    assert spec[1][TEACHER_LOGITS_KEY].dtype == tf.float32
    seen = []
    for element in data:
        batch_x, targets = element[0].numpy(), element[1]
        labels, logits = split_targets(targets)
        assert labels is None
        index = batch_x[:, 0].astype(int)
        seen.extend(index)
        np.testing.assert_allclose(
            logits.numpy(),
            reference.dense_relu_logits(teacher, x[index]),
            rtol=1e-5,
            atol=1e-5,
        )
        if with_weights:
            np.testing.assert_array_equal(element[2].numpy(), weights[index])
    assert sorted(seen) == list(range(len(x))) and seen != sorted(seen)


@pytest.mark.parametrize("kind", ["cached", "online"])
def test_partial_labels_pass_through_with_their_marker(kind):
    x, y, teacher = indexed_x(37), partial_labels(), dense_model(2)
    data = build(kind, x, y, teacher, batch_size=8, seed=4)
    assert sorted(data.element_spec[1]) == [LABELS_KEY, TEACHER_LOGITS_KEY]
    labels = []
    for batch_x, targets in data:
        index = batch_x.numpy()[:, 0].astype(int)
        batch_labels, logits = split_targets(targets)
        np.testing.assert_array_equal(batch_labels.numpy(), y[index])
        labels.extend(batch_labels.numpy())
        np.testing.assert_allclose(
            logits.numpy(),
            reference.dense_relu_logits(teacher, x[index]),
            rtol=1e-5,
            atol=1e-5,
        )
    assert labels.count(UNLABELLED) == (y == UNLABELLED).sum() > 0


@pytest.mark.parametrize("kind", ["cached", "online"])
@pytest.mark.parametrize("labels", ["none", "partial"])
def test_distiller_trains_on_soft_targets_alone(kind, labels):
    """alpha=0: the student moves towards the teacher on unlabelled data."""
    x, teacher = indexed_x(64), dense_model(2)
    y = None if labels == "none" else partial_labels(64)
    data = build(kind, x, y, teacher, batch_size=16, seed=5)
    student = dense_model(7)
    distiller = kdkeras.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.05), alpha=0.0, temperature=2.0)
    before = distiller.evaluate(data, verbose=0, return_dict=True)
    history = distiller.fit(data, epochs=3, verbose=0).history
    after = distiller.evaluate(data, verbose=0, return_dict=True)
    assert np.isfinite(history["distillation_loss"]).all()
    assert after["distillation_loss"] < before["distillation_loss"]
