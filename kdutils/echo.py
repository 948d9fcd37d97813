"""Bounded echo: user input shown in an error message, never more than a line.

Every error of `export` that repeats what the user gave (a flag value, a
budget key or value, a path, a field read from a file) passes it through
`bounded`, so that a megabyte string or a deeply nested value becomes a short
excerpt, and a value holding newlines stays on one line.

Example:
    >>> bounded("x" * 1000, limit=12)
    'xxxxxx…xxxxxx (1000 characters)'
    >>> bounded("/data/" + "d" * 200 + "/index.json", limit=24)
    '/data/dddddd…d/index.json (217 characters)'
    >>> bounded(["a", "b"], quote=True)
    "['a', 'b']"
"""

import reprlib

DEFAULT_LIMIT = 120

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxdict = 6
_REPR.maxstring = _REPR.maxother = DEFAULT_LIMIT


def bounded(value, limit=DEFAULT_LIMIT, quote=False):
    """`value` as at most about `limit` characters, on one line.

    Args:
        value: What the user gave: a string is shown as it is (its
            whitespace runs, newlines included, as one space) unless `quote`;
            any other value as a `repr` whose nesting and lengths are bounded
            before it is built (a huge list is never rendered in full).
        limit: Characters kept; a longer string keeps its start and its end
            (a path's file name) and says how long it was; another value is
            cut after `limit` characters.
        quote: Show a string as its `repr` (quoted, newlines escaped), which
            tells `"5"` from `5`.

    Returns:
        A string of at most `limit` characters plus a short suffix.
    """
    if isinstance(value, str):
        text = (
            repr(value[: limit + 2]) if quote else " ".join(value[: 4 * limit].split())
        )
        if len(value) <= limit and len(text) <= limit:
            return text
        # The start and the end: a path's file name stays in the message.
        head, tail = value[: limit // 2], value[len(value) - (limit - limit // 2) :]
        if quote:
            text = repr(head + "…" + tail)
        else:
            text = " ".join(head.split()) + "…" + " ".join(tail.split())
        return f"{text} ({len(value)} characters)"
    text = " ".join(_REPR.repr(value).split())
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…"
