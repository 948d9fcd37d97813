"""Decoupled knowledge distillation (DKD, Zhao et al. 2022).

The soft-target loss split into a target-class term (TCKD) and a
non-target-class term (NCKD), each with its own weight.
"""

import keras
from keras import ops

from kdkeras.losses.loss import LogitsDistillationLoss
from kdkeras.losses.loss import check_temperature
from kdkeras.losses.loss import check_weight
from kdkeras.losses.loss import float_logits

# Added to the target class's logit to remove it from a softmax: its
# probability underflows to exactly 0 in float32 (exp(-200) < 1e-45).
_EXCLUDED_LOGIT_OFFSET = 200.0


def _target_classes(teacher_logits, labels):
    """`labels` where labelled (>= 0), else the teacher's top-1 class."""
    teacher_classes = ops.argmax(teacher_logits, axis=-1)
    if labels is None:
        return teacher_classes
    labels = ops.cast(ops.reshape(labels, (-1,)), teacher_classes.dtype)
    return ops.where(labels >= 0, labels, teacher_classes)


def dkd_loss_per_example(
    teacher_logits, student_logits, labels=None, alpha=1.0, beta=8.0, temperature=4.0
):
    """Per-example decoupled KD loss (DKD, Zhao et al. 2022).

    `T² · (alpha · TCKD + beta · NCKD)`: TCKD is the KL between the teacher's
    and the student's binary distributions (target class, all others) and
    NCKD the KL between their distributions over the non-target classes,
    all at temperature `T`, as in mdistiller's `dkd_loss` (without its
    warm-up schedule). Computed from log-softmax, so it stays finite for
    any finite logits.

    Args:
        teacher_logits: `(batch, classes)` teacher logits.
        student_logits: `(batch, classes)` student logits.
        labels: `(batch,)` integer target classes; `-1` (unlabelled) or
            `None` uses the teacher's top-1 class as the target.
        alpha: Weight of TCKD (finite, >= 0).
        beta: Weight of NCKD (finite, >= 0).
        temperature: Softmax temperature `T` (`check_temperature`).

    Returns:
        Tensor `(batch,)`.
    """
    alpha = check_weight(alpha, "alpha")
    beta = check_weight(beta, "beta")
    temperature = check_temperature(temperature)
    teacher_logits, student_logits = float_logits(teacher_logits, student_logits)
    targets = _target_classes(teacher_logits, labels)
    classes = ops.shape(student_logits)[-1]
    target_mask = ops.one_hot(targets, classes, dtype=student_logits.dtype)

    def log_parts(logits):
        logits = logits / temperature
        log_all = ops.logsumexp(logits, axis=-1)
        log_target = ops.sum(logits * target_mask, axis=-1) - log_all
        # The target's logit pushed far below every other: a softmax over
        # the non-target classes, and its log-normaliser.
        pushed = logits - target_mask * (
            ops.max(logits, axis=-1, keepdims=True)
            - ops.min(logits, axis=-1, keepdims=True)
            + _EXCLUDED_LOGIT_OFFSET
        )
        log_others = ops.log_softmax(pushed, axis=-1)
        log_rest = ops.logsumexp(pushed, axis=-1) - log_all
        return log_target, log_rest, log_others

    t_target, t_rest, t_others = log_parts(teacher_logits)
    s_target, s_rest, s_others = log_parts(student_logits)
    tckd = ops.exp(t_target) * (t_target - s_target) + ops.exp(t_rest) * (
        t_rest - s_rest
    )
    non_target = 1.0 - target_mask
    nckd = ops.sum(non_target * ops.exp(t_others) * (t_others - s_others), axis=-1)
    return temperature**2 * (alpha * tckd + beta * nckd)


def dkd_loss(
    teacher_logits, student_logits, labels=None, alpha=1.0, beta=8.0, temperature=4.0
):
    """Decoupled KD loss (DKD, Zhao et al. 2022), mean over the batch.

    See `dkd_loss_per_example`.

    Example:

    >>> import numpy as np
    >>> teacher_logits = np.array([[3.0, 1.0, 0.0, -1.0]], "float32")
    >>> float(dkd_loss(teacher_logits, teacher_logits, labels=[0]))
    0.0
    >>> round(float(dkd_loss(teacher_logits, teacher_logits[:, ::-1], [0])), 4)
    19.9299
    """
    return ops.mean(
        dkd_loss_per_example(
            teacher_logits, student_logits, labels, alpha, beta, temperature
        )
    )


@keras.saving.register_keras_serializable(package="kdkeras")
class DKD(LogitsDistillationLoss):
    """Decoupled knowledge distillation (Zhao et al. 2022) as a Keras loss.

    Given to the `Distiller` as `distillation_loss_fn`, it receives the
    batch's labels as target classes (an unlabelled example, `-1` or an
    all-zero one-hot row, uses the teacher's top-1 class); called alone,
    `loss(teacher_logits, student_logits)` uses the teacher's top-1 class.
    Defaults are mdistiller's CIFAR-100 settings. NaN or inf teacher logits
    give a NaN loss; the `Distiller` refuses them.

    Args:
        alpha: Weight of the target-class term TCKD (finite, >= 0).
        beta: Weight of the non-target-class term NCKD (finite, >= 0).
        temperature: Softmax temperature `T` (`check_temperature`).
        name: Name of the loss.

    Example:

    >>> import numpy as np
    >>> teacher_logits = np.array([[3.0, 1.0, 0.0, -1.0]], "float32")
    >>> dkd = DKD(alpha=1.0, beta=8.0, temperature=4.0)
    >>> float(dkd(teacher_logits, teacher_logits))  # a student that agrees
    0.0
    >>> values = dkd.per_example(teacher_logits, teacher_logits[:, ::-1], [0])
    >>> round(float(values[0]), 4)
    19.9299
    """

    def __init__(self, alpha=1.0, beta=8.0, temperature=4.0, name="dkd"):
        super().__init__(temperature=temperature, name=name, alpha=alpha, beta=beta)

    def per_example(self, teacher_logits, student_logits, labels=None):
        return dkd_loss_per_example(
            teacher_logits,
            student_logits,
            labels,
            self.alpha,
            self.beta,
            self.temperature,
        )
