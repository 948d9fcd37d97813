"""Atomic outputs: build beside the destination, check, then rename into place.

An export is written to a hidden temporary path in the destination's folder
(same file system, so `os.replace` is an atomic rename), verified there, and
only then moved to the requested path. If anything fails, the temporary path
is removed and the destination is left exactly as it was: a user never finds
a half-written or unverified artifact at `--output`.

Directories (SavedModels) cannot be swapped atomically over an existing,
non-empty directory; with `overwrite=True` the old directory is first renamed
aside, the new one renamed in, and the old one deleted (restored if the rename
fails).

Staging names are `.NAME.partial-PID-HEX` (and `.NAME.old-PID-HEX` for a
directory moved aside), PID being the exporting process. A process killed
with `kill -9` cannot clean up, so every new `StagedOutput` for NAME first
removes the staging paths of NAME whose process is no longer running
(`remove_stale_staging`). Only names of exactly this pattern are touched, and
never one whose PID is alive (another export in progress). The mechanics
(names, renames, removal) are `kdutils.staging`'s.
"""

import errno
import os
import re
import tempfile

from kdutils.staging import process_alive
from kdutils.staging import remove_path
from kdutils.staging import replace_path
from kdutils.staging import temporary_sibling

STAGING_TAGS = ("partial", "old")


class OutputExistsError(FileExistsError):
    """The output path exists and overwriting was not requested."""


def check_output_path(path, overwrite=False, directory=False, flag="--output"):
    """Checks that `path` may be written.

    Args:
        path: Destination path (file or directory).
        overwrite: Whether an existing destination may be replaced.
        directory: Whether the artifact is a directory (SavedModel).
        flag: Name of the argument, used in error messages.

    Returns:
        The absolute destination path.

    Raises:
        OutputExistsError: `path` exists and `overwrite` is False.
        ValueError: the parent folder is missing, or `path` is of the wrong
            kind (a directory where a file is expected, or the reverse).
    """
    if not path:
        raise ValueError(f"`{flag}` must be an output path. Received: {flag}={path!r}")
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        problem = "is not a folder" if os.path.lexists(parent) else "does not exist"
        raise ValueError(
            f"`{flag}` must be in an existing folder. "
            f"Received: {flag}={path} (parent folder {parent} {problem})"
        )
    if os.path.lexists(path):
        if directory and not os.path.isdir(path):
            raise ValueError(
                f"`{flag}` must be a directory path. "
                f"Received: {flag}={path}, which is an existing file"
            )
        if not directory and os.path.isdir(path):
            raise ValueError(
                f"`{flag}` must be a file path. "
                f"Received: {flag}={path}, which is an existing directory"
            )
        if not overwrite:
            raise OutputExistsError(
                f"`{flag}` must not exist unless --overwrite is given. "
                f"Received: {flag}={path}, which already exists"
            )
    check_writable_folder(parent, path, flag)
    return path


def check_writable_folder(folder, path, flag="--output"):
    """Raises a one-line `PermissionError` unless a file can be created in `folder`.

    A probe file is created and removed: permission bits alone miss
    read-only mounts, and are ignored for root.
    """
    try:
        handle, probe = tempfile.mkstemp(prefix=".kdkeras-probe-", dir=folder)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise PermissionError(
            f"`{flag}` must be in a writable folder. Received: {flag}={path} "
            f"(cannot create files in {folder}: {reason})"
        ) from None
    os.close(handle)
    os.remove(probe)


def staging_pattern(name):
    """Regex of the staging names of `name`: group 1 is the PID."""
    tags = "|".join(STAGING_TAGS)
    return re.compile(rf"^\.{re.escape(name)}\.(?:{tags})-(\d+)-[0-9a-f]{{8}}$")


def remove_stale_staging(path):
    """Removes staging leftovers of `path` from exports that died.

    A name `.NAME.partial-PID-HEX` / `.NAME.old-PID-HEX` is removed when
    process PID is not running (an export killed with `kill -9`; PID reuse
    at worst keeps a leftover until the PID is free again). Nothing else in
    the folder is touched.

    Args:
        path: The destination whose leftovers are removed.

    Returns:
        The removed paths, sorted.
    """
    parent, name = os.path.split(os.path.abspath(os.fspath(path)))
    pattern = staging_pattern(name)
    removed = []
    try:
        entries = os.listdir(parent)
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry)
        if not match:
            continue
        candidate = os.path.join(parent, entry)
        pid = int(match.group(1))
        if pid != os.getpid() and not process_alive(pid):
            try:
                remove_path(candidate)
            except OSError as error:
                if error.errno != errno.ENOENT:
                    continue
            removed.append(candidate)
    return sorted(removed)


class StagedOutput:
    """A temporary path beside `path` that becomes `path` on `commit()`.

    Use as a context manager: whatever is left at `temporary_path` when the
    block exits (an exception, or no `commit()`) is deleted.

    Args:
        path: Final destination.
        overwrite: Whether an existing destination may be replaced.
        directory: Whether the artifact is a directory.
        flag: Argument name for error messages.

    Example:

    >>> import os
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> with StagedOutput(path) as staged:
    ...     with open(staged.temporary_path, "wb") as f:
    ...         _ = f.write(b"verified bytes")
    ...     os.path.exists(path)  # nothing at the destination until commit
    ...     staged.commit()
    False
    '...model.onnx'
    >>> os.listdir(os.path.dirname(path))
    ['model.onnx']
    """

    def __init__(self, path, overwrite=False, directory=False, flag="--output"):
        self.path = check_output_path(path, overwrite, directory, flag)
        remove_stale_staging(self.path)
        self.overwrite = overwrite
        self.directory = directory
        self.flag = flag
        self.temporary_path = temporary_sibling(self.path)
        self.committed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        remove_path(self.temporary_path)
        return False

    def commit(self):
        """Moves the verified temporary artifact to the destination."""
        if not os.path.lexists(self.temporary_path):
            raise RuntimeError(
                f"nothing was written at {self.temporary_path} to commit"
            )
        # Re-check: the destination may have appeared while we worked.
        check_output_path(self.path, self.overwrite, self.directory, self.flag)
        replace_path(self.temporary_path, self.path)
        self.committed = True
        return self.path


def write_bytes_atomically(path, data, overwrite=True):
    """Writes `data` to `path` through a temporary sibling and a rename."""
    with StagedOutput(path, overwrite=overwrite) as staged:
        with open(staged.temporary_path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return staged.commit()


def artifact_size_bytes(path):
    """Size of a file, or the total size of the files under a directory."""
    if os.path.isdir(path):
        return sum(
            os.path.getsize(os.path.join(root, name))
            for root, _, names in os.walk(path)
            for name in names
        )
    return os.path.getsize(path)
