"""Argument checks shared by the model builders (one-line, named errors)."""

import numbers

from kdutils.checks import check_number
from kdutils.checks import check_positive_int

#: Largest width (units, filters, classes) a builder accepts: wider layers of
#: these small-image models are a typo, and their weights would not fit in
#: memory (an out-of-memory error instead of a one-line one).
MAX_WIDTH = 65536


def check_units(name, units, allow_empty=False):
    """Returns `units` as a tuple of ints in [1, MAX_WIDTH] or raises a
    one-line error. An unordered collection (set, dict) or a string is
    refused: the layers' order would be arbitrary."""
    original = units
    if isinstance(units, numbers.Integral) and not isinstance(units, bool):
        units = (units,)
    if isinstance(units, (str, bytes, set, frozenset, dict)):
        units = None
    try:
        units = tuple(units)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a sequence of positive ints. "
            f"Received: {name}={original!r}"
        ) from None
    if (not units and not allow_empty) or not all(
        isinstance(u, numbers.Integral)
        and not isinstance(u, bool)
        and 0 < u <= MAX_WIDTH
        for u in units
    ):
        raise ValueError(
            f"`{name}` must be a non-empty sequence of ints in [1, {MAX_WIDTH}]. "
            f"Received: {name}={original!r}"
        )
    return tuple(int(u) for u in units)


def check_rate(name, rate):
    """Returns `rate` as a float in [0, 1) or raises a one-line error."""
    rate = check_number(
        name,
        rate,
        lambda r: 0.0 <= r < 1.0,
        "in [0, 1)",
        expected_type="a float in [0, 1)",
    )
    return float(rate)


def check_width(name, value, minimum=1):
    """Returns `value` as an int in [`minimum`, `MAX_WIDTH`] or raises a
    one-line error (`kdutils.checks.check_positive_int`)."""
    return check_positive_int(name, value, minimum, MAX_WIDTH)


def check_input_shape(input_shape):
    """Returns `input_shape` as a `(height, width, channels)` tuple of ints."""
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__"):
        raise TypeError(
            "`input_shape` must be (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        )
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(
        isinstance(d, numbers.Integral)
        and not isinstance(d, bool)
        and 1 <= d <= MAX_WIDTH
        for d in shape
    ):
        raise ValueError(
            "`input_shape` must be (height, width, channels) of ints in "
            f"[1, {MAX_WIDTH}]. Received: input_shape={input_shape!r}"
        )
    return tuple(int(d) for d in shape)


def check_seed(seed):
    """Returns `seed` (None or a non-negative int) or raises."""
    if seed is None:
        return None
    expected = "None or an int >= 0"
    return int(check_number("seed", seed, lambda s: s >= 0, expected, integral=True))


def layer_seed(seed, offset):
    """A distinct, reproducible seed per random layer (None stays None)."""
    return None if seed is None else seed + offset
