"""Distillation losses on logits: soft targets (Hinton et al. 2015), on full or
on top-k teacher targets, DKD, DIST, and the FitNets hint loss.

All functions take logits, not probabilities, and are written with `keras.ops`
so they run inside Keras 3 models, `tf_keras` models (TFMOT) and plain
`tf.function`s alike on the TensorFlow backend.

A `LogitsDistillationLoss` (`KnowledgeDistillation`, `DKD`, `DIST`) is what the
`Distiller` calls on raw teacher and student logits, with its own temperature;
any other Keras loss given as `distillation_loss_fn` is called as in the
keras.io example, on `softmax(t / T)` and `softmax(s / T)`, times `T²`.
"""

import math
import numbers

import keras
import tensorflow as tf
from keras import ops

#: Lowest accepted softmax temperature. Below it `softmax(z / T)` is one-hot
#: for any logit gap above 1 (`exp(-1 / 0.05) ≈ 2e-9`, under float32's
#: resolution next to 1): the "soft" targets are hard labels.
MIN_TEMPERATURE = 0.05
#: Highest accepted softmax temperature. Above it the soft targets of
#: ordinary logits are uniform to within float32 rounding, and the `T²`-scaled
#: KL is dominated by that rounding (its relative error grows as `T²`).
MAX_TEMPERATURE = 100.0


def check_temperature(temperature, argument="temperature"):
    """Validates a softmax temperature; returns it as a float.

    Args:
        temperature: A finite number in `[MIN_TEMPERATURE, MAX_TEMPERATURE]`.
        argument: The argument's name in the error message.

    Returns:
        `float(temperature)`.

    Example:

    >>> check_temperature(4)
    4.0
    """
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(
            f"`{argument}` must be a number in [{MIN_TEMPERATURE}, "
            f"{MAX_TEMPERATURE}]. Received: {argument}={temperature!r}"
        )
    if not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE:
        raise ValueError(
            f"`{argument}` must be a finite number in [{MIN_TEMPERATURE}, "
            f"{MAX_TEMPERATURE}]. Received: {argument}={temperature}"
        )
    return float(temperature)


