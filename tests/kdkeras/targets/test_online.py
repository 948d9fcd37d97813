"""Tests for kdkeras/targets/online.py: the teacher in the input pipeline."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdkeras
from kdkeras.targets.augmentation import inference_supports_jit
from kdkeras.targets.batch import LABELS_KEY
from kdkeras.targets.batch import TEACHER_LOGITS_KEY
from kdkeras.targets.online import online_soft_target_dataset
from tests import reference
from tests.kdkeras.targets.targets_setup import CLASSES
from tests.kdkeras.targets.targets_setup import FEATURES
from tests.kdkeras.targets.targets_setup import dense_model

pytestmark = pytest.mark.usefixtures("deterministic")


def labelled_data(count=45, seed=0):
    """Random inputs whose first feature is the example's index (to find it)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, FEATURES)).astype("float32")
    x[:, 0] = np.arange(count)
    return x, rng.integers(0, CLASSES, count)


def assert_one_batch_of_predictions(dataset, teacher, x):
    """`dataset` is one batch whose targets are `teacher.predict(x)`."""
    ((_, targets),) = list(dataset)
    np.testing.assert_allclose(
        targets[TEACHER_LOGITS_KEY].numpy(),
        teacher.predict(x, verbose=0),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("jit_compile", [True, False])
@pytest.mark.parametrize("with_weights", [True, False])
def test_every_example_gets_the_teachers_logits_for_its_own_input(
    shuffle, jit_compile, with_weights
):
    x, y = labelled_data()
    weights = np.linspace(0.5, 2.0, len(x)).astype("float32")
    teacher = dense_model(1)
    dataset = online_soft_target_dataset(
        x,
        y,
        teacher,
        batch_size=8,
        shuffle=shuffle,
        seed=3,
        sample_weight=weights if with_weights else None,
        jit_compile=jit_compile,
    )
    seen = []
    for element in dataset:
        batch_x, targets = element[0].numpy(), element[1]
        index = batch_x[:, 0].astype(int)
        seen.extend(index)
        np.testing.assert_array_equal(batch_x, x[index])
        np.testing.assert_array_equal(targets[LABELS_KEY].numpy(), y[index])
        np.testing.assert_allclose(
            targets[TEACHER_LOGITS_KEY].numpy(),
            reference.dense_relu_logits(teacher, x[index]),
            rtol=1e-5,
            atol=1e-5,
        )
        if with_weights:
            np.testing.assert_array_equal(element[2].numpy(), weights[index])
    assert sorted(seen) == list(range(len(x)))
    assert (seen != list(range(len(x)))) == shuffle


def test_reshuffles_every_epoch_and_repeats_with_the_seed():
    x, y = labelled_data()
    teacher = dense_model(1)

    def order(dataset):
        return [int(i) for b, _ in dataset for i in b.numpy()[:, 0]]

    dataset = online_soft_target_dataset(x, y, teacher, 8, seed=5)
    first, second = order(dataset), order(dataset)
    assert first != second
    again = online_soft_target_dataset(x, y, teacher, 8, seed=5)
    assert order(again) == first


def test_softmax_teacher_is_read_through_its_logits():
    x, y = labelled_data()
    teacher = dense_model(2, softmax=True)
    dataset = online_soft_target_dataset(x, y, teacher, 64, shuffle=False)
    ((_, targets),) = list(dataset)
    np.testing.assert_allclose(
        targets[TEACHER_LOGITS_KEY].numpy(),
        reference.dense_relu_logits(teacher, x),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("kind", ["layer", "callable"])
def test_augmented_batch_is_what_teacher_and_student_both_see(kind):
    x, y = labelled_data()
    teacher = dense_model(1)
    if kind == "layer":
        augmentation = keras.layers.GaussianNoise(0.5, seed=0)
    else:

        def augmentation(images):
            scale = tf.random.uniform((tf.shape(images)[0], 1), 0.5, 1.5)
            return images * scale

    dataset = online_soft_target_dataset(
        x, y, teacher, 16, shuffle=False, augmentation=augmentation
    )
    for start, (batch_x, targets) in zip(range(0, len(x), 16), dataset, strict=True):
        batch_x = batch_x.numpy()
        assert not np.allclose(batch_x, x[start : start + 16])  # augmented
        np.testing.assert_allclose(
            targets[TEACHER_LOGITS_KEY].numpy(),
            reference.dense_relu_logits(teacher, batch_x),
            rtol=1e-5,
            atol=1e-5,
        )


def test_teacher_augmentation_layers_do_not_veto_xla_or_change_logits():
    x, y = labelled_data()
    teacher = dense_model(1, augment=True)
    assert inference_supports_jit(teacher)
    dataset = online_soft_target_dataset(x, y, teacher, 64, shuffle=False)
    assert_one_batch_of_predictions(dataset, teacher, x)


@pytest.mark.parametrize("alpha,temperature", [(0.1, 4.0), (0.5, 20.0)])
def test_training_matches_the_teacher_inside_the_step(alpha, temperature):
    """Same batches, same loss: the pipeline only moves where the teacher runs."""
    x, y = labelled_data(count=40)

    def train(feed):
        teacher, student = dense_model(1, hidden=16), dense_model(2)
        distiller = kdkeras.Distiller(student=student, teacher=teacher)
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.1),
            alpha=alpha,
            temperature=temperature,
            jit_compile=False,
        )
        history = feed(distiller, teacher)
        return student.get_weights(), history.history

    weights_in_step, history_in_step = train(
        lambda d, t: d.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    )
    weights_pipeline, history_pipeline = train(
        lambda d, t: d.fit(
            online_soft_target_dataset(x, y, t, 8, shuffle=False, jit_compile=False),
            epochs=2,
            verbose=0,
        )
    )
    for expected, actual in zip(weights_in_step, weights_pipeline, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    for name in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(
            history_pipeline[name], history_in_step[name], rtol=1e-5
        )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"teacher": "teacher"}, "`teacher` must be a keras.Model"),
        ({"batch_size": 0}, "`batch_size` must be a positive int"),
        ({"y": np.zeros(3)}, "`y` must have one row per example of `x` (45)"),
        ({"sample_weight": np.ones(2)}, "`sample_weight` must have one row"),
        ({"augmentation": 3}, "`augmentation` must be None, a keras layer"),
        ({"x": [[0.0] * FEATURES]}, "`x` must be a NumPy array"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(kwargs, message):
    x, y = labelled_data()
    arguments = {"x": x, "y": y, "teacher": dense_model(1)}
    arguments.update(kwargs)
    with pytest.raises(ValueError) as raised:
        online_soft_target_dataset(**arguments)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("convolutional, expected_jit", [(True, False), (False, True)])
def test_auto_jit_leaves_a_convolutional_teacher_to_tf_on_cpu(
    monkeypatch, convolutional, expected_jit
):
    """On CPU, XLA convolutions are slower: "auto" compiles only a dense teacher."""
    from tensorflow.python.framework import config

    config.disable_op_determinism()  # which would turn XLA off for both
    compiled = []
    original = tf.function

    def recording_function(*args, **kwargs):
        compiled.append(kwargs.get("jit_compile"))
        return original(*args, **kwargs)

    x, y = labelled_data()
    keras.utils.set_random_seed(0)
    middle = (
        [
            keras.layers.Reshape((FEATURES, 1)),
            keras.layers.Conv1D(4, 3, padding="same"),
            keras.layers.Flatten(),
        ]
        if convolutional
        else [keras.layers.Dense(4, activation="relu")]
    )
    teacher = keras.Sequential(
        [keras.Input((FEATURES,)), *middle, keras.layers.Dense(CLASSES)]
    )
    monkeypatch.setattr(tf, "function", recording_function)
    dataset = online_soft_target_dataset(x, y, teacher, 64, shuffle=False)
    monkeypatch.undo()
    assert compiled[0] is expected_jit
    assert_one_batch_of_predictions(dataset, teacher, x)
