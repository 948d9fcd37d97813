"""How kdkeras reduces a loss over a batch, on one device or many.

Every loss of a `kdkeras.Distiller` step is reduced the same way: its
per-example values (`per_example_loss`) times the examples' sample weights
(`per_example_weight`), summed, and divided by a GLOBAL count, the sum over
the replicas of the step (`global_sum`). Under `tf.distribute` the gradients
are then summed across replicas, so the step equals the single-device step at
the same global batch. A loss with a term that is a property of the whole
batch (DIST's intra-class correlation) all-reduces its statistics with
`global_sum` too.
"""

import keras
import tensorflow as tf
from keras import ops


def global_sum(value):
    """Sum of a tensor over the replicas of this step.

    Inside a `tf.distribute` replica context with several replicas, an
    all-reduce (every replica must call it, in the same order); elsewhere
    `value` itself.

    Args:
        value: A float tensor.

    Returns:
        A tensor of the same shape.

    Example:

    >>> float(global_sum(ops.convert_to_tensor(2.5)))  # one device
    2.5
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def per_example_weight(sample_weight):
    """One sample-weight array for the batch.

    Keras' array adapter copies a `sample_weight` array onto every entry of
    a target dict (`{"labels", "teacher_logits"}`, the top-k keys): the
    Distiller weighs whole examples, so one copy is used.

    Args:
        sample_weight: `None`, an array, or a dict (or other structure) of
            copies of one array.

    Returns:
        `None` or the array.

    Example:

    >>> import numpy as np
    >>> weight = np.array([1.0, 0.5])
    >>> per_example_weight({"labels": weight, "teacher_logits": weight}).tolist()
    [1.0, 0.5]
    """
    if isinstance(sample_weight, dict):
        return tf.nest.flatten(sample_weight)[0]
    return sample_weight


def per_example_loss(loss_fn, y_true, y_pred):
    """Unreduced values of a Keras loss object or function, shape `(batch,)`.

    A `keras.losses.Loss` is called without its reduction (`call`); values
    with more axes than the batch are averaged over them.

    Args:
        loss_fn: A `keras.losses.Loss` or a function `(y_true, y_pred)`.
        y_true: The targets.
        y_pred: The predictions.

    Returns:
        float32 tensor `(batch,)`.

    Example:

    >>> import numpy as np
    >>> y_true = np.array([[0.0, 0.0], [1.0, 1.0]], "float32")
    >>> y_pred = np.array([[1.0, 1.0], [1.0, 3.0]], "float32")
    >>> loss_fn = keras.losses.MeanSquaredError()
    >>> per_example_loss(loss_fn, y_true, y_pred).numpy().tolist()
    [1.0, 2.0]
    """
    if isinstance(loss_fn, keras.losses.Loss):
        values = loss_fn.call(y_true, y_pred)
    else:
        values = loss_fn(y_true, y_pred)
    values = ops.cast(values, "float32")
    if len(values.shape) > 1:
        values = ops.mean(values, axis=tuple(range(1, len(values.shape))))
    return values
