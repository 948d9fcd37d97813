"""DIST (Huang et al. 2022): distillation by Pearson correlation of relations.

An inter-class term per example (the correlation over the classes of one
example's softened probabilities) and an intra-class term over the batch
(the correlation over the examples of each class's), all-reduced across
replicas under `tf.distribute` (`kdkeras._step.reductions.global_sum`).
"""

import keras
import tensorflow as tf
from keras import ops

from kdkeras._step.reductions import global_sum
from kdkeras.losses.loss import LogitsDistillationLoss
from kdkeras.losses.loss import check_temperature
from kdkeras.losses.loss import check_weight
from kdkeras.losses.loss import float_logits

# DIST's epsilon, added to the product of norms (Huang et al.'s code).
_PEARSON_EPSILON = 1e-8


def _norm(sum_of_squares):
    """`sqrt`, with gradient 0 at 0 (as `torch.norm`'s in DIST's code).

    A constant vector (one example's column at batch size 1, a class whose
    probability underflows to 0 in every example, a uniform softmax) has a
    centred sum of squares of exactly 0, where `sqrt`'s gradient is
    `inf · 0 = NaN` (always under XLA).
    """
    positive = sum_of_squares > 0
    safe = ops.where(positive, sum_of_squares, ops.ones_like(sum_of_squares))
    return ops.where(positive, ops.sqrt(safe), ops.zeros_like(sum_of_squares))


def _centred_correlation(a, b, axis):
    a = a - ops.mean(a, axis=axis, keepdims=True)
    b = b - ops.mean(b, axis=axis, keepdims=True)
    norms = _norm(ops.sum(a * a, axis=axis)) * _norm(ops.sum(b * b, axis=axis))
    return ops.sum(a * b, axis=axis) / (norms + _PEARSON_EPSILON)


def _softened(teacher_logits, student_logits, temperature):
    teacher_logits, student_logits = float_logits(teacher_logits, student_logits)
    return (
        ops.softmax(teacher_logits / temperature, axis=-1),
        ops.softmax(student_logits / temperature, axis=-1),
    )


def dist_inter_class_per_example(teacher_logits, student_logits, temperature):
    """DIST's inter-class relation loss per example: `T² (1 − ρ(p_i, q_i))`.

    `ρ` is the Pearson correlation over the classes of the teacher's and the
    student's softened probabilities `p_i`, `q_i` of one example.

    Returns:
        Tensor `(batch,)`.
    """
    temperature = check_temperature(temperature)
    teacher_probs, student_probs = _softened(
        teacher_logits, student_logits, temperature
    )
    return temperature**2 * (
        1.0 - _centred_correlation(student_probs, teacher_probs, axis=-1)
    )


def dist_intra_class_loss(
    teacher_logits, student_logits, temperature, sample_weight=None
):
    """DIST's intra-class relation loss: `T² (1 − mean_c ρ(p[:, c], q[:, c]))`.

    `ρ` is the Pearson correlation, over the examples of the batch, of one
    class's softened probabilities. It is a property of the batch, not a
    sum over examples: inside a `tf.distribute` replica context it is
    computed over the GLOBAL batch (means, then covariances and variances,
    all-reduced across replicas), so every replica returns the value of the
    single-device step. Its gradient on a replica is the part that flows
    through that replica's examples: summed over the replicas (as
    `tf.distribute` sums gradients) it is the single-device gradient. A
    per-replica loss must therefore count the value once in total but keep
    the whole gradient (the `Distiller` does). With `sample_weight`, means
    and covariances are weighted.

    Returns:
        Scalar tensor.
    """
    temperature = check_temperature(temperature)
    teacher_probs, student_probs = _softened(
        teacher_logits, student_logits, temperature
    )
    if sample_weight is None:
        weight = ops.ones_like(student_probs[:, :1])
    else:
        weight = ops.reshape(ops.cast(sample_weight, student_probs.dtype), (-1, 1))
    # Means over the global batch, held constant: the centred moments'
    # derivative with respect to the means is 0 (centred values sum to 0), so
    # the gradient is exact without differentiating through an all-reduce.
    first = global_sum(
        ops.stop_gradient(
            ops.concatenate(
                [
                    ops.reshape(ops.sum(weight), (1,)),
                    ops.sum(weight * student_probs, axis=0),
                    ops.sum(weight * teacher_probs, axis=0),
                ]
            )
        )
    )
    classes = ops.shape(student_probs)[-1]
    total = first[0]
    student_centred = student_probs - tf.math.divide_no_nan(
        first[1 : 1 + classes], total
    )
    teacher_centred = teacher_probs - tf.math.divide_no_nan(first[1 + classes :], total)
    local = ops.stack(
        [
            ops.sum(weight * student_centred * teacher_centred, axis=0),
            ops.sum(weight * ops.square(student_centred), axis=0),
            ops.sum(weight * ops.square(teacher_centred), axis=0),
        ]
    )
    # The global moments' value, with the gradient of this replica's own
    # examples (the all-reduce runs on constants, after the first one).
    moments = local + ops.stop_gradient(global_sum(local) - local)
    norms = _norm(moments[1]) * _norm(moments[2])
    correlation = moments[0] / (norms + _PEARSON_EPSILON)
    return temperature**2 * (1.0 - ops.mean(correlation))


