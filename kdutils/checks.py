"""Checks of number arguments, with Keras' one-line error wording."""

import math
import numbers

from kdutils.echo import bounded


def check_number(name, value, in_range, expected, integral=False, expected_type=None):
    """Returns `value` if it is a number in range, else raises a one-line error.

    The one shape of the number checks: a `TypeError` for what is not a
    number (a bool is not one), a `ValueError` for a number out of range,
    both worded "`name` must be <expected>. Received: name=<value>".

    Args:
        name: The argument's name, for the message.
        value: The value given.
        in_range: Predicate on a number: whether it is allowed (NaN must
            fail it to be refused).
        expected: What the value must be, for the message, e.g.
            `"a finite number >= 0"`.
        integral: Whether only ints count as numbers (else any real number).
        expected_type: What the `TypeError` says instead of `expected`.

    Returns:
        `value`, unchanged.

    Raises:
        TypeError: `value` is not a number (an int with `integral`).
        ValueError: `in_range(value)` is false.

    Example:

    >>> check_number("beta", 8, lambda v: v >= 0, "a number >= 0")
    8
    >>> check_number("beta", "8", lambda v: v >= 0, "a number >= 0")
    Traceback (most recent call last):
    ...
    TypeError: `beta` must be a number >= 0. Received: beta='8'
    """
    kind = numbers.Integral if integral else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(
            f"`{name}` must be {expected_type or expected}. "
            f"Received: {name}={bounded(value, quote=True)}"
        )
    if not in_range(value):
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value}")
    return value


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
    if maximum is None:
        expected, upper = f">= {minimum}", math.inf
    else:
        expected, upper = f"an int in [{minimum}, {maximum}]", maximum
    value = check_number(
        name,
        value,
        lambda v: minimum <= v <= upper,
        expected,
        integral=True,
        expected_type=f"an int >= {minimum}",
    )
    return int(value)
