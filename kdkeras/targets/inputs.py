"""Checks of the per-example arrays every soft-target producer takes.

The cache, the cached-target dataset and the online pipeline all take inputs
with one row per example (`x`, labels, teacher logits, sample weights) and a
batch size; they are validated here, once, with the same one-line errors.
"""

import numpy as np


def flat_arrays(x, name="x"):
    """The NumPy arrays of a (nested) input structure, in a fixed order.

    Dict entries are taken in sorted key order, lists and tuples in order.

    Args:
        x: NumPy array, or a list/tuple/dict of them.
        name: The argument's name, for the error message.

    Returns:
        List of NumPy arrays.

    Example:

    >>> [a.shape for a in flat_arrays({"b": np.zeros(2), "a": np.ones((2, 3))})]
    [(2, 3), (2,)]
    """
    if isinstance(x, dict):
        return [a for k in sorted(x) for a in flat_arrays(x[k], name)]
    if isinstance(x, (list, tuple)):
        return [a for item in x for a in flat_arrays(item, name)]
    if isinstance(x, np.ndarray):
        return [x]
    raise TypeError(
        f"`{name}` must be a NumPy array (or a list/dict of them). "
        f"Received: {name}={type(x).__name__}"
    )


def example_count(array, name):
    """The number of rows (examples) of an array.

    Args:
        array: An array-like with a `shape`.
        name: The argument's name, for the error message.

    Returns:
        Int.

    Raises:
        ValueError: `array` has no rows (a scalar or not an array).

    Example:

    >>> example_count(np.zeros((5, 2)), "x")
    5
    """
    shape = getattr(array, "shape", None)
    if shape is None or len(shape) == 0:
        raise ValueError(
            f"`{name}` must be an array with one row per example. "
            f"Received: {name} of type {type(array).__name__}"
        )
    return int(shape[0])


def check_rows(x, named):
    """Checks that `x` is not empty and every array has one row per example.

    Args:
        x: The inputs: a NumPy array or a list/dict of them.
        named: `(name, array)` pairs that must have as many rows as `x`;
            `None` arrays are skipped.

    Returns:
        The number of examples.

    Raises:
        ValueError: `x` is empty, or a count differs.
    """
    inputs = flat_arrays(x)
    if not inputs:
        raise ValueError("`x` must hold at least one array. Received: x=[]")
    count = example_count(inputs[0], "x")
    if count == 0:
        raise ValueError("`x` must have at least one example. Received: x with 0 rows")
    for array in inputs[1:]:
        if example_count(array, "x") != count:
            raise ValueError(
                "All arrays in `x` must have the same number of rows. "
                f"Received: {[len(a) for a in inputs]}"
            )
    for name, array in named:
        if array is None:
            continue
        rows = example_count(array, name)
        if rows != count:
            raise ValueError(
                f"`{name}` must have one row per example of `x` ({count}). "
                f"Received: {name} with {rows} rows"
            )
    return count


def check_batch_size(batch_size):
    """Checks that `batch_size` is a positive int and returns it as an int.

    Example:

    >>> check_batch_size(np.int64(32))
    32
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(
            f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}"
        )
    return int(batch_size)


def finite_weights(sample_weight):
    """`sample_weight` as float32, refusing NaN or infinity (a NaN weight
    turns the loss NaN).

    Example:

    >>> finite_weights([1, 0.5]).tolist()
    [1.0, 0.5]
    """
    weights = np.asarray(sample_weight, "float32")
    check_finite_logits(weights, "sample_weight")
    return weights


def check_finite_logits(teacher_logits, name="teacher_logits"):
    """Refuses teacher logits holding NaN or infinity.

    Soft targets from a non-finite logit are NaN, and a NaN target turns the
    whole distillation loss, and then the student, into NaN: it is refused
    where the logits enter (the cache, the cached-target dataset).

    Args:
        teacher_logits: NumPy array of logits.
        name: The argument's name, for the error message.

    Raises:
        ValueError: naming how many rows are not finite.
    """
    finite = np.isfinite(teacher_logits)
    if not finite.all():
        rows = np.flatnonzero(~finite.reshape(len(finite), -1).all(axis=1))
        raise ValueError(
            f"`{name}` must be finite. Received: NaN or inf in {len(rows)} "
            f"of {len(finite)} rows (first: row {rows[0]})"
        )


def check_model_inputs(model, x, name="x"):
    """Refuses inputs whose per-example shape is not the model's.

    Checked before the model runs, so the error names both shapes (a Keras
    layer's own error comes wrapped in "Exception encountered when calling
    ..."). Models whose inputs are not known (subclassed, never built) or
    that take a dict pass unchecked.

    Args:
        model: A `keras.Model`.
        x: Inputs: a NumPy array, or a list/tuple of them.
        name: The argument's name, for the error message.

    Raises:
        ValueError: another number of inputs, or another per-example shape.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    >>> check_model_inputs(model, np.zeros((3, 8)))
    >>> check_model_inputs(model, np.zeros((3, 7)))
    Traceback (most recent call last):
    ...
    ValueError: `x` must match the teacher's inputs (None, 8). Received: x of shape (None, 7)
    """
    try:
        expected = [tuple(tensor.shape) for tensor in model.inputs]
    except (AttributeError, TypeError, ValueError):
        return
    if isinstance(x, dict) or not expected:
        return
    arrays = list(x) if isinstance(x, (list, tuple)) else [x]
    shapes = [(None,) + tuple(np.shape(a)[1:]) for a in arrays]

    def shown(shapes):
        return ", ".join(str(s) for s in shapes)

    def fits(shape, wanted):
        return len(shape) == len(wanted) and all(
            w is None or s == w for s, w in zip(shape[1:], wanted[1:], strict=True)
        )

    if len(shapes) != len(expected) or not all(
        fits(s, w) for s, w in zip(shapes, expected, strict=False)
    ):
        raise ValueError(
            f"`{name}` must match the teacher's inputs {shown(expected)}. "
            f"Received: {name} of shape {shown(shapes)}"
        )
