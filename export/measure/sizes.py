"""What an artifact costs to ship: its bytes after gzip.

Its bytes on disk are `export.staging.artifact_size_bytes`.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "zeros.bin")
    >>> with open(path, "wb") as handle:
    ...     _ = handle.write(bytes(100_000))
    >>> gzip_size(path) < 1_000
    True
"""

import io
import os
import tarfile
import zlib


def sorted_files(path):
    """`[path]` for a file; a directory's files in a stable (sorted) order."""
    if os.path.isfile(path):
        return [path]
    found = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        found.extend(os.path.join(root, name) for name in sorted(names))
    return found


class GzipCountingSink(io.RawIOBase):
    """A write-only stream that gzips what it is given and only counts bytes."""

    def __init__(self, level):
        # wbits 31: the gzip container.
        self.compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        self.count = 0

    def writable(self):
        return True

    def write(self, data):
        self.count += len(self.compressor.compress(data))
        return len(data)

    def finish(self):
        self.count += len(self.compressor.flush())
        return self.count


def gzip_size(path, level=6):
    """Bytes after gzip (level 6, gzip's default): how much it costs to ship.

    A directory is measured as one gzipped tar stream (`.tar.gz`) of its files
    in sorted order. Nothing is written to disk.
    """
    sink = GzipCountingSink(level)
    if os.path.isfile(path):
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sink.write(block)
        return sink.finish()
    with tarfile.open(fileobj=sink, mode="w|") as tar:
        for name in sorted_files(path):
            tar.add(name, arcname=os.path.relpath(name, path), recursive=False)
    return sink.finish()
