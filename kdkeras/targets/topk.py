"""Top-k soft targets for many classes: store K logits, keep the rest's mass.

A 1,000- or 50,000-class teacher's full logits cost `classes` numbers per
example. `top_k_targets` keeps, per example, the K largest logits, their class
indices and ONE number for everything else: the log-sum-exp of the other
classes' logits at the distillation temperature `T`,
`tail = log sum_{j not in top-K} exp(t_j / T)`.

With it the teacher's distribution at `T` is known exactly on K+1 buckets
(the K classes, and "any other class"): `softmax([t_top / T, tail])`.

The distillation loss on those buckets, `T^2 * KL(p_buckets || q_buckets)`,
is `kdkeras.losses.top_k_kd_loss_per_example` (with
`top_k_kd_loss`, its batch mean): the student's buckets are its own
probabilities of the K classes and its total probability of all the others,
both at `T`. Nothing is renormalised away: the teacher's tail mass is matched
by the student's tail mass. It equals the full-logit loss
(`kdkeras.losses.kd_loss_per_example`) minus `T^2 * r * KL(p_tail || q_tail)`,
the disagreement WITHIN the tail (`r` the teacher's tail mass), which it does
not see; with K = classes - 1 it is exact. The `kdkeras.Distiller` trains on
it when a batch carries top-k targets (`kdkeras.targets.batch`), at the
temperature they were built for only, with the default soft-target loss
(`check_top_k_loss`, `check_array_top_k`, `checked_top_k`).

`dense_logits_from_top_k` expands top-k targets to full logits for a loss
that needs every logit (DKD, DIST, a Keras loss): the K logits are kept
and every other class gets `T * (tail - log(classes - K))`, so that at
temperature `T` the tail's mass is spread evenly over the other classes and
the top-K probabilities are exact. A loss on them sees `p'`, the teacher's
distribution whose tail is made uniform (the soft-target loss
`T^2 * KL(p' || q)` adds a disagreement the teacher does not have); it must
be used at the temperature the targets were built for.
"""

import numpy as np
import tensorflow as tf
from keras import ops

from kdkeras.losses import KnowledgeDistillation
from kdkeras.losses import check_temperature
from kdkeras.targets.batch import TemperedLogits
from kdkeras.targets.batch import TopKTargets
from kdkeras.targets.batch import split_targets

__all__ = [
    "check_array_top_k",
    "check_top_k",
    "check_top_k_loss",
    "checked_top_k",
    "dense_logits_from_top_k",
    "top_k_targets",
]


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
            f"`logits` must be 2-D (examples, classes). Received: shape {logits.shape}"
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
    fill = temperature * (np.asarray(tail, dtype=np.float64) - np.log(classes - top_k))
    dense = np.repeat(fill[:, None], classes, axis=1).astype(np.float32)
    np.put_along_axis(dense, indices.astype(np.int64), values, axis=1)
    return dense


def check_top_k_loss(loss_fn):
    """Refuses a distillation loss other than the soft-target loss.

    Top-k targets train with `top_k_kd_loss_per_example`, the soft-target
    loss on the K classes and the rest: the `Distiller`'s default
    distillation loss (`None`) or `KnowledgeDistillation`.

    Args:
        loss_fn: The Distiller's `distillation_loss_fn`.

    Raises:
        ValueError: any other loss.

    Example:

    >>> check_top_k_loss(None)
    >>> check_top_k_loss(KnowledgeDistillation(temperature=2.0))
    """
    if loss_fn is None or isinstance(loss_fn, KnowledgeDistillation):
        return
    name = getattr(loss_fn, "name", None) or type(loss_fn).__name__
    raise ValueError(
        "`distillation_loss_fn` must be None or KnowledgeDistillation to "
        "train on top-k teacher targets (other losses need every logit: "
        "expand them with kdkeras.targets.dense_logits_from_top_k, e.g. "
        "soft_target_dataset(..., expand_top_k=True)). "
        f"Received: distillation_loss_fn={name}"
    )


