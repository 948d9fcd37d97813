"""Argument checks of the experiments (one-line errors in Keras' wording)."""

import numbers


def check_int(name, value, minimum):
    """Returns `value` if it is an int >= `minimum`, else raises `ValueError`.

    Example:

    >>> check_int("epochs", 3, minimum=1)
    3
    >>> check_int("epochs", 2.5, minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: `epochs` must be an int >= 1. Received: epochs=2.5
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        raise ValueError(
            f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}"
        )
    return value
