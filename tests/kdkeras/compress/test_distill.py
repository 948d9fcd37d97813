import numpy as np
import pytest
import tf_keras

from kdkeras import losses
from kdkeras.compress import distill
from tests import reference

ALPHA, TEMPERATURE, LEARNING_RATE = 0.3, 4.0, 0.5


def _linear_student(seed):
    rng = np.random.default_rng(seed)
    student = tf_keras.Sequential([tf_keras.Input((6,)), tf_keras.layers.Dense(4)])
    kernel = rng.normal(size=(6, 4)).astype("float32")
    bias = rng.normal(size=(4,)).astype("float32")
    student.layers[0].set_weights([kernel, bias])
    return student, kernel.astype("float64"), bias.astype("float64")


def _batch(seed, size=8):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(size, 6)).astype("float32")
    labels = rng.integers(0, 4, size=size).astype("int32")
    teacher_logits = (3.0 * rng.normal(size=(size, 4))).astype("float32")
    return x, labels, teacher_logits


@pytest.mark.parametrize("alpha", [0.0, ALPHA, 1.0])
def test_one_step_matches_float64_loss_and_gradient(alpha):
    student, kernel, bias = _linear_student(seed=0)
    x, labels, teacher_logits = _batch(seed=1)
    distiller = distill.TfKerasDistiller(student, temperature=TEMPERATURE, alpha=alpha)
    distiller.compile(optimizer=tf_keras.optimizers.SGD(LEARNING_RATE))
    logs = distiller.train_on_batch(
        x, {"labels": labels, "teacher_logits": teacher_logits}, return_dict=True
    )

    logits = x.astype("float64") @ kernel + bias
    student_loss = reference.sparse_cross_entropy_per_example(labels, logits)
    distillation = reference.kd_loss_per_example(teacher_logits, logits, TEMPERATURE)
    expected = alpha * student_loss.mean() + (1 - alpha) * distillation.mean()
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(logs["student_loss"], student_loss.mean(), rtol=1e-5)
    np.testing.assert_allclose(
        logs["distillation_loss"], distillation.mean(), rtol=1e-5, atol=1e-6
    )

    probabilities = np.exp(reference.log_softmax(logits))
    one_hot = np.eye(4)[labels]
    gradient_logits = alpha * (probabilities - one_hot) / len(x) + (
        1 - alpha
    ) * reference.kd_loss_gradient(teacher_logits, logits, TEMPERATURE)
    new_kernel, new_bias = student.layers[0].get_weights()
    np.testing.assert_allclose(
        new_kernel, kernel - LEARNING_RATE * x.T @ gradient_logits, atol=1e-5
    )
    np.testing.assert_allclose(
        new_bias, bias - LEARNING_RATE * gradient_logits.sum(0), atol=1e-5
    )


def test_sample_weights_scale_examples_over_the_batch_size():
    student, kernel, bias = _linear_student(seed=2)
    x, labels, teacher_logits = _batch(seed=3)
    weights = np.random.default_rng(4).uniform(0, 2, size=len(x)).astype("float32")
    distiller = distill.TfKerasDistiller(student, TEMPERATURE, ALPHA)
    distiller.compile(optimizer=tf_keras.optimizers.SGD(0.0))
    logs = distiller.train_on_batch(
        x,
        {"labels": labels, "teacher_logits": teacher_logits},
        sample_weight=weights,
        return_dict=True,
    )
    logits = x.astype("float64") @ kernel + bias
    per_example = ALPHA * reference.sparse_cross_entropy_per_example(labels, logits) + (
        1 - ALPHA
    ) * reference.kd_loss_per_example(teacher_logits, logits, TEMPERATURE)
    # Keras' "sum_over_batch_size", as kdkeras.Distiller reduces.
    expected = (per_example * weights).sum() / len(x)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(
        logs["distillation_loss"],
        losses.KnowledgeDistillation(TEMPERATURE)(
            teacher_logits, logits.astype("float32"), sample_weight=weights
        ),
        rtol=1e-5,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distillation_loss_is_kdkeras_kd_loss_on_float64(seed):
    rng = np.random.default_rng(seed)
    teacher_logits = 5.0 * rng.normal(size=(16, 10))
    logits = 5.0 * rng.normal(size=(16, 10))
    labels = rng.integers(0, 10, size=16)
    distiller = distill.TfKerasDistiller(
        tf_keras.Sequential([tf_keras.Input((10,))]), TEMPERATURE, ALPHA
    )
    parts = distiller.loss_parts(labels, teacher_logits, logits)
    assert parts["distillation_loss"].dtype == "float64"
    np.testing.assert_allclose(
        parts["distillation_loss"],
        losses.kd_loss(teacher_logits, logits, TEMPERATURE),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        parts["distillation_loss"],
        reference.kd_loss_per_example(teacher_logits, logits, TEMPERATURE).mean(),
        rtol=1e-10,
    )


def test_soft_targets_runs_the_teacher_or_checks_given_logits():
    teacher, _, _ = _linear_student(seed=5)
    x, _, _ = _batch(seed=6, size=10)
    np.testing.assert_allclose(
        distill.soft_targets(teacher, x), teacher(x).numpy(), rtol=1e-6
    )
    with pytest.raises(ValueError, match="exactly one of `teacher`"):
        distill.soft_targets(teacher, x, np.zeros((10, 4)))
    with pytest.raises(ValueError, match="exactly one of `teacher`"):
        distill.soft_targets(None, x)
    with pytest.raises(ValueError, match=r"`teacher_logits` must have shape \(10"):
        distill.soft_targets(None, x, np.zeros((9, 4)))


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        ({"epochs": 0}, ValueError, "`epochs` must be >= 1"),
        ({"batch_size": 2.5}, TypeError, "`batch_size` must be an int"),
        ({"alpha": 1.5}, ValueError, r"`alpha` must be in \[0, 1\]"),
        (
            {"temperature": 0.0},
            ValueError,
            r"`temperature` must be a finite number in \[0.05, 100.0\]",
        ),
    ],
)
def test_fit_distilling_rejects_bad_arguments(arguments, error, message):
    student, _, _ = _linear_student(seed=7)
    x, labels, teacher_logits = _batch(seed=8)
    with pytest.raises(error, match=message):
        distill.fit_distilling(student, x, labels, teacher_logits, **arguments)


def test_fit_distilling_rejects_mismatched_labels():
    student, _, _ = _linear_student(seed=9)
    x, labels, teacher_logits = _batch(seed=10)
    with pytest.raises(ValueError, match=r"`y` must be integer labels of shape \(8,\)"):
        distill.fit_distilling(student, x, labels[:5], teacher_logits)
