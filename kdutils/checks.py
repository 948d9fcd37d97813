"""Checks of int arguments, with Keras' one-line error wording."""

import numbers


def check_positive_int(name, value, minimum=1, maximum=None):
    """Returns `value` as an int in [`minimum`, `maximum`], else raises.

    Args:
        name: The argument's name, for the message.
        value: The value given.
        minimum: The smallest value allowed.
        maximum: The largest value allowed, or `None` for no bound.

    Returns:
        `value` as a Python int.

    Raises:
        TypeError: `value` is not an int (a bool is not one).
        ValueError: `value` is out of range.

    Example:

    >>> check_positive_int("epochs", 2)
    2
    >>> check_positive_int("epochs", 0)
    Traceback (most recent call last):
    ...
    ValueError: `epochs` must be >= 1. Received: epochs=0
    >>> check_positive_int("classes", 1, minimum=2, maximum=10)
    Traceback (most recent call last):
    ...
    ValueError: `classes` must be an int in [2, 10]. Received: classes=1
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}"
        )
    if maximum is None:
        if value < minimum:
            raise ValueError(
                f"`{name}` must be >= {minimum}. Received: {name}={value!r}"
            )
    elif not minimum <= value <= maximum:
        raise ValueError(
            f"`{name}` must be an int in [{minimum}, {maximum}]. "
            f"Received: {name}={value!r}"
        )
    return int(value)
