"""The soft-target loss of Hinton et al. (2015) on full teacher logits.

`T² · KL(softmax(teacher_logits / T) ‖ softmax(student_logits / T))`,
computed from log-softmax: per example, as a batch mean, and as the Keras loss
`KnowledgeDistillation`.
"""

import keras
from keras import ops

from kdkeras.losses.loss import LogitsDistillationLoss
from kdkeras.losses.loss import check_temperature
from kdkeras.losses.loss import float_logits


def kd_loss_per_example(teacher_logits, student_logits, temperature):
    """Per-example soft-target loss `T² · KL(softmax(t/T) ‖ softmax(s/T))`.

    Computed from log-softmax, so large logits stay finite (no `log(0)`).

    Args:
        teacher_logits: Tensor `(batch, classes)` of teacher logits.
        student_logits: Tensor `(batch, classes)` of student logits.
        temperature: The softmax temperature `T` (`check_temperature`).

    Returns:
        Tensor `(batch,)` in the student logits' dtype (at least float32).
    """
    temperature = check_temperature(temperature)
    # Mixed precision: the softmax/KL is computed in float32.
    teacher_logits, student_logits = float_logits(teacher_logits, student_logits)
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
        temperature: The softmax temperature `T` (`check_temperature`).

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
    return ops.mean(kd_loss_per_example(teacher_logits, student_logits, temperature))


@keras.saving.register_keras_serializable(package="kdkeras")
class KnowledgeDistillation(LogitsDistillationLoss):
    """`kd_loss` as a Keras `Loss`: `y_true` are teacher logits.

    Args:
        temperature: The softmax temperature `T` (`check_temperature`).
        name: Name of the loss.

    Example:

    >>> import numpy as np
    >>> loss = KnowledgeDistillation(temperature=2.0)
    >>> teacher_logits = np.array([[1.0, 2.0, 3.0]], "float32")
    >>> round(float(loss(teacher_logits, teacher_logits[:, ::-1])), 4)
    1.2806
    """

    def __init__(self, temperature=3.0, name="knowledge_distillation"):
        super().__init__(temperature=temperature, name=name)

    def per_example(self, teacher_logits, student_logits, labels=None):
        return kd_loss_per_example(teacher_logits, student_logits, self.temperature)
