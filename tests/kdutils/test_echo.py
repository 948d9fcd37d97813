"""What a user wrote comes back in a message bounded, on one line."""

import pytest

from kdutils.echo import bounded


@pytest.mark.parametrize("quote", [False, True])
def test_a_megabyte_string_is_cut_and_says_how_long_it_was(quote):
    text = bounded("x" * 1_000_000, limit=80, quote=quote)
    assert len(text) < 120
    assert "1000000 characters" in text


def test_newlines_never_break_the_line():
    assert "\n" not in bounded("a\nb\r\nc" * 10)
    assert "\n" not in bounded("a\nb", quote=True)


def test_a_nested_value_is_never_rendered_in_full():
    value = ["lol"] * 9
    for _ in range(8):  # what a YAML alias bomb expands to: 9**9 leaves
        value = [value] * 9
    text = bounded(value, limit=120)
    assert len(text) <= 125


def test_short_values_are_shown_as_they_are():
    assert bounded("top_k") == "top_k"
    assert bounded("5", quote=True) == "'5'"
    assert bounded(5) == "5"
