"""RESULTS.md as named sections, so each experiment rewrites only its own.

A section is the text between `<!-- begin NAME -->` and `<!-- end NAME -->`.
`update_section` replaces that text (or appends the section) and writes the
file atomically (`kdutils.staging.write_atomically`): to a temporary file
beside it, read back, then moved.
"""

import os
import re
import statistics

from kdutils.staging import write_atomically

TITLE = "# Results"


def _markers(name):
    if not re.fullmatch(r"[a-z0-9_-]+", name or ""):
        raise ValueError(
            f"`name` must be lower-case letters, digits, '_' or '-'. "
            f"Received: name={name!r}"
        )
    return f"<!-- begin {name} -->", f"<!-- end {name} -->"


def mean_std(values, digits=0, scale=1.0):
    """`"mean ± std"` (sample std) of `values * scale`; the mean alone for one.

    Args:
        values: The per-seed figures (at least one).
        digits: Decimals shown.
        scale: Factor applied first (100 shows fractions as percentages).

    Returns:
        The text of a table cell.

    Example:

    >>> mean_std([100, 104], 1), mean_std([7]), mean_std([0.5, 0.7], 2, scale=100)
    ('102.0 ± 2.8', '7', '60.00 ± 14.14')
    """
    scaled = [scale * value for value in values]
    text = f"{statistics.fmean(scaled):.{digits}f}"
    if len(scaled) > 1:
        text += f" ± {statistics.stdev(scaled):.{digits}f}"
    return text


def update_section(path, name, text):
    """Replaces (or appends) section `name` of the markdown file at `path`.

    Args:
        path: The markdown file; created with a title when missing.
        name: Section name (lower case, digits, `_`, `-`).
        text: The section's markdown.

    Returns:
        The file's new content.

    Example:

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "RESULTS.md")
    >>> _ = update_section(path, "table", "old")
    >>> _ = update_section(path, "other", "kept")
    >>> content = update_section(path, "table", "new")
    >>> "old" in content, "new" in content, "kept" in content
    (False, True, True)
    """
    begin, end = _markers(name)
    block = f"{begin}\n{text.strip()}\n{end}\n"
    existing = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as stream:
            existing = stream.read()
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(existing):
        content = pattern.sub(lambda match: block, existing, count=1)
    else:
        content = (
            existing.rstrip() + "\n\n" if existing.strip() else TITLE + "\n\n"
        ) + block
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomically(path, content)
    return content


def read_section(path, name):
    """The text of section `name` in `path`, or None when absent."""
    begin, end = _markers(name)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as stream:
        match = re.search(
            re.escape(begin) + r"\n(.*?)\n" + re.escape(end), stream.read(), re.S
        )
    return match.group(1) if match else None
