"""The soft-target loss on top-k teacher targets (many classes).

The teacher is known on K classes and the rest's mass (`kdkeras.targets.topk`
builds such targets); the loss is exact on those K+1 buckets.
"""

from keras import ops

from kdkeras.losses.loss import check_temperature


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

    the full-logit loss (`kdkeras.losses.kd_loss_per_example`) minus the disagreement
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
    >>> from kdkeras.losses import kd_loss_per_example
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
