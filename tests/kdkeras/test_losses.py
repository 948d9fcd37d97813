import numpy as np
import pytest
import tensorflow as tf

from kdkeras import losses
from tests import reference

TEMPERATURES = [1.0, 2.0, 4.0, 8.0, 20.0]
SCALES = [0.1, 3.0, 30.0]


def _logits(seed, scale, shape=(16, 10)):
    rng = np.random.default_rng(seed)
    return (
        (rng.normal(size=shape) * scale).astype("float32"),
        (rng.normal(size=shape) * scale).astype("float32"),
    )


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("scale", SCALES)
def test_kd_loss_value_matches_float64_reference(temperature, scale):
    teacher_logits, student_logits = _logits(int(temperature * 7 + scale), scale)
    expected = reference.kd_loss_per_example(
        teacher_logits, student_logits, temperature
    ).mean()
    value = float(losses.kd_loss(teacher_logits, student_logits, temperature))
    # The KL of nearly equal float32 distributions is a difference of
    # log-probabilities: its absolute error is ~1e-7 before the T² factor.
    np.testing.assert_allclose(
        value, expected, rtol=2e-5, atol=1e-7 * temperature**2
    )


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("scale", SCALES)
def test_kd_loss_gradient_is_temperature_times_q_minus_p(temperature, scale):
    teacher_logits, student_logits = _logits(int(temperature * 11 + scale), scale)
    student = tf.Variable(student_logits)
    with tf.GradientTape() as tape:
        value = losses.kd_loss(teacher_logits, student, temperature)
    gradient = tape.gradient(value, student).numpy()
    expected = reference.kd_loss_gradient(
        teacher_logits, student_logits, temperature
    )
    np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-7)


def test_kd_loss_gives_no_gradient_to_teacher():
    teacher_logits, student_logits = _logits(0, 3.0)
    teacher = tf.Variable(teacher_logits)
    with tf.GradientTape() as tape:
        value = losses.kd_loss(teacher, student_logits, 4.0)
    assert tape.gradient(value, teacher) is None


def test_kd_loss_stays_finite_for_huge_logits():
    teacher_logits = np.array([[1e4, -1e4, 0.0]], "float32")
    student_logits = np.array([[-1e4, 1e4, 0.0]], "float32")
    value = float(losses.kd_loss(teacher_logits, student_logits, 1.0))
    expected = reference.kd_loss_per_example(
        teacher_logits, student_logits, 1.0
    ).mean()
    assert np.isfinite(value)
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_kd_loss_is_zero_for_identical_logits_and_positive_otherwise():
    teacher_logits, student_logits = _logits(3, 3.0)
    assert float(losses.kd_loss(teacher_logits, teacher_logits, 4.0)) == 0.0
    assert float(losses.kd_loss(teacher_logits, student_logits, 4.0)) > 0.0


def test_knowledge_distillation_loss_object_matches_function():
    teacher_logits, student_logits = _logits(5, 3.0)
    loss = losses.KnowledgeDistillation(temperature=4.0)
    np.testing.assert_allclose(
        float(loss(teacher_logits, student_logits)),
        float(losses.kd_loss(teacher_logits, student_logits, 4.0)),
        rtol=1e-6,
    )
    restored = losses.KnowledgeDistillation.from_config(loss.get_config())
    assert restored.temperature == 4.0


def test_keras_distillation_default_skips_softmax_and_t_squared():
    """The built-in's default is not the paper's loss; kdkeras' is."""
    import keras

    teacher_logits, student_logits = _logits(8, 3.0, shape=(8, 10))
    expected = reference.kd_loss_per_example(
        teacher_logits, student_logits, 4.0
    ).mean()
    builtin = keras.distillation.LogitsDistillation(temperature=4.0)
    builtin_value = float(
        builtin.compute_loss(teacher_logits, student_logits)
    )
    ours = float(losses.kd_loss(teacher_logits, student_logits, 4.0))
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    assert abs(builtin_value - expected) > 0.5 * expected


@pytest.mark.parametrize(
    "temperature, error",
    [(0.0, ValueError), (-1.0, ValueError), ("4", TypeError), (None, TypeError),
     (True, TypeError)],
)
def test_bad_temperature_names_the_argument(temperature, error):
    logits = np.ones((2, 3), "float32")
    with pytest.raises(error, match="temperature"):
        losses.kd_loss(logits, logits, temperature)


def test_hint_loss_matches_mean_squared_error():
    rng = np.random.default_rng(0)
    teacher_features = rng.normal(size=(4, 3, 3, 2)).astype("float32")
    student_features = rng.normal(size=(4, 3, 3, 2)).astype("float32")
    expected = ((student_features.astype(np.float64) - teacher_features) ** 2)
    expected = expected.reshape(4, -1).mean(axis=1)
    np.testing.assert_allclose(
        losses.hint_loss_per_example(teacher_features, student_features),
        expected,
        rtol=1e-5,
    )