def check_weight(value, argument):
    """Validates a loss weight: a finite number >= 0; returns it as a float.

    Example:

    >>> check_weight(8, "beta")
    8.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{argument}` must be a finite number >= 0. Received: {argument}={value!r}"
        )
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(
            f"`{argument}` must be a finite number >= 0. Received: {argument}={value}"
        )
    return float(value)


def _float_logits(teacher_logits, student_logits):
    """Both logits as one float dtype (float32 under mixed precision)."""
    student_logits = ops.convert_to_tensor(student_logits)
    dtype = student_logits.dtype
    if dtype in ("float16", "bfloat16") or "int" in str(dtype):
        dtype = "float32"
    student_logits = ops.cast(student_logits, dtype)
    teacher_logits = ops.cast(
        ops.stop_gradient(ops.convert_to_tensor(teacher_logits)), dtype
    )
    return teacher_logits, student_logits


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
    teacher_logits, student_logits = _float_logits(teacher_logits, student_logits)
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


def _tail_mask(indices, classes):
    """`(batch, classes)` float32 mask, 1 for the classes not in `indices`."""
    batch = ops.shape(indices)[0]
    top_k = ops.shape(indices)[1]
    rows = ops.repeat(ops.arange(batch, dtype="int32"), top_k)
    positions = ops.stack([rows, ops.reshape(indices, (-1,))], axis=1)
    top = ops.scatter(
        positions,
        ops.ones((batch * top_k,), dtype="float32"),
        (batch, classes),
    )
    return 1.0 - ops.minimum(top, 1.0)


def top_k_kd_loss_per_example(values, indices, tail, student_logits, temperature):
    """Per-example soft-target loss on top-k teacher targets (many classes).

    The teacher is known on K classes only (`kdkeras.targets.topk`): their
    logits `values`, their classes `indices`, and `tail`, the log-sum-exp of
    every other class's `logit / T`. Its distribution at `T` is then known
    exactly on K+1 buckets, the K classes and "any other class":
    `p = softmax([values / T, tail])`, the rest's mass `p_rest` kept as it
    is (nothing is renormalised away). The student's buckets are its own
    probabilities of the K classes and its total probability `q_rest` of
    all the others, both at `T`. The loss is

        T² · KL(p_buckets ‖ q_buckets)
          = T² · KL(p ‖ q) − T² · p_rest · KL(p(·|rest) ‖ q(·|rest)),

    the full-logit loss (`kd_loss_per_example`) minus the disagreement
    WITHIN the other classes, which the K stored logits cannot show. With
    K = classes − 1 it is the full-logit loss. Its gradient with respect to
    the student's logits is `T (q_i − p_i)` on the K classes and
    `T (q_j − p_rest · q_j / q_rest)` on the others: the rest's mass is
    matched, its shape left to the student.

    Args:
        values: `(batch, K)` teacher logits of the top-K classes.
        indices: `(batch, K)` int class indices of those logits (distinct).
        tail: `(batch,)` log-sum-exp of the other classes' `logit / T`.
        student_logits: `(batch, classes)` student logits.
        temperature: The temperature `T` `tail` was computed at
            (`check_temperature`).

    Returns:
        float32 tensor `(batch,)`.

    Example:

    >>> import numpy as np
    >>> teacher = np.array([[2.0, 0.5, -1.0, 0.0]], "float32")
    >>> student = np.array([[1.0, 1.0, 0.0, 0.0]], "float32")
    >>> tail = np.array([-0.5], "float32")  # the rest at T = 2: -1.0 / 2
    >>> loss = top_k_kd_loss_per_example(
    ...     teacher[:, [0, 1, 3]], [[0, 1, 3]], tail, student, 2.0)
    >>> full = kd_loss_per_example(teacher, student, 2.0)  # K = classes - 1
    >>> bool(np.isclose(loss[0], full[0], rtol=1e-5))
    True
    """
    temperature = check_temperature(temperature)
    values = ops.cast(ops.stop_gradient(values), "float32")
    indices = ops.cast(ops.stop_gradient(indices), "int32")
    tail = ops.cast(ops.stop_gradient(tail), "float32")
    student = ops.cast(student_logits, "float32") / temperature
    classes = ops.shape(student)[-1]

    teacher_buckets = ops.concatenate(
        [values / temperature, ops.expand_dims(tail, -1)], axis=-1
    )
    log_p = ops.log_softmax(teacher_buckets, axis=-1)

    student_total = ops.logsumexp(student, axis=-1, keepdims=True)
    student_top = ops.take_along_axis(student, indices, axis=-1)
    others = ops.where(
        _tail_mask(indices, classes) > 0,
        student,
        ops.full_like(student, -float("inf")),
    )
    student_tail = ops.logsumexp(others, axis=-1, keepdims=True)
    log_q = ops.concatenate([student_top, student_tail], axis=-1)
    log_q = log_q - student_total

    kl = ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1)
    return (temperature**2) * kl


def top_k_kd_loss(values, indices, tail, student_logits, temperature):
    """Soft-target loss on top-k teacher targets, mean over the batch.

    See `top_k_kd_loss_per_example`.

    Example:

    >>> import numpy as np
    >>> student = np.array([[3.0, 0.0, 1.0, -1.0]], "float32")
    >>> round(float(top_k_kd_loss([[3.0]], [[0]], [0.5], student, 1.0)), 4)
    0.0374
    """
    return ops.mean(
        top_k_kd_loss_per_example(values, indices, tail, student_logits, temperature)
    )


class LogitsDistillationLoss(keras.losses.Loss):
    """Base class of distillation losses computed from logits.

    `y_true` are the teacher's logits and `y_pred` the student's. The
    `Distiller` recognises these losses: it calls `per_example` on the raw
    logits (with the batch's labels), adds `batch_loss`, and applies no
    softmax and no `T²` of its own: each loss carries its own `temperature`.

    Subclasses implement `per_example`; a loss with a term that is not a
    sum over examples (DIST's intra-class correlation) also implements
    `batch_loss`. Called as a Keras loss, `loss(teacher_logits,
    student_logits, sample_weight)` is the weighted mean of `per_example`
    (over the batch size) plus `batch_loss`.

    Args:
        temperature: The softmax temperature (`check_temperature`).
        name: Name of the loss.
    """

    def __init__(self, temperature, name=None):
        super().__init__(reduction="sum_over_batch_size", name=name)
        self.temperature = check_temperature(temperature)

    def per_example(self, teacher_logits, student_logits, labels=None):
        """Per-example values, shape `(batch,)`.

        Args:
            teacher_logits: `(batch, classes)`.
            student_logits: `(batch, classes)`.
            labels: Optional `(batch,)` integer classes, `-1` for an
                unlabelled example (used by losses that need the target
                class, such as `DKD`).
        """
        raise NotImplementedError

    def batch_loss(self, teacher_logits, student_logits, sample_weight=None):
        """The part of the loss that is not a sum over examples, or None.

        Computed over the GLOBAL batch: inside a `tf.distribute` replica
        context its statistics are all-reduced across the replicas.
        """
        return None

    def call(self, y_true, y_pred):
        return self.per_example(y_true, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None):
        value = super().__call__(y_true, y_pred, sample_weight=sample_weight)
        extra = self.batch_loss(y_true, y_pred, sample_weight)
        return value if extra is None else value + ops.cast(extra, value.dtype)

    def get_config(self):
        return {"name": self.name, "temperature": self.temperature}


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
    teacher_logits,
    student_logits,
    labels=None,
    alpha=1.0,
    beta=8.0,
    temperature=4.0,
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
    teacher_logits, student_logits = _float_logits(teacher_logits, student_logits)
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
    teacher_logits,
    student_logits,
    labels=None,
    alpha=1.0,
    beta=8.0,
    temperature=4.0,
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
    Defaults are mdistiller's CIFAR-100 settings.

    Args:
        alpha: Weight of the target-class term TCKD (finite, >= 0).
        beta: Weight of the non-target-class term NCKD (finite, >= 0).
        temperature: Softmax temperature `T` (`check_temperature`).
        name: Name of the loss.

    Example:

    >>> import numpy as np
    >>> loss = DKD(alpha=1.0, beta=8.0, temperature=4.0)
    >>> teacher_logits = np.array([[3.0, 1.0, 0.0, -1.0]], "float32")
    >>> round(float(loss(teacher_logits, teacher_logits[:, ::-1])), 4)
    19.9299
    """

    def __init__(self, alpha=1.0, beta=8.0, temperature=4.0, name="dkd"):
        super().__init__(temperature=temperature, name=name)
        self.alpha = check_weight(alpha, "alpha")
        self.beta = check_weight(beta, "beta")

    def per_example(self, teacher_logits, student_logits, labels=None):
        return dkd_loss_per_example(
            teacher_logits,
            student_logits,
            labels,
            self.alpha,
            self.beta,
            self.temperature,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"alpha": self.alpha, "beta": self.beta})
        return config


# DIST's epsilon, added to the product of norms (Huang et al.'s code).
_PEARSON_EPSILON = 1e-8


def _centred_correlation(a, b, axis):
    a = a - ops.mean(a, axis=axis, keepdims=True)
    b = b - ops.mean(b, axis=axis, keepdims=True)
    norms = ops.sqrt(ops.sum(a * a, axis=axis)) * ops.sqrt(ops.sum(b * b, axis=axis))
    return ops.sum(a * b, axis=axis) / (norms + _PEARSON_EPSILON)


def _global_sum(value):
    """Sum over the replicas inside a replica context (else `value`)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def _softened(teacher_logits, student_logits, temperature):
    teacher_logits, student_logits = _float_logits(teacher_logits, student_logits)
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
    first = _global_sum(
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
    moments = local + ops.stop_gradient(_global_sum(local) - local)
    norms = ops.sqrt(moments[1]) * ops.sqrt(moments[2])
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
    therefore depends on the batch size, as in the paper.

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
        super().__init__(temperature=temperature, name=name)
        self.beta = check_weight(beta, "beta")
        self.gamma = check_weight(gamma, "gamma")

    def per_example(self, teacher_logits, student_logits, labels=None):
        return self.beta * dist_inter_class_per_example(
            teacher_logits, student_logits, self.temperature
        )

    def batch_loss(self, teacher_logits, student_logits, sample_weight=None):
        return self.gamma * dist_intra_class_loss(
            teacher_logits, student_logits, self.temperature, sample_weight
        )

    def get_config(self):
        config = super().get_config()
        config.update({"beta": self.beta, "gamma": self.gamma})
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
