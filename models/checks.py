"""Argument checks shared by the model builders (one-line, named errors)."""

import numbers


def check_units(name, units, allow_empty=False):
    """Returns `units` as a tuple of positive ints or raises a one-line error."""
    if isinstance(units, numbers.Integral) and not isinstance(units, bool):
        units = (units,)
    try:
        units = tuple(units)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a sequence of positive ints. Received: {name}={units!r}"
        ) from None
    if (not units and not allow_empty) or not all(
        isinstance(u, numbers.Integral) and not isinstance(u, bool) and u > 0
        for u in units
    ):
        raise ValueError(
            f"`{name}` must be a non-empty sequence of positive ints. "
            f"Received: {name}={units!r}"
        )
    return tuple(int(u) for u in units)


def check_rate(name, rate):
    """Returns `rate` as a float in [0, 1) or raises a one-line error."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(
            f"`{name}` must be a float in [0, 1). Received: {name}={rate!r}"
        )
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={rate!r}")
    return float(rate)


def check_positive_int(name, value, minimum=1):
    """Returns `value` as an int >= `minimum` or raises a one-line error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}"
        )
    if value < minimum:
        raise ValueError(
            f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}"
        )
    return int(value)


def check_input_shape(input_shape):
    """Returns `input_shape` as a `(height, width, channels)` tuple."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise TypeError(
            "`input_shape` must be (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        ) from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            "`input_shape` must be (height, width, channels) of positive "
            f"ints. Received: input_shape={input_shape!r}"
        )
    return shape


def check_seed(seed):
    """Returns `seed` (None or a non-negative int) or raises."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"`seed` must be None or an int >= 0. Received: seed={seed!r}")
    if seed < 0:
        raise ValueError(f"`seed` must be None or an int >= 0. Received: seed={seed!r}")
    return int(seed)


def layer_seed(seed, offset):
    """A distinct, reproducible seed per random layer (None stays None)."""
    return None if seed is None else seed + offset
