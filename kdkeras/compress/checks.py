"""Argument checks of the compression functions (one-line, named errors)."""

import numbers


def check_positive_int(name, value):
    """Returns `value` as an int >= 1, else raises a one-line error.

    Example:

    >>> check_positive_int("epochs", 2)
    2
    >>> check_positive_int("epochs", 0)
    Traceback (most recent call last):
    ...
    ValueError: `epochs` must be >= 1. Received: epochs=0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int. Received: {name}={value!r}")
    if value < 1:
        raise ValueError(f"`{name}` must be >= 1. Received: {name}={value}")
    return int(value)


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