def _temperature_message(temperature, targets_temperature):
    return (
        "`temperature` must equal the temperature the top-k teacher targets "
        f"were computed at, {targets_temperature} (their tail is the other "
        "classes' mass at it): compile with it, or rebuild the targets at "
        f"this one. Received: temperature={temperature}"
    )


def check_array_top_k(y, temperature, loss_fn):
    """Eager check of NumPy top-k targets: the loss and the temperature.

    Args:
        y: A batch's targets (`split_targets`); anything without top-k
            targets passes.
        temperature: The Distiller's temperature.
        loss_fn: The Distiller's `distillation_loss_fn` (`check_top_k_loss`).

    Raises:
        ValueError: another loss, or targets at another temperature.

    Example:

    >>> from kdkeras.targets.batch import top_k_target_dict
    >>> targets = top_k_target_dict([[2.0]], [[1]], [0.5], temperature=4.0)
    >>> check_array_top_k(targets, 4.0, None)
    >>> check_array_top_k(targets, 2.0, None)
    Traceback (most recent call last):
    ...
    ValueError: `temperature` must equal the temperature the top-k teacher \
targets were computed at, 4.0 (their tail is the other classes' mass at it): \
compile with it, or rebuild the targets at this one. Received: temperature=2.0
    """
    _, teacher_targets = split_targets(y)
    if not isinstance(teacher_targets, (TopKTargets, TemperedLogits)):
        return
    if isinstance(teacher_targets, TopKTargets):
        check_top_k_loss(loss_fn)
    targets_temperature = np.asarray(
        ops.convert_to_numpy(teacher_targets.temperature), np.float32
    )
    other = targets_temperature != np.float32(temperature)
    if np.any(other):
        raise ValueError(
            _temperature_message(temperature, float(targets_temperature[other].flat[0]))
        )


def checked_top_k(teacher_targets, temperature, loss_fn):
    """Top-k targets, after an in-graph check of their temperature.

    Their tail is the other classes' mass at the temperature they were
    computed at: at any other the loss would be wrong. The loss is checked
    at trace time (`check_top_k_loss`), the temperature in the graph (to run
    outside XLA) for every batch. Full logits expanded from top-k targets
    (`TemperedLogits`, any loss) are checked the same way and returned as
    logits.

    Args:
        teacher_targets: Full teacher logits or `None` (returned as they
            are), `TopKTargets` or `TemperedLogits`.
        temperature: The Distiller's temperature.
        loss_fn: The Distiller's `distillation_loss_fn`.

    Returns:
        `teacher_targets`, top-k ones with the check as a control dependency
        (`TemperedLogits`: their logits, with the check).

    Raises:
        InvalidArgumentError: targets at another temperature (when run).

    Example:

    >>> targets = TopKTargets(
    ...     np.array([[2.0]]), np.array([[1]]), np.array([0.5]), np.array([4.0]))
    >>> checked_top_k(targets, 4.0, None).tail.numpy().tolist()
    [0.5]
    """
    if not isinstance(teacher_targets, (TopKTargets, TemperedLogits)):
        return teacher_targets
    if isinstance(teacher_targets, TopKTargets):
        check_top_k_loss(loss_fn)
    targets_temperature = ops.cast(teacher_targets.temperature, "float32")
    expected = ops.cast(temperature, "float32")
    check = tf.debugging.Assert(
        ops.all(ops.equal(targets_temperature, expected)),
        [
            _temperature_message(temperature, "the value after this message"),
            targets_temperature,
        ],
        summarize=1,
    )
    with tf.control_dependencies([check]):
        if isinstance(teacher_targets, TemperedLogits):
            return tf.identity(teacher_targets.logits)
        tail = tf.identity(teacher_targets.tail)
    return teacher_targets._replace(tail=tail)
