"""Top-k soft targets for many classes: store K logits, keep the rest's mass.

A 1,000- or 50,000-class teacher's full logits cost `classes` numbers per
example. `top_k_targets` keeps, per example, the K largest logits, their class
indices and ONE number for everything else: the log-sum-exp of the other
classes' logits at the distillation temperature `T`,
`tail = log sum_{j not in top-K} exp(t_j / T)`.

With it the teacher's distribution at `T` is known exactly on K+1 buckets
(the K classes, and "any other class"): `softmax([t_top / T, tail])`.

`top_k_kd_loss` is the distillation loss on those buckets,

    T^2 * KL(p_buckets || q_buckets),

where the student's buckets are its own probabilities of the K classes and
its total probability of all the others (`logsumexp` of its other logits),
both at `T`. Nothing is renormalised away: the teacher's tail mass is matched
by the student's tail mass. It equals the full-logit loss
(`kdkeras.losses.kd_loss_per_example`) minus `T^2 * r * KL(p_tail || q_tail)`,
the disagreement WITHIN the tail (`r` the teacher's tail mass), which it does
not see; with K = classes - 1 it is exact.

`dense_logits_from_top_k` expands top-k targets to full logits for a loss
that takes full logits (e.g. `kdkeras.Distiller`'s): the K logits are kept
and every other class gets `T * (tail - log(classes - K))`, so that at
temperature `T` the tail's mass is spread evenly over the other classes and
the top-K probabilities are exact. The distillation loss on them is
`T^2 * KL(p' || q)` with `p'` the teacher's distribution whose tail is made
uniform; it must be used at the temperature the targets were built for.
"""

import numpy as np

from keras import ops


def check_top_k(top_k, classes):
    """Checks `1 <= top_k < classes` and returns `top_k` as an int."""
    if (
        isinstance(top_k, bool)
        or not isinstance(top_k, (int, np.integer))
        or not 1 <= top_k < classes
    ):
        raise ValueError(
            f"`top_k` must be an int in [1, {classes - 1}] for a teacher of "
            f"{classes} classes (store full logits otherwise). "
            f"Received: top_k={top_k!r}"
        )
    return int(top_k)


def check_temperature(temperature):
    """Checks a finite temperature in [1e-2, 1e3] and returns it as a float."""
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float, np.integer, np.floating))
        or not np.isfinite(temperature)
        or not 1e-2 <= temperature <= 1e3
    ):
        raise ValueError(
            "`temperature` must be a finite number in [0.01, 1000]. "
            f"Received: temperature={temperature!r}"
        )
    return float(temperature)


