"""RESULTS.md as named sections, so each experiment rewrites only its own.

A section is the text between `<!-- begin NAME -->` and `<!-- end NAME -->`.
`update_section` replaces that text (or appends the section) and writes the
file atomically: to a temporary file beside it, read back, then moved.
"""

import os
import re

TITLE = "# Results"


def _markers(name):
    if not re.fullmatch(r"[a-z0-9_-]+", name or ""):
        raise ValueError(
            f"`name` must be lower-case letters, digits, '_' or '-'. "
            f"Received: name={name!r}"
        )
    return f"<!-- begin {name} -->", f"<!-- end {name} -->"


def write_atomically(path, text):
    """Writes `text` to a temporary file beside `path`, verifies, moves it."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.partial")
    with open(temporary, "w", encoding="utf-8") as stream:
        stream.write(text)
    with open(temporary, encoding="utf-8") as stream:
        if stream.read() != text:
            raise OSError(f"could not verify {temporary}")
    os.replace(temporary, path)


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
