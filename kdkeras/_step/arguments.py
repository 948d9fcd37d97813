"""Checks and resolution of the arguments of kdkeras' training API.

One-line errors in Keras' wording, "`argument` must be ... Received:
argument=...", shared by the `Distiller` and `kdkeras.compress`.
"""

import numbers
import sys

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kdkeras._model_graph import known_shape

# One home (kdutils), one name for the Distiller's and kdkeras.compress' checks.
from kdutils.checks import check_positive_int  # noqa: F401


def check_fraction(name, value, upper_inclusive=True):
    """Returns `value` as a float in [0, 1] (or [0, 1)), else raises.

    Example:

    >>> check_fraction("alpha", 0.5)
    0.5
    >>> check_fraction("target_sparsity", 1.0, upper_inclusive=False)
    Traceback (most recent call last):
    ...
    ValueError: `target_sparsity` must be in [0, 1). Received: target_sparsity=1.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a number in [0, 1]. Received: {name}={value!r}"
        )
    upper_ok = value <= 1 if upper_inclusive else value < 1
    if not (value >= 0 and upper_ok):
        bound = "1]" if upper_inclusive else "1)"
        raise ValueError(f"`{name}` must be in [0, {bound}. Received: {name}={value}")
    return float(value)


def check_model(model, argument):
    """Refuses anything but a Keras 3 model.

    Example:

    >>> check_model(None, "teacher")
    Traceback (most recent call last):
    ...
    ValueError: `teacher` is required. Received: teacher=None
    """
    if model is None:
        raise ValueError(f"`{argument}` is required. Received: {argument}=None")
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{argument}` must be a keras.Model (Keras 3). "
            f"Received: {argument} of type {type(model).__name__}"
        )


def check_finite_weights(model, argument):
    """Refuses a model holding a NaN or infinite weight, in one line.

    Checked on the weights themselves: through a ReLU, a NaN weight reaches
    the outputs or not depending on the CPU's kernels and on XLA, so only
    the weights give the same answer on every machine.

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((2,)), keras.layers.Dense(2, name="logits")], name="t")
    >>> _ = model.layers[0].bias.assign([float("nan"), 0.0])
    >>> check_finite_weights(model, "teacher")
    Traceback (most recent call last):
    ...
    ValueError: `teacher` must have finite weights. Received: teacher (t), \
whose variable t/logits/bias holds nan
    """
    for variable in model.weights:
        if not variable.dtype or "float" not in str(variable.dtype):
            continue
        values = np.asarray(ops.convert_to_numpy(variable))
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(
                f"`{argument}` must have finite weights. Received: {argument} "
                f"({model.name}), whose variable {variable.path} holds "
                f"{values[bad].flat[0]}"
            )


def check_compatible(student, teacher):
    """Refuses a teacher and student of different inputs or classes.

    Shapes Keras does not know (subclassed models) are not compared.

    Example:

    >>> student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5)])
    >>> check_compatible(student, teacher)
    Traceback (most recent call last):
    ...
    ValueError: `teacher` and `student` must output the same number of \
classes. Received: teacher 5 classes, student 3 classes
    """
    student_input = known_shape(student, "input_shape")
    teacher_input = known_shape(teacher, "input_shape")
    if student_input and teacher_input and (student_input[1:] != teacher_input[1:]):
        raise ValueError(
            "`teacher` and `student` must take the same input shape. "
            f"Received: teacher input {teacher_input[1:]}, "
            f"student input {student_input[1:]}"
        )
    student_output = known_shape(student, "output_shape")
    teacher_output = known_shape(teacher, "output_shape")
    if student_output and teacher_output and (student_output[-1] != teacher_output[-1]):
        raise ValueError(
            "`teacher` and `student` must output the same number of classes. "
            f"Received: teacher {teacher_output[-1]} classes, "
            f"student {student_output[-1]} classes"
        )


def resolve_loss(loss, argument):
    """A Keras loss from a loss object, function, name or config (or None).

    Example:

    >>> type(resolve_loss("mse", "student_loss_fn")).__name__
    'function'
    """
    if loss is None or callable(loss):
        return loss
    if isinstance(loss, (str, dict)):
        try:
            return keras.losses.get(loss)
        except ValueError:
            pass
    raise TypeError(
        f"`{argument}` must be a Keras loss (a keras.losses.Loss, a loss "
        f"function or its name). Received: {argument}={loss!r}"
    )


def check_not_empty(x):
    """Refuses data `x` without an example (arrays) or a batch (dataset).

    Example:

    >>> import numpy as np
    >>> check_not_empty(np.zeros((0, 4)))
    Traceback (most recent call last):
    ...
    ValueError: `x` must hold at least one example. Received: x with shape (0, 4)
    """
    if isinstance(x, tf.data.Dataset):
        if int(x.cardinality()) == 0:
            raise ValueError(
                "`x` must yield at least one batch. Received: an empty "
                "tf.data.Dataset (cardinality 0)"
            )
        return
    if x is None:
        return
    for value in tf.nest.flatten(x):
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) and shape[0] == 0:
            raise ValueError(
                "`x` must hold at least one example. "
                f"Received: x with shape {tuple(shape)}"
            )


def _stdout_is_terminal():
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def resolve_verbose(verbose):
    """Keras' "auto" (1, a live progress bar), except off a terminal.

    Off a terminal (logs, CI, pipes) "auto" is 2, one line per epoch.

    Example:

    >>> resolve_verbose(0), resolve_verbose(2)
    (0, 2)
    """
    if verbose == "auto":
        return 1 if _stdout_is_terminal() else 2
    return verbose