def top_k_targets(logits, top_k, temperature):
    """The K largest logits, their classes and the others' log-sum-exp at T.

    Ties are broken towards the lower class index, so the result is
    deterministic.

    Args:
        logits: `(examples, classes)` finite teacher logits.
        top_k: Number of logits kept, `1 <= top_k < classes`.
        temperature: The distillation temperature the tail is computed at.

    Returns:
        `(values, indices, tail)`: float32 `(examples, top_k)` logits in
        decreasing order, int32 `(examples, top_k)` class indices, float32
        `(examples,)` log-sum-exp of the other classes' `logit / T`.

    Example:

    >>> values, indices, tail = top_k_targets(
    ...     np.array([[0.0, 3.0, 1.0, 2.0]]), top_k=2, temperature=1.0)
    >>> values.tolist(), indices.tolist(), round(float(tail[0]), 4)
    ([[3.0, 2.0]], [[1, 3]], 1.3133)
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(
            "`logits` must be 2-D (examples, classes). "
            f"Received: shape {logits.shape}"
        )
    top_k = check_top_k(top_k, logits.shape[1])
    temperature = check_temperature(temperature)
    order = np.argsort(-logits, axis=1, kind="stable")
    indices = order[:, :top_k]
    values = np.take_along_axis(logits, indices, axis=1)
    rest = np.take_along_axis(logits, order[:, top_k:], axis=1) / temperature
    peak = rest.max(axis=1, keepdims=True)
    tail = peak[:, 0] + np.log(np.exp(rest - peak).sum(axis=1))
    return (
        values.astype(np.float32),
        indices.astype(np.int32),
        tail.astype(np.float32),
    )


def _tail_mask(indices, classes):
    """`(batch, classes)` float mask, 1 for classes outside `indices`."""
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


def top_k_kd_loss(values, indices, tail, student_logits, temperature):
    """Per-example `T^2 * KL` on the K teacher classes plus "the rest".

    See the module docstring for what it equals and what it does not see.

    Args:
        values: `(batch, K)` teacher logits of the top-K classes.
        indices: `(batch, K)` int class indices of those logits.
        tail: `(batch,)` log-sum-exp of the other classes' `logit / T`
            (from `top_k_targets` at the same temperature).
        student_logits: `(batch, classes)` student logits.
        temperature: The temperature `tail` was computed at.

    Returns:
        float32 tensor `(batch,)`.

    Example:

    >>> teacher = np.array([[2.0, 0.5, -1.0, 0.0]], "float32")
    >>> student = np.array([[1.0, 1.0, 0.0, 0.0]], "float32")
    >>> values, indices, tail = top_k_targets(teacher, 3, 2.0)
    >>> loss = top_k_kd_loss(values, indices, tail, student, 2.0)
    >>> from kdkeras.losses import kd_loss_per_example
    >>> full = kd_loss_per_example(teacher, student, 2.0)
    >>> bool(np.isclose(loss[0], full[0], rtol=1e-5))  # K = classes - 1: exact
    True
    """
    temperature = check_temperature(temperature)
    values = ops.cast(values, "float32")
    indices = ops.cast(indices, "int32")
    tail = ops.cast(tail, "float32")
    student = ops.cast(student_logits, "float32") / temperature
    classes = ops.shape(student)[-1]

    teacher_buckets = ops.concatenate(
        [values / temperature, ops.expand_dims(tail, -1)], axis=-1
    )
    log_p = ops.log_softmax(teacher_buckets, axis=-1)

    student_total = ops.logsumexp(student, axis=-1, keepdims=True)
    student_top = ops.take_along_axis(student, indices, axis=-1)
    mask = _tail_mask(indices, classes)
    masked = ops.where(mask > 0, student, ops.full_like(student, -np.inf))
    student_tail = ops.logsumexp(masked, axis=-1, keepdims=True)
    log_q = ops.concatenate([student_top, student_tail], axis=-1)
    log_q = log_q - student_total

    p = ops.exp(log_p)
    kl = ops.sum(p * (log_p - log_q), axis=-1)
    return (temperature**2) * kl


def dense_logits_from_top_k(values, indices, tail, classes, temperature):
    """Full logits whose softmax at T keeps the top-K and spreads the rest.

    Args:
        values: `(batch, K)` teacher logits of the top-K classes.
        indices: `(batch, K)` their class indices.
        tail: `(batch,)` log-sum-exp of the other classes' `logit / T`.
        classes: Total number of classes.
        temperature: The temperature `tail` was computed at.

    Returns:
        float32 NumPy array `(batch, classes)`.

    Example:

    >>> logits = np.array([[0.0, 3.0, 1.0, 2.0]])
    >>> dense = dense_logits_from_top_k(*top_k_targets(logits, 2, 1.0), 4, 1.0)
    >>> np.round(dense.astype("float64"), 4).tolist()
    [[0.6201, 3.0, 0.6201, 2.0]]
    """
    temperature = check_temperature(temperature)
    values = np.asarray(values, dtype=np.float32)
    indices = np.asarray(indices)
    top_k = values.shape[1]
    fill = temperature * (
        np.asarray(tail, dtype=np.float64) - np.log(classes - top_k)
    )
    dense = np.repeat(fill[:, None], classes, axis=1).astype(np.float32)
    np.put_along_axis(dense, indices.astype(np.int64), values, axis=1)
    return dense
