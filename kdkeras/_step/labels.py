"""The labels of a batch as the `Distiller` reads them.

Labels are class indices (sparse, `(batch,)` or `(batch, 1)`) or rows of
class probabilities (one-hot or soft, `(batch, classes)`), and may be missing
or partial (`kdkeras.targets.batch`): an unlabelled example has the sparse
label `UNLABELLED` (-1) or an all-zero row. `label_parts` turns them into
what the hard-label loss and the metrics need: loss labels, a labelled mask
and target classes. Class indices out of range or not whole (NaN, -0.5, 1.5),
rows of probabilities holding NaN or inf, and non-finite sample weights are
refused with one error type, eagerly for arrays (`check_array_labels`) and in
the graph, outside XLA, for every other input (`checked_labels`,
`checked_sample_weight`).
"""

import numpy as np
import tensorflow as tf
from keras import ops

from kdkeras.targets import LABELS_KEY
from kdkeras.targets import TEACHER_LOGITS_KEY
from kdkeras.targets import UNLABELLED
from kdkeras.targets import split_targets


def is_sparse(labels, num_classes):
    """Whether `labels` are class indices (else one-hot or soft rows).

    Args:
        labels: An array or tensor of labels.
        num_classes: The student's number of classes, or `None` if unknown
            (a `(batch, 1)` array is one-hot only for a one-class model).

    Returns:
        Bool.

    Example:

    >>> import numpy as np
    >>> is_sparse(np.array([2, -1]), 3), is_sparse(np.eye(3), 3)
    (True, False)
    """
    rank = len(labels.shape)
    if rank <= 1:
        return True
    return rank == 2 and labels.shape[-1] == 1 and num_classes != 1


def label_parts(labels, num_classes):
    """`(labels for the loss, labelled mask, target classes)` of a batch.

    Unlabelled examples get class 0 in the loss's labels (their loss is
    masked out), mask 0, and target class `UNLABELLED`.

    Args:
        labels: Sparse labels or one-hot/soft rows (`is_sparse`).
        num_classes: The student's number of classes, or `None`.

    Returns:
        `(loss_labels, mask, targets)`: labels of the input's form, float32
        mask `(batch,)`, int32 target classes `(batch,)`.

    Example:

    >>> import numpy as np
    >>> _, mask, targets = label_parts(np.array([2, -1, 0]), 3)
    >>> mask.numpy().tolist(), targets.numpy().tolist()
    ([1.0, 0.0, 1.0], [2, -1, 0])
    >>> _, mask, targets = label_parts(np.array([[0, 1.0], [0, 0]]), 2)
    >>> mask.numpy().tolist(), targets.numpy().tolist()
    ([1.0, 0.0], [1, -1])
    """
    labels = ops.convert_to_tensor(labels)
    if is_sparse(labels, num_classes):
        labelled = labels >= 0
        loss_labels = ops.where(labelled, labels, ops.zeros_like(labels))
        flat = ops.reshape(labels, (-1,))
        mask = ops.cast(flat >= 0, "float32")
        targets = ops.cast(flat, "int32")
    else:
        flat_labelled = ops.any(ops.not_equal(labels, 0), axis=-1)
        if len(flat_labelled.shape) > 1:
            flat_labelled = ops.reshape(flat_labelled, (-1,))
        loss_labels = labels
        mask = ops.cast(flat_labelled, "float32")
        targets = ops.where(
            flat_labelled,
            ops.cast(ops.argmax(labels, axis=-1), "int32"),
            UNLABELLED,
        )
    return loss_labels, mask, targets


