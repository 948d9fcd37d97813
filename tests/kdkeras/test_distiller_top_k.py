"""The Distiller on top-k teacher targets (many classes): the batch
contract's top-k keys, `kdkeras.losses.top_k_kd_loss_per_example`, checked
against float64 NumPy; the temperature and loss checks; the streamed cache."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdkeras
from kdkeras.targets import TEACHER_TOP_K_INDICES_KEY
from kdkeras.targets import TEACHER_TOP_K_VALUES_KEY
from kdkeras.targets import top_k_target_dict
from kdkeras.targets import top_k_targets
from tests import reference
from tests.kdkeras.distiller_setup import assert_first_epoch
from tests.kdkeras.distiller_setup import assert_sgd_step
from tests.kdkeras.distiller_setup import distiller_gradient
from tests.kdkeras.distiller_setup import linear
from tests.kdkeras.distiller_setup import mlp
from tests.kdkeras.distiller_setup import one_sgd_step
from tests.kdkeras.distiller_setup import random_data

CLASSES = 9
FEATURES = 6


def _data(examples, seed=0):
    return random_data(examples, seed, features=FEATURES, classes=CLASSES)


def _linear(seed):
    return linear(seed, classes=CLASSES, features=FEATURES)


def _teacher():
    return mlp(32, seed=2, classes=CLASSES, features=FEATURES)


def _teacher_logits(teacher, x):
    # Spread the logits so that the rest's mass is neither 0 nor 1.
    return 3.0 * teacher.predict(x, verbose=0)


@pytest.mark.parametrize(
    "alpha, k, temperature, jit_compile",
    [
        (0.0, 3, 2.5, False),
        (0.3, 1, 1.0, True),
        (0.7, 5, 8.0, False),
    ],
)
def test_one_step_matches_float64_reference(alpha, k, temperature, jit_compile):
    """A linear student after one SGD step on top-k targets equals the
    float64 NumPy update, and the history reports the float64 losses."""
    x, y = _data(24, seed=k)
    sample_weight = np.random.default_rng(7).uniform(0.2, 2.0, size=len(y))
    student, teacher = _linear(1), _teacher()
    teacher_logits = _teacher_logits(teacher, x)
    targets = top_k_target_dict(
        *top_k_targets(teacher_logits, k, temperature), temperature, labels=y
    )
    kernel, bias, history = one_sgd_step(
        student,
        teacher,
        x,
        targets,
        sample_weight,
        alpha=alpha,
        temperature=temperature,
        jit_compile=jit_compile,
    )

    logits = x.astype(np.float64) @ kernel + bias
    soft = reference.top_k_kd_loss_per_example(teacher_logits, logits, k, temperature)
    hard = reference.sparse_cross_entropy_per_example(y, logits)
    per_example_grad = distiller_gradient(
        alpha,
        reference.sparse_cross_entropy_gradient(y, logits),
        reference.top_k_kd_loss_gradient(teacher_logits, logits, k, temperature),
        sample_weight,
    )
    assert_sgd_step(student, x, kernel, bias, per_example_grad)
    expected = {
        "distillation_loss": (soft * sample_weight).mean(),
        "student_loss": (hard * sample_weight).mean(),
        "teacher_agreement": np.average(
            logits.argmax(axis=1) == teacher_logits.argmax(axis=1),
            weights=sample_weight,
        ),
    }
    assert expected["distillation_loss"] > 1e-3  # a check that can fail
    assert_first_epoch(history, expected)


def _two_epochs(teacher, temperature, metrics=None, **data):
    """A linear student distilled for two epochs with SGD(0.3) and alpha 0.2.

    Returns its weights and the history.
    """
    distiller = kdkeras.Distiller(student=_linear(3), teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.3),
        alpha=0.2,
        temperature=temperature,
        metrics=metrics,
        jit_compile=False,
    )
    history = distiller.fit(epochs=2, verbose=0, **data)
    return distiller.student.get_weights(), history.history


def test_all_but_one_class_trains_as_full_logits():
    """K = classes - 1 loses nothing: the same weights and history as
    training on the full logits, over several steps."""
    x, y = _data(60)
    teacher = _teacher()
    teacher_logits = _teacher_logits(teacher, x)
    top_k = top_k_target_dict(
        *top_k_targets(teacher_logits, CLASSES - 1, 4.0), 4.0, labels=y
    )
    full = {"labels": y, "teacher_logits": teacher_logits}
    (full_weights, full_history), (top_weights, top_history) = (
        _two_epochs(
            teacher, 4.0, ["accuracy"], x=x, y=targets, batch_size=16, shuffle=False
        )
        for targets in (full, top_k)
    )
    for a, b in zip(full_weights, top_weights, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert set(full_history) == set(top_history)
    for name, values in full_history.items():
        np.testing.assert_allclose(
            top_history[name], values, rtol=1e-5, atol=1e-7, err_msg=name
        )


def test_streamed_top_k_cache_trains_as_its_stored_targets(tmp_path):
    """A top-k shard cache yields top-k batches: training on them equals
    training on the stored (float16) targets given as arrays."""
    x, y = _data(50)
    teacher = _teacher()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    cache = kdkeras.cache_soft_targets(
        teacher,
        data,
        tmp_path / "targets",
        top_k=3,
        temperature=2.0,
        examples_per_shard=20,
    )
    assert cache.storage == "shards"
    stored = cache.shards.stored(np.arange(len(x)))
    targets = top_k_target_dict(
        stored["values"], stored["indices"], stored["tail"], 2.0, labels=y
    )
    feeds = {
        "stream": dict(
            x=kdkeras.soft_target_dataset(cache, batch_size=10, shuffle=False)
        ),
        "arrays": dict(x=x, y=targets, batch_size=10, shuffle=False),
    }
    results = {name: _two_epochs(teacher, 2.0, **feed) for name, feed in feeds.items()}
    for a, b in zip(results["arrays"][0], results["stream"][0], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    for name, values in results["arrays"][1].items():
        assert np.all(np.isfinite(values)), name
        np.testing.assert_allclose(
            results["stream"][1][name], values, rtol=1e-6, err_msg=name
        )


def _top_k_batch(temperature=2.0, examples=16):
    x, y = _data(examples)
    logits = _teacher_logits(_teacher(), x)
    return x, top_k_target_dict(
        *top_k_targets(logits, 2, temperature), temperature, labels=y
    )


def _compiled(temperature=2.0, loss=None):
    distiller = kdkeras.Distiller(student=_linear(1), teacher=_teacher())
    own = isinstance(loss, kdkeras.losses.LogitsDistillationLoss)
    distiller.compile(
        optimizer="sgd",
        alpha=0.1,
        distillation_loss_fn=loss,
        temperature=None if own else temperature,
        jit_compile=False,
    )
    return distiller


@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_another_temperature_than_the_targets_is_refused(method):
    x, targets = _top_k_batch(temperature=2.0)
    distiller = _compiled(temperature=4.0)
    with pytest.raises(ValueError, match="`temperature` must equal") as raised:
        getattr(distiller, method)(x, targets, verbose=0)
    assert "\n" not in str(raised.value)
    assert "2.0" in str(raised.value) and "temperature=4.0" in str(raised.value)
    # From a dataset the values are seen in the graph only: checked there.
    dataset = tf.data.Dataset.from_tensor_slices((x, targets)).batch(8)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="`temperature` must equal"
    ):
        getattr(distiller, method)(dataset, verbose=0)


@pytest.mark.parametrize(
    "loss",
    [
        kdkeras.losses.DKD(temperature=2.0),
        kdkeras.losses.DIST(temperature=2.0),
        keras.losses.KLDivergence(),
    ],
)
def test_losses_that_need_every_logit_are_refused(loss):
    x, targets = _top_k_batch()
    distiller = _compiled(loss=loss)
    dataset = tf.data.Dataset.from_tensor_slices((x, targets)).batch(8)
    for arguments in ((x, targets), (dataset,)):
        with pytest.raises(ValueError, match="`distillation_loss_fn`") as raised:
            distiller.fit(*arguments, verbose=0)
        assert "\n" not in str(raised.value)


def test_knowledge_distillation_loss_trains_on_top_k_like_the_default():
    x, targets = _top_k_batch()
    weights = []
    for loss in (None, kdkeras.losses.KnowledgeDistillation(temperature=2.0)):
        distiller = _compiled(loss=loss)
        distiller.fit(x, targets, batch_size=8, shuffle=False, verbose=0)
        weights.append(distiller.student.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-6)


@pytest.mark.parametrize(
    "drop",
    [
        TEACHER_TOP_K_VALUES_KEY,
        TEACHER_TOP_K_INDICES_KEY,
    ],
)
def test_incomplete_top_k_targets_are_refused(drop):
    x, targets = _top_k_batch()
    del targets[drop]
    with pytest.raises(ValueError, match="`y` must hold all of the top-k keys"):
        _compiled().fit(x, targets, verbose=0)
