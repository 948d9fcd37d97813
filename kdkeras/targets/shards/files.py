"""Shard files: `.npy` arrays written row by row and read by position.

A shard of the sharded cache is one or more plain `.npy` files (memory-
mappable with `np.load(..., mmap_mode="r")`). `ShardWriter` appends each
batch's stored targets as the teacher produces them, so memory holds one
batch, not a shard; `RowReader` reads rows by position with `os.pread`, so
the pages read do not stay in the process's resident memory.
"""

import io
import os

import numpy as np

from kdkeras.targets import inputs
from kdkeras.targets import topk
from kdkeras.targets.memory.cache import StaleSoftTargetsError
from kdkeras.targets.memory.cache import storable_logits
from kdutils.digests import file_digest


def shard_file_name(shard_id, kind):
    """The file name of one array of a shard.

    Example:

    >>> shard_file_name(3, "logits")
    'shard-00003.logits.npy'
    """
    return f"shard-{shard_id:05d}.{kind}.npy"


def npy_header(dtype, shape):
    """The `.npy` (version 1.0) header of a C-order array.

    Padded to a multiple of 64 bytes, so a shard's header for its full row
    count and for its actual rows have the same length.

    Example:

    >>> len(npy_header("float32", (65536, 10))), len(npy_header("float32", (3, 10)))
    (128, 128)
    """
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": tuple(shape),
        },
    )
    return header.getvalue()


class ShardWriter:
    """Writes each shard's `.npy` files row by row as the logits come.

    A file is opened with the header of a full shard; when the shard ends
    the header is rewritten with its actual rows (the same length: `.npy`
    headers are padded to 64 bytes), so memory holds one batch, not a shard.
    """

    def __init__(self, folder, dtype, top_k, temperature, stream):
        self.folder = folder
        self.dtype = dtype
        self.top_k = top_k
        self.temperature = temperature
        self.stream = stream
        self.entries = []
        self.open = {}  # kind -> (file, row shape, dtype)
        self.rows = 0

    def append(self, shard_id, logits, fingerprints):
        """Appends one segment's stored targets and its inputs' fingerprints."""
        stored = stored_arrays(logits, self.dtype, self.top_k, self.temperature)
        stored["inputs"] = np.asarray(fingerprints, dtype=np.uint64)
        for kind, array in stored.items():
            if kind not in self.open:
                name = os.path.join(self.folder, shard_file_name(shard_id, kind))
                file = open(name, "wb")
                shape = (self.stream.examples_per_shard,) + array.shape[1:]
                file.write(npy_header(array.dtype, shape))
                self.open[kind] = (file, array.shape[1:], array.dtype)
            file = self.open[kind][0]
            file.write(np.ascontiguousarray(array).tobytes())
        self.rows += len(logits)

    def finish(self, shard_id):
        entry = {"id": shard_id, "rows": self.rows, "files": {}}
        for kind, (file, row_shape, dtype) in sorted(self.open.items()):
            full = npy_header(dtype, (self.stream.examples_per_shard,) + row_shape)
            actual = npy_header(dtype, (self.rows,) + row_shape)
            if len(actual) != len(full):
                raise ValueError(
                    f"Cannot finish shard {shard_id}: its .npy header changes "
                    "length. Received: examples_per_shard="
                    f"{self.stream.examples_per_shard}"
                )
            file.seek(0)
            file.write(actual)
            file.flush()
            os.fsync(file.fileno())
            file.close()
            name = os.path.basename(file.name)
            entry["files"][kind] = {
                "name": name,
                "sha256": file_digest(file.name),
            }
        self.entries.append(entry)
        self.open = {}
        self.rows = 0

    def close(self):
        for file, _, _ in self.open.values():
            file.close()
        self.open = {}


def read_npy_header(path):
    """`(shape, dtype, data_offset)` of a `.npy` file, from its header.

    Raises:
        StaleSoftTargetsError: not a C-order `.npy` file.
    """
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(file)
            else:
                header = np.lib.format.read_array_header_2_0(file)
            offset = file.tell()
    except (OSError, ValueError) as error:
        raise StaleSoftTargetsError(
            f"Soft-target shard {path!r} is not a .npy file ({type(error).__name__})."
        ) from None
    shape, fortran_order, dtype = header
    if fortran_order:
        raise StaleSoftTargetsError(f"{path!r} is in Fortran order.")
    return tuple(shape), dtype, offset


class RowReader:
    """Reads rows of one `.npy` shard file by position (no memory map, so
    the pages read are not kept in the process's resident memory)."""

    def __init__(self, path):
        self.shape, self.dtype, self.offset = read_npy_header(path)
        self.row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        self.path = path
        self.descriptor = None

    def read(self, rows):
        """The rows at these sorted, unique positions."""
        if self.descriptor is None:
            self.descriptor = os.open(self.path, os.O_RDONLY)
        result = np.empty((len(rows),) + tuple(self.shape[1:]), self.dtype)
        flat = result.reshape(len(rows), -1).view(np.uint8)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for run in np.split(np.arange(len(rows)), breaks):
            if not run.size:
                continue
            first, count = int(rows[run[0]]), len(run)
            data = os.pread(
                self.descriptor,
                count * self.row_bytes,
                self.offset + first * self.row_bytes,
            )
            if len(data) != count * self.row_bytes:
                raise StaleSoftTargetsError(
                    f"Soft-target shard {self.path!r} is truncated."
                )
            flat[run[0] : run[0] + count] = np.frombuffer(data, np.uint8).reshape(
                count, -1
            )
        return result

    def close(self):
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None


def stored_arrays(logits, dtype, top_k, temperature):
    """The arrays a shard stores for these float32 logits."""
    inputs.check_finite_logits(logits)
    if not top_k:
        return {"logits": storable_logits(logits, dtype)}
    values, indices, tail = topk.top_k_targets(logits, top_k, temperature)
    return {
        "values": storable_logits(values, dtype, temperature),
        "indices": indices,
        "tail": tail,
    }
