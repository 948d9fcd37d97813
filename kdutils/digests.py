"""SHA-256 digests of files and folders, read in chunks (flat memory)."""

import hashlib
import os

_CHUNK = 2**20


def _update(digest, path):
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)


def file_digest(path):
    """SHA-256 of a file's bytes, or of a folder's files (names and bytes).

    A folder's digest covers every file below it, in sorted order, each as
    its relative name, a NUL byte, then its bytes.

    Args:
        path: A file or folder.

    Returns:
        The hex digest.

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "empty")
    >>> open(path, "wb").close()
    >>> file_digest(path)[:16]
    'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    if not os.path.isdir(path):
        _update(digest, path)
        return digest.hexdigest()
    for root, folders, files in os.walk(path):
        folders.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode() + b"\0")
            _update(digest, full)
    return digest.hexdigest()