def checked_labels(labels, num_classes):
    """`labels`, after an in-graph check that every class index is valid.

    Valid: in `[0, num_classes)`, or `UNLABELLED`. To run outside XLA (which
    drops assertions, and on CPU turns an out-of-range label into a NaN
    loss), so that the error is the same with any `jit_compile`.

    Args:
        labels: Labels, or `None` (returned as it is).
        num_classes: The student's number of classes, or `None` (then only
            the lower bound is checked).

    Returns:
        The labels as a tensor (with the check as a control dependency).

    Raises:
        InvalidArgumentError: a sparse label out of range (when run).

    Example:

    >>> import numpy as np
    >>> checked_labels(np.array([2, -1]), 3).numpy().tolist()
    [2, -1]
    """
    if labels is None:
        return None
    labels = ops.convert_to_tensor(labels)
    if not is_sparse(labels, num_classes):
        if "float" not in str(labels.dtype):
            return labels
        finite = ops.all(ops.isfinite(labels))
        check = tf.debugging.Assert(
            finite,
            [
                "`labels` must be finite. Received: NaN or inf in a batch's "
                "rows of class probabilities (one-hot or soft labels)."
            ],
        )
        with tf.control_dependencies([check]):
            return tf.identity(labels)
    # Signed comparison: -1 must not wrap around in unsigned labels.
    values = labels
    if "int" in str(labels.dtype):
        values = ops.cast(labels, "int64")
    valid = values >= UNLABELLED
    if num_classes:
        valid = ops.logical_and(valid, values < num_classes)
    if "float" in str(labels.dtype):
        # A class index is a whole number: -0.5 is neither a class nor -1.
        valid = ops.logical_and(valid, ops.equal(values, ops.floor(values)))
        valid = ops.logical_and(
            valid, ops.logical_or(values >= 0, values == UNLABELLED)
        )
    flat_valid = ops.reshape(valid, (-1,))
    invalid = tf.boolean_mask(ops.reshape(values, (-1,)), ~flat_valid)
    upper = num_classes if num_classes else "classes"
    check = tf.debugging.Assert(
        ops.all(flat_valid),
        [
            "Received a label value outside the valid range of "
            f"[0, {upper}) (or {UNLABELLED}, an unlabelled example). "
            "Labels out of range:",
            invalid,
        ],
        summarize=5,
    )
    with tf.control_dependencies([check]):
        return tf.identity(labels)


def checked_sample_weight(sample_weight):
    """`sample_weight`, after an in-graph check that every weight is finite.

    A NaN weight makes the weighted loss NaN and the student's weights with
    it. Like `checked_labels`, to run outside XLA.

    Args:
        sample_weight: Per-example weights, or `None` (returned as it is).

    Returns:
        The weights as a tensor (with the check as a control dependency).

    Raises:
        InvalidArgumentError: a NaN or infinite weight (when run).

    Example:

    >>> import numpy as np
    >>> checked_sample_weight(np.array([1.0, 0.5])).numpy().tolist()
    [1.0, 0.5]
    """
    if sample_weight is None:
        return None
    sample_weight = ops.convert_to_tensor(sample_weight)
    if "float" not in str(sample_weight.dtype):
        return sample_weight
    check = tf.debugging.Assert(
        ops.all(ops.isfinite(sample_weight)),
        ["`sample_weight` must be finite. Received: NaN or inf in a batch's weights."],
    )
    with tf.control_dependencies([check]):
        return tf.identity(sample_weight)


