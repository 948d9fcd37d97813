"""Every weight of a model is finite, or the model is refused.

A NaN or inf weight is not always visible in the outputs: behind a ReLU, a
NaN kernel entry reaches the outputs or not depending on the CPU's kernels
(with or without AVX-512, with or without XLA). So the weights themselves are
checked wherever `export` takes a model (`export.loading`), and the outcome
no longer depends on the machine.

Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> check_finite_weights(model)
"""

from kdutils.echo import bounded


class NonFiniteWeightsError(ValueError):
    """A model holds a NaN or infinite weight (bad input: exit status 2)."""


def first_non_finite(model):
    """`(variable path, value)` of the first variable with a NaN or inf, else None."""
    import numpy as np

    for variable in model.weights:
        values = np.asarray(variable.numpy())
        if values.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(values)
        if bad.any():
            name = getattr(variable, "path", None) or variable.name
            return name, values[bad].flat[0]
    return None


def check_finite_weights(model, source="model"):
    """Raises `NonFiniteWeightsError` unless every weight of `model` is finite.

    Args:
        model: A `keras.Model`.
        source: What to call it in the error (a path, or `"model"`).

    Raises:
        NonFiniteWeightsError: one line naming the model and the first
            variable holding NaN or inf.
    """
    found = first_non_finite(model)
    if found is not None:
        name, value = found
        raise NonFiniteWeightsError(
            f"`model` must have finite weights. Received: {bounded(source)} "
            f"({bounded(model.name)}), whose variable {bounded(name)} holds {value}"
        )
