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
"""

import os
import secrets
import shutil


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
        raise ValueError(
            f"`{flag}` must be in an existing folder. "
            f"Received: {flag}={path} (parent folder {parent} does not exist)"
        )
    if os.path.lexists(path):
        if not overwrite:
            raise OutputExistsError(
                f"`{flag}` must not exist unless --overwrite is given. "
                f"Received: {flag}={path}, which already exists"
            )
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
    return path


def temporary_sibling(path, tag="partial"):
    """A fresh hidden path in the folder of `path`, e.g. `.x.onnx.partial-3f2a`."""
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.{tag}-{secrets.token_hex(4)}")


def remove_path(path):
    """Removes a file or directory tree if it exists."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


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

    >>> with StagedOutput("model.onnx") as staged:
    ...     write(staged.temporary_path)
    ...     check(staged.temporary_path)
    ...     staged.commit()
    """

    def __init__(self, path, overwrite=False, directory=False, flag="--output"):
        self.path = check_output_path(path, overwrite, directory, flag)
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
        if self.directory and os.path.isdir(self.path):
            aside = temporary_sibling(self.path, tag="old")
            os.replace(self.path, aside)
            try:
                os.replace(self.temporary_path, self.path)
            except BaseException:
                os.replace(aside, self.path)
                raise
            remove_path(aside)
        else:
            os.replace(self.temporary_path, self.path)
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
