"""Distillation losses: soft-target (Hinton et al. 2015) and hint (FitNets) losses.

All functions take logits, not probabilities, and are written with `keras.ops`
so they run inside Keras 3 models, `tf_keras` models (TFMOT) and plain
`tf.function`s alike on the TensorFlow backend.
"""

import numbers

import keras
from keras import ops


def _check_temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(
        temperature, numbers.Real
    ):
        raise TypeError(
            "`temperature` must be a positive number. "
            f"Received: temperature={temperature!r}"
        )
    if not temperature > 0:
        raise ValueError(
            "`temperature` must be > 0. " f"Received: temperature={temperature}"
        )
    return float(temperature)


def kd_loss_per_example(teacher_logits, student_logits, temperature):
    """Per-example soft-target loss `T² · KL(softmax(t/T) ‖ softmax(s/T))`.

    Computed from log-softmax, so large logits stay finite (no `log(0)`).

    Args:
        teacher_logits: Tensor `(batch, classes)` of teacher logits.
        student_logits: Tensor `(batch, classes)` of student logits.
        temperature: Positive float, the softmax temperature `T`.

    Returns:
        Tensor `(batch,)` in the student logits' dtype (at least float32).
    """
    temperature = _check_temperature(temperature)
    student_logits = ops.convert_to_tensor(student_logits)
    dtype = student_logits.dtype
    if dtype in ("float16", "bfloat16"):
        # Mixed precision: the softmax/KL is computed in float32.
        dtype = "float32"
    student_logits = ops.cast(student_logits, dtype)
    teacher_logits = ops.cast(
        ops.stop_gradient(ops.convert_to_tensor(teacher_logits)), dtype
    )
    teacher_log_probs = ops.log_softmax(teacher_logits / temperature, axis=-1)
    student_log_probs = ops.log_softmax(student_logits / temperature, axis=-1)
    teacher_probs = ops.exp(teacher_log_probs)
    kl = ops.sum(teacher_probs * (teacher_log_probs - student_log_probs), -1)
    return (temperature**2) * kl


def kd_loss(teacher_logits, student_logits, temperature):
    """Soft-target distillation loss, mean over the batch.

    `T² · KL(softmax(teacher_logits / T) ‖ softmax(student_logits / T))`.
    The `T²` factor keeps the gradient's scale as `T` changes: the gradient
    with respect to the student logits is `T · (q − p) / batch`, where `p`
    and `q` are the teacher's and student's softened probabilities.

    Args:
        teacher_logits: Tensor `(batch, classes)` of teacher logits.
        student_logits: Tensor `(batch, classes)` of student logits.
        temperature: Positive float, the softmax temperature `T`.

    Returns:
        Scalar tensor.

    Example:

    >>> import numpy as np
    >>> teacher_logits = np.array([[2.0, 0.5, -1.0]], "float32")
    >>> float(kd_loss(teacher_logits, teacher_logits, temperature=4.0))
    0.0
    >>> round(float(kd_loss(teacher_logits, -teacher_logits, 4.0)), 4)
    2.9318
    """
    return ops.mean(
        kd_loss_per_example(teacher_logits, student_logits, temperature)
    )


@keras.saving.register_keras_serializable(package="kdkeras")
class KnowledgeDistillation(keras.losses.Loss):
    """`kd_loss` as a Keras `Loss`: `y_true` are teacher logits.

    Args:
        temperature: Positive float, the softmax temperature `T`.
        reduction: Keras reduction (default `"sum_over_batch_size"`).
        name: Name of the loss.

    Example:

    >>> import numpy as np
    >>> loss = KnowledgeDistillation(temperature=2.0)
    >>> teacher_logits = np.array([[1.0, 2.0, 3.0]], "float32")
    >>> round(float(loss(teacher_logits, teacher_logits[:, ::-1])), 4)
    1.2806
    """

    def __init__(
        self,
        temperature=3.0,
        reduction="sum_over_batch_size",
        name="knowledge_distillation",
    ):
        super().__init__(reduction=reduction, name=name)
        self.temperature = _check_temperature(temperature)

    def call(self, y_true, y_pred):
        return kd_loss_per_example(y_true, y_pred, self.temperature)

    def get_config(self):
        config = super().get_config()
        config["temperature"] = self.temperature
        return config


def hint_loss_per_example(teacher_features, student_features):
    """Per-example FitNets hint loss: mean squared error over feature axes.

    Args:
        teacher_features: Tensor `(batch, ...)`, the teacher's hint layer.
        student_features: Tensor of the same shape (after any projection).

    Returns:
        Tensor `(batch,)`.
    """
    student_features = ops.convert_to_tensor(student_features)
    teacher_features = ops.cast(
        ops.stop_gradient(ops.convert_to_tensor(teacher_features)),
        student_features.dtype,
    )
    squared_error = ops.square(student_features - teacher_features)
    batch = ops.shape(squared_error)[0]
    return ops.mean(ops.reshape(squared_error, (batch, -1)), axis=-1)


def hint_loss(teacher_features, student_features):
    """FitNets hint loss (mean squared error), mean over the batch.

    Example:

    >>> import numpy as np
    >>> teacher_features = np.array([[1.0, 2.0]], "float32")
    >>> float(hint_loss(teacher_features, teacher_features + 1.0))
    1.0
    """
    return ops.mean(hint_loss_per_example(teacher_features, student_features))
