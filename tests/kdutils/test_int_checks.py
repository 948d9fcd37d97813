"""kdutils.checks: the one number check and the int-range check built on it."""

import numpy as np
import pytest

from kdutils.checks import check_number
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


@pytest.mark.parametrize("value", [True, "3", None, 1 + 2j])
def test_what_is_not_a_real_number_is_a_type_error_naming_what_is_expected(value):
    with pytest.raises(TypeError) as raised:
        check_number("beta", value, lambda v: v >= 0, "a finite number >= 0")
    assert str(raised.value) == (
        f"`beta` must be a finite number >= 0. Received: beta={value!r}"
    )


@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("-inf")])
def test_a_number_the_predicate_refuses_is_a_value_error(value):
    with pytest.raises(ValueError, match=r"^`beta` must be in \[0, 1\)\. Received"):
        check_number("beta", value, lambda v: 0 <= v < 1, "in [0, 1)")


def test_numbers_in_range_come_back_unchanged_and_ints_can_be_required():
    assert check_number("t", np.float32(0.5), lambda v: v > 0, "> 0") == 0.5
    with pytest.raises(TypeError, match="must be an int. Received: n=2.0"):
        check_number("n", 2.0, lambda v: v > 0, "> 0", True, expected_type="an int")