def dist_loss(teacher_logits, student_logits, beta=1.0, gamma=1.0, temperature=1.0):
    """DIST loss (Huang et al. 2022): inter- plus intra-class relations.

    `beta · mean_i inter_i + gamma · intra`, where `inter_i` is
    `dist_inter_class_per_example` and `intra` `dist_intra_class_loss`, as
    in the authors' `DIST` module.

    Example:

    >>> import numpy as np
    >>> teacher_logits = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]], "float32")
    >>> round(float(dist_loss(teacher_logits, teacher_logits)), 6)
    0.0
    >>> round(float(dist_loss(teacher_logits, -teacher_logits)), 4)
    3.8374
    """
    beta = check_weight(beta, "beta")
    gamma = check_weight(gamma, "gamma")
    inter = ops.mean(
        dist_inter_class_per_example(teacher_logits, student_logits, temperature)
    )
    intra = dist_intra_class_loss(teacher_logits, student_logits, temperature)
    return beta * inter + gamma * intra


@keras.saving.register_keras_serializable(package="kdkeras")
class DIST(LogitsDistillationLoss):
    """DIST (Huang et al. 2022, "Knowledge distillation from a stronger
    teacher") as a Keras loss.

    Its intra-class term is a correlation over the batch, not a sum over
    examples: the `Distiller` adds it once per step, computed over the
    global batch under `tf.distribute` (`dist_intra_class_loss`). It
    therefore depends on the batch size, as in the paper. The correlation
    of a constant vector is 0, as in the authors' code: at batch size 1 the
    intra-class term is the constant `gamma · T²`, with no gradient. NaN or
    inf teacher logits give a NaN loss; the `Distiller` refuses them.

    Args:
        beta: Weight of the inter-class term (finite, >= 0).
        gamma: Weight of the intra-class term (finite, >= 0).
        temperature: Softmax temperature `T` (`check_temperature`).
        name: Name of the loss.

    Example:

    >>> import numpy as np
    >>> loss = DIST(beta=1.0, gamma=1.0, temperature=1.0)
    >>> teacher_logits = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]], "float32")
    >>> round(float(loss(teacher_logits, -teacher_logits)), 4)
    3.8374
    """

    def __init__(self, beta=1.0, gamma=1.0, temperature=1.0, name="dist"):
        super().__init__(temperature=temperature, name=name, beta=beta, gamma=gamma)

    def per_example(self, teacher_logits, student_logits, labels=None):
        return self.beta * dist_inter_class_per_example(
            teacher_logits, student_logits, self.temperature
        )

    def batch_loss(self, teacher_logits, student_logits, sample_weight=None):
        return self.gamma * dist_intra_class_loss(
            teacher_logits, student_logits, self.temperature, sample_weight
        )
