"""kdutils.checks: the one int-range check, its error types and wording."""

import numpy as np
import pytest

from kdutils.checks import check_positive_int


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (1, {}, 1),
        (np.int64(7), {}, 7),
        (0, {"minimum": 0}, 0),
        (10, {"maximum": 10}, 10),
    ],
)
def test_ints_in_range_come_back_as_python_ints(value, kwargs, expected):
    result = check_positive_int("n", value, **kwargs)
    assert result == expected and type(result) is int


@pytest.mark.parametrize("value", [True, 2.0, "3", None, [1]])
def test_what_is_not_an_int_is_a_type_error(value):
    with pytest.raises(TypeError, match=r"^`n` must be an int >= 1\. Received: n="):
        check_positive_int("n", value)


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (0, {}, "`n` must be >= 1. Received: n=0"),
        (-3, {"minimum": 2}, "`n` must be >= 2. Received: n=-3"),
        (11, {"maximum": 10}, "`n` must be an int in [1, 10]. Received: n=11"),
    ],
)
def test_out_of_range_is_a_one_line_value_error(value, kwargs, message):
    with pytest.raises(ValueError) as raised:
        check_positive_int("n", value, **kwargs)
    assert str(raised.value) == message
