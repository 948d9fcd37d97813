"""Atomic staged writes: build beside the target, check, rename into place.

A file or folder is written under a hidden staging name in its target's own
folder (same file system, so `os.replace` is an atomic rename), checked
there, and only then renamed onto the target: a reader finds the previous
complete target or the new one, never a partial one. If anything fails, the
staging path is removed and the target is left as it was. A staging name
records the process writing it (`temporary_sibling`), so a leftover of a
process killed with `kill -9` can be told from a live writer's
(`process_alive`).
"""

import os
import secrets
import shutil


def process_alive(pid):
    """Whether a process with this PID exists on this machine.

    Example:

    >>> process_alive(os.getpid()), process_alive(0)
    (True, False)
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Exists, owned by another user.
        return True
    return True


def temporary_sibling(path, tag="partial"):
    """A fresh hidden path beside `path`: `.NAME.TAG-PID-HEX`.

    Args:
        path: The target path.
        tag: What the staging path holds (`"partial"`: the new content,
            `"old"`: a previous folder moved aside).

    Returns:
        An absolute path in `path`'s folder (nothing is created).

    Example:

    >>> name = os.path.basename(temporary_sibling("model.onnx"))
    >>> name.startswith(f".model.onnx.partial-{os.getpid()}-")
    True
    """
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}")


def remove_path(path):
    """Removes a file or a folder tree if it exists (a link, not its target)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def fsync_path(path):
    """Flushes a written file (or a folder's entries) to the storage."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_path(staging, path, aside=None):
    """Renames the complete `staging` file or folder onto `path`.

    A folder cannot be renamed over a non-empty folder: a previous folder
    at `path` is first renamed to `aside`, the new one renamed in (the old
    one restored if that fails), then the old one removed. `path` holds
    the old or the new complete content at any time but the instant
    between the two renames.

    Args:
        staging: The complete new file or folder.
        path: The target.
        aside: Where a previous folder at `path` is moved meanwhile;
            default `temporary_sibling(path, "old")`.
    """
    if os.path.isdir(path) and not os.path.islink(path):
        aside = aside or temporary_sibling(path, "old")
        os.replace(path, aside)
        try:
            os.replace(staging, path)
        except BaseException:
            os.replace(aside, path)
            raise
        remove_path(aside)
    else:
        os.replace(staging, path)


def write_atomically(path, data):
    """Writes `data` to `path` through a checked hidden sibling and a rename.

    The sibling is written, flushed to the storage, read back and compared
    before it is renamed onto `path`; on any failure it is removed and
    `path` is left as it was.

    Args:
        path: The target file (its folder must exist).
        data: `bytes`, or `str` (written as UTF-8).

    Returns:
        `path`.

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.md")
    >>> write_atomically(path, "# Notes\\n") == path, os.listdir(os.path.dirname(path))
    (True, ['notes.md'])
    """
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    staging = temporary_sibling(path)
    try:
        with open(staging, "xb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        with open(staging, "rb") as handle:
            if handle.read() != payload:
                raise OSError(f"could not verify {staging}")
        os.replace(staging, path)
    except BaseException:
        remove_path(staging)
        raise
    return path
