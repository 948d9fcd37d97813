"""Output-bias adjustment for a class the student rarely or never saw.

Hinton, Vinyals & Dean (2015, §3) distilled an MNIST student on a transfer
set with every 3 removed; the student then under-predicted 3s, and raising
the bias of the "3" logit by 3.5 fixed most of them. `choose_bias_shift`
picks that amount on held-out labelled data (never the test set) and
`adjust_class_bias` applies it to the student's final `Dense` layer.
"""

import numbers

import keras
import numpy as np

from kdkeras import _model_graph as model_graph


def _output_dense(model):
    """The `Dense` layer producing `model`'s logits (through a softmax)."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`student` must be a keras.Model. Received: {type(model).__name__}"
        )
    _, tensor = model_graph.single_input_output(model, "student")
    passthrough = (keras.layers.Softmax, keras.layers.Activation)
    while True:
        operation, inputs = model_graph.producer(tensor)
        if isinstance(operation, keras.layers.Dense):
            break
        if not isinstance(operation, passthrough) or len(inputs) != 1:
            raise ValueError(
                "`student` must end in a Dense layer (optionally followed by a "
                f"softmax). Received: {model.name!r} ending in "
                f"{type(operation).__name__}"
            )
        tensor = inputs[0]
    if operation.bias is None:
        raise ValueError(
            f"`student`'s output layer {operation.name!r} has no bias (use_bias=False)."
        )
    return operation


def _check_class_index(class_index, classes):
    if (
        isinstance(class_index, bool)
        or not isinstance(class_index, numbers.Integral)
        or not 0 <= class_index < classes
    ):
        raise ValueError(
            f"`class_index` must be an int in [0, {classes}). "
            f"Received: class_index={class_index!r}"
        )
    return int(class_index)


def adjust_class_bias(student, class_index, amount):
    """Adds `amount` to the bias of one class in the student's output layer.

    Changes the model in place: only entry `class_index` of the bias of the
    final `Dense` layer (the logits), so that class's logit rises by
    `amount` on every input and nothing else changes.

    Args:
        student: A functional or sequential `keras.Model` ending in a
            `Dense` layer with a bias (optionally followed by a softmax).
        class_index: Int, the class whose bias to raise.
        amount: Float added to that bias (negative lowers it).

    Returns:
        The `Dense` layer that was changed.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> layer = adjust_class_bias(model, 2, 3.5)
    >>> [float(b) for b in layer.bias.numpy()]
    [0.0, 0.0, 3.5]
    """
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise TypeError(f"`amount` must be a number. Received: amount={amount!r}")
    layer = _output_dense(student)
    class_index = _check_class_index(class_index, layer.units)
    bias = keras.ops.convert_to_numpy(layer.bias).copy()
    bias[class_index] += amount
    layer.bias.assign(bias)
    return layer


def shift_accuracies(logits, labels, class_index, candidates):
    """Accuracy of `logits` with column `class_index` raised by each candidate.

    Args:
        logits: Array `(N, classes)`.
        labels: Int array `(N,)`.
        class_index: Int, the column to shift.
        candidates: Sequence of floats.

    Returns:
        A float64 array of accuracies, one per candidate.
    """
    logits = np.asarray(logits, "float64")
    labels = np.asarray(labels).reshape(-1)
    if logits.ndim != 2 or len(logits) != len(labels) or not len(labels):
        raise ValueError(
            "`logits` must be (N, classes) with N == len(labels) > 0. "
            f"Received: logits {logits.shape}, labels {labels.shape}"
        )
    class_index = _check_class_index(class_index, logits.shape[1])
    accuracies = []
    for shift in candidates:
        shifted = logits.copy()
        shifted[:, class_index] += shift
        accuracies.append(np.mean(np.argmax(shifted, axis=1) == labels))
    return np.asarray(accuracies)


def choose_bias_shift(student, x_holdout, y_holdout, class_index, candidates):
    """The bias shift of `class_index` maximising accuracy on held-out data.

    Use labelled data the student was not trained on, split from the
    training set; never the test set. Ties go to the smallest shift in
    absolute value (the least change).

    Args:
        student: A `keras.Model` ending in a `Dense` layer; outputs logits,
            or probabilities (then its pre-softmax logits are shifted).
        x_holdout: Held-out inputs.
        y_holdout: Their int labels.
        class_index: Int, the class whose bias would be raised.
        candidates: Non-empty sequence of floats to try (include 0.0 to allow
            "no change").

    Returns:
        The best candidate, a float.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.layers[-1].set_weights([np.eye(2, dtype="float32"),
    ...                                np.zeros(2, "float32")])
    >>> x = np.array([[1.0, 0.0], [1.0, 0.5]], "float32")
    >>> choose_bias_shift(model, x, np.array([0, 1]), 1, [0.0, 0.75, 2.0])
    0.75
    """
    candidates = [float(c) for c in candidates]
    if not candidates:
        raise ValueError("`candidates` must hold at least one shift.")
    from kdkeras import teachers

    _output_dense(student)  # Checks the model can be adjusted at all.
    logits = teachers.logits_model(student).predict(
        x_holdout, batch_size=1024, verbose=0
    )
    accuracies = shift_accuracies(logits, y_holdout, class_index, candidates)
    best = np.flatnonzero(accuracies == accuracies.max())
    return min((candidates[i] for i in best), key=abs)
