"""A verified sharded soft-target cache, opened and read by example position.

`load_soft_target_shards` opens a cache folder written by
`kdkeras.targets.shards.writer.cache_soft_target_shards` (or merged from workers'
parts) after checking its index and every file's digest
(`kdkeras.targets.shards.index`); `SoftTargetShards` reads the stored
targets of any example positions from the shard files, without holding the
cache in memory.
"""

import os

import numpy as np

from kdkeras.targets import fingerprint
from kdkeras.targets import topk
from kdkeras.targets.memory.cache import StaleSoftTargetsError
from kdkeras.targets.memory.cache import teacher_classes
from kdkeras.targets.shards.files import RowReader
from kdkeras.targets.shards.index import check_classes
from kdkeras.targets.shards.index import check_complete
from kdkeras.targets.shards.index import check_files
from kdkeras.targets.shards.index import check_stream_matches
from kdkeras.targets.shards.index import read_index
from kdkeras.targets.shards.index import shown
from kdkeras.targets.shards.stream import check_stream


class SoftTargetShards:
    """A verified sharded soft-target cache, read by example position.

    Returned by `cache_soft_target_shards`, `load_soft_target_shards` and
    `merge_soft_target_shards`; fed to `soft_target_shards_dataset`.

    Attributes:
        path: The cache folder.
        index: The parsed `index.json`.
        examples, classes, dtype, top_k, temperature, examples_per_shard:
            As recorded in the index.
    """

    def __init__(self, path, index, verified_for=None):
        self._row_readers = None
        self.path = path
        self.index = index
        self.examples = index["examples"]
        self.classes = index["classes"]
        self.dtype = index["dtype"]
        self.top_k = index["top_k"]
        self.temperature = index["temperature"]
        self.examples_per_shard = index["examples_per_shard"]
        self.verified_for = verified_for

    def __len__(self):
        return self.examples

    def __repr__(self):
        return (
            f"SoftTargetShards(path={self.path!r}, examples={self.examples}, "
            f"classes={self.classes}, dtype={self.dtype!r}, "
            f"top_k={self.top_k})"
        )

    def _readers(self):
        if self._row_readers is None:
            self._row_readers = [
                {
                    kind: RowReader(os.path.join(self.path, entry["name"]))
                    for kind, entry in shard["files"].items()
                }
                for shard in self.index["shards"]
            ]
            for shard, readers in zip(
                self.index["shards"], self._row_readers, strict=True
            ):
                for reader in readers.values():
                    if reader.shape[0] != shard["rows"]:
                        raise StaleSoftTargetsError(
                            f"Soft-target shard {shown(reader.path)} holds "
                            f"{reader.shape[0]} rows, the index records "
                            f"{shard['rows']}."
                        )
        return self._row_readers

    def stored(self, indices, kinds=None):
        """The stored arrays of these examples, as a dict of NumPy arrays.

        Rows are read from the shard files by position (not memory-mapped,
        so resident memory does not grow with the cache).

        Args:
            indices: int array of example positions in the stream.
            kinds: Optional list of the arrays to read; default the targets.

        Returns:
            `{"logits": ...}`, or for top-k `{"values", "indices", "tail"}`
            (and `"inputs"`, the inputs' fingerprints, if `kinds` asks).
        """
        if kinds is None:
            kinds = ["values", "indices", "tail"] if self.top_k else ["logits"]
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.examples):
            raise ValueError(
                f"`data` yields more examples than the soft-target cache "
                f"{shown(self.path)} holds ({self.examples})."
            )
        readers = self._readers()
        unique, inverse = np.unique(indices, return_inverse=True)
        shard_ids = unique // self.examples_per_shard
        result = {}
        for kind in kinds:
            reader = readers[0][kind]
            result[kind] = np.empty(
                (len(unique),) + tuple(reader.shape[1:]), dtype=reader.dtype
            )
        for shard_id in np.unique(shard_ids):
            selected = np.flatnonzero(shard_ids == shard_id)
            local = unique[selected] - shard_id * self.examples_per_shard
            for kind in kinds:
                result[kind][selected] = readers[shard_id][kind].read(local)
        return {kind: array[inverse] for kind, array in result.items()}

    def close(self):
        """Closes the shard files (they reopen on the next read)."""
        for readers in getattr(self, "_row_readers", None) or []:
            for reader in readers.values():
                reader.close()
        self._row_readers = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # At interpreter exit, or a half-built object.
            pass

    def logits(self, indices):
        """float32 teacher logits `(len(indices), classes)`.

        For a top-k cache: `kdkeras.targets.topk.dense_logits_from_top_k`
        at the cache's temperature.
        """
        stored = self.stored(indices)
        if not self.top_k:
            return stored["logits"].astype(np.float32)
        return topk.dense_logits_from_top_k(
            stored["values"],
            stored["indices"],
            stored["tail"],
            self.classes,
            self.temperature,
        )


def load_soft_target_shards(path, teacher=None, data=None):
    """Opens a sharded cache, checking every file's digest.

    Args:
        path: The folder written by `cache_soft_target_shards` or
            `merge_soft_target_shards`.
        teacher: Optional: the teacher the cache must belong to.
        data: Optional: the stream the cache must have been computed on; it
            is read once (no teacher) to compare every shard's inputs.

    Returns:
        A `SoftTargetShards`.

    Raises:
        StaleSoftTargetsError: naming what is missing, truncated, changed,
            from another teacher, other data or another data order.

    Example:

    >>> import keras, numpy as np, tensorflow as tf, tempfile, os
    >>> from kdkeras.targets.shards.writer import cache_soft_target_shards
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.random.default_rng(0).normal(size=(10, 4)).astype("float32")
    >>> data = tf.data.Dataset.from_tensor_slices(x).batch(4)
    >>> path = os.path.join(tempfile.mkdtemp(), "targets")
    >>> _ = cache_soft_target_shards(teacher, data, path)
    >>> shards = load_soft_target_shards(path, teacher, data)
    >>> shards.logits([0, 9]).shape
    (2, 3)
    """
    path = os.fspath(path)
    index = read_index(path)
    if index["shard"] is not None:
        i, n = index["shard"]
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {shown(path)} holds the shards of "
            f"worker {i} of {n} only: join the workers' folders with "
            "merge_soft_target_shards."
        )
    check_complete(path, index)
    check_files(path, index)
    if teacher is not None:
        if fingerprint.teacher_fingerprint(teacher) != index["teacher"]:
            raise StaleSoftTargetsError(
                f"Soft-target shard cache `path` {shown(path)} is stale: the "
                "teacher's architecture or weights changed."
            )
        check_classes(path, index, teacher_classes(teacher))
    if data is not None:
        check_stream(data)
        check_stream_matches(path, index, data)
    return SoftTargetShards(path, index, verified_for=data)