def check_array_labels(y, num_classes):
    """Eager range check of NumPy / tensor labels: a one-line error.

    The same error type as the in-graph check (`checked_labels`), which
    guards every other input (datasets, generators).

    Args:
        y: A batch's targets (`split_targets`): labels or a target dict.
        num_classes: The student's number of classes, or `None`.

    Raises:
        InvalidArgumentError: a sparse label out of range, or NaN.

    Example:

    >>> import numpy as np
    >>> check_array_labels(np.array([0, 3]), num_classes=3)
    Traceback (most recent call last):
    ...
    tensorflow.python.framework.errors_impl.InvalidArgumentError: Received a \
label value of 3 which is outside the valid range of [0, 3) (or -1, an \
unlabelled example).
    """
    labels, _ = split_targets(y)
    if labels is None or not hasattr(labels, "shape"):
        return
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iuf" or not labels.size:
        return
    if not is_sparse(labels, num_classes):
        if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
            row = int(np.argwhere(~np.isfinite(labels))[0][0])
            raise tf.errors.InvalidArgumentError(
                None,
                None,
                "`labels` must be finite. Received: a row of class "
                f"probabilities holding {labels[row][~np.isfinite(labels[row])][0]} "
                f"(example {row}).",
            )
        return
    invalid = ~(labels >= UNLABELLED)  # NaN included
    if num_classes:
        invalid |= labels >= num_classes
    if labels.dtype.kind == "f":  # a class index is whole: -0.5 is not -1
        invalid |= (labels != np.floor(labels)) | (
            (labels < 0) & (labels != UNLABELLED)
        )
    if invalid.any():
        value = labels[invalid].flat[0]
        raise tf.errors.InvalidArgumentError(
            None,
            None,
            f"Received a label value of {value} which is outside the "
            f"valid range of [0, {num_classes}) (or {UNLABELLED}, an "
            "unlabelled example).",
        )


def check_array_sample_weight(sample_weight):
    """Eager finiteness check of a NumPy / tensor `sample_weight`: one line.

    Raises:
        InvalidArgumentError: a NaN or infinite weight (the in-graph check's
            error type, `checked_sample_weight`).

    Example:

    >>> import numpy as np
    >>> check_array_sample_weight(np.array([1.0, 0.5]))
    """
    if sample_weight is None or not hasattr(sample_weight, "shape"):
        return
    weights = np.asarray(sample_weight)
    if weights.dtype.kind == "f" and not np.all(np.isfinite(weights)):
        first = int(np.flatnonzero(~np.isfinite(weights.reshape(-1)))[0])
        raise tf.errors.InvalidArgumentError(
            None,
            None,
            "`sample_weight` must be finite. Received: "
            f"sample_weight[{first}]={weights.reshape(-1)[first]}.",
        )


def has_labels(x, y):
    """False if the data certainly has no labels; True or None otherwise.

    Args:
        x, y: The data, as given to `fit` or `evaluate`.

    Returns:
        `False` for arrays without `y`, a dataset of `x` alone, or targets
        without `LABELS_KEY`; `True` when labels are present; `None` for a
        generator or `PyDataset` (checked when the step is traced).

    Example:

    >>> import numpy as np
    >>> x = np.zeros((2, 4))
    >>> has_labels(x, None), has_labels(x, np.array([0, 1]))
    (False, True)
    """
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        if not isinstance(spec, tuple) or len(spec) < 2:
            return False
        labels, _ = split_targets(spec[1])
        return labels is not None
    if y is not None:
        labels, _ = split_targets(y)
        return labels is not None
    if x is not None and all(hasattr(value, "shape") for value in tf.nest.flatten(x)):
        return False  # arrays or tensors without `y`
    return None  # a generator or PyDataset: checked when the step is traced


def check_alpha_with_labels(alpha, labelled):
    """Refuses a hard-label weight `alpha > 0` for data without labels.

    Args:
        alpha: The Distiller's `alpha`.
        labelled: `has_labels`' answer (`False`: certainly no labels).

    Raises:
        ValueError: `alpha > 0` and `labelled is False`.

    Example:

    >>> check_alpha_with_labels(0.0, labelled=False)  # soft targets alone
    >>> check_alpha_with_labels(0.1, labelled=None)  # checked when traced
    """
    if alpha > 0 and labelled is False:
        raise ValueError(
            "`alpha` must be 0 when training without labels (batches of `x` "
            f"alone, or of `(x, {{'{TEACHER_LOGITS_KEY}': t}})` without "
            f"'{LABELS_KEY}'): the hard-label loss has no labels. "
            f"Received: alpha={alpha}"
        )
