"""One pass over a finite, deterministic stream of input batches.

The sharded cache reads its inputs from a `tf.data.Dataset` or a
`keras.utils.PyDataset` of batches. `check_stream` refuses streams that are
infinite or non-deterministic (logits are matched to examples by position);
`StreamPass` reads the stream once, cuts it into shards of consecutive
examples, hashes every shard's inputs (their bytes in stream order, whatever
the batching) and runs the teacher on the segments of the shards it owns.
`row_fingerprints` gives every example's inputs a 64-bit fingerprint, stored
beside its logits, so each example is checked against its logits every time
it is joined with them (`kdkeras.targets.shards.dataset`).
"""

import functools
import hashlib
import json

import keras
import numpy as np

from kdkeras.targets import inputs
from kdkeras.targets import topk

# Default shard size: this many bytes of stored targets per shard file.
SHARD_BYTES = 64 * 2**20
_FINGERPRINT_SEED = 0x6B646B6572617321
_FINGERPRINT_CHUNK = 4096  # words hashed at once (bounds the temporary)


@functools.lru_cache(maxsize=8)
def _coefficients(words):
    rng = np.random.Generator(np.random.PCG64(_FINGERPRINT_SEED))
    return rng.integers(0, 2**64, size=words, dtype=np.uint64) | np.uint64(1)


def row_fingerprints(arrays):
    """A 64-bit fingerprint of every example's inputs (one per row).

    The inputs' bytes, row by row, are read as little-endian 32-bit words
    `w_j` (the last one zero-padded) and hashed as `sum_j c_j * w_j` modulo
    2**64 with fixed random odd coefficients `c_j`: vectorised (one pass over
    the bytes) and bitwise deterministic, so two examples that differ in a
    single word never share a fingerprint, and two different examples share
    one with a chance of about 2**-32 at most.

    Args:
        arrays: The flat input arrays of a batch (`inputs.flat_arrays`),
            with the same rows.

    Returns:
        uint64 NumPy array `(rows,)`.

    Example:

    >>> x = np.arange(12, dtype="float32").reshape(3, 4)
    >>> a, b = row_fingerprints([x]), row_fingerprints([x[::-1]])
    >>> bool((a == b[::-1]).all()), bool(a[0] != a[2])
    (True, True)
    """
    rows = int(arrays[0].shape[0])
    words = []
    for array in arrays:
        flat = np.ascontiguousarray(array).reshape(rows, -1)
        flat = flat.view(np.uint8) if flat.size else np.zeros((rows, 0), np.uint8)
        pad = -flat.shape[1] % 4
        if pad:
            flat = np.pad(flat, ((0, 0), (0, pad)))
        words.append(np.ascontiguousarray(flat).view("<u4"))
    coefficients = _coefficients(sum(w.shape[1] for w in words))
    result = np.zeros(rows, np.uint64)
    offset = 0
    for block in words:
        for start in range(0, block.shape[1], _FINGERPRINT_CHUNK):
            part = block[:, start : start + _FINGERPRINT_CHUNK].astype(np.uint64)
            c = coefficients[offset + start : offset + start + part.shape[1]]
            result += (part * c).sum(axis=1, dtype=np.uint64)
        offset += block.shape[1]
    return result


def is_py_dataset(data):
    return isinstance(data, keras.utils.PyDataset)


def is_tf_dataset(data):
    import tensorflow as tf

    return isinstance(data, tf.data.Dataset)


def check_stream(data):
    """Refuses what is not a finite, deterministic stream of input batches.

    Args:
        data: A `tf.data.Dataset` or `keras.utils.PyDataset` yielding
            batches `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`.

    Raises:
        TypeError: another type (NumPy arrays go to `cache_soft_targets`).
        ValueError: an infinite stream, one of unknown length (e.g. after
            `filter()`: `tf.data.experimental.assert_cardinality` states it),
            or a non-deterministic one.

    Example:

    >>> import tensorflow as tf
    >>> check_stream(tf.data.Dataset.range(4).batch(2))
    >>> check_stream(tf.data.Dataset.range(4).batch(2).repeat())
    Traceback (most recent call last):
    ...
    ValueError: `data` must be a finite dataset (repeat() without a count ...
    """
    import tensorflow as tf

    if is_py_dataset(data):
        if data.num_batches is None:
            raise ValueError(
                "`data` must be finite: a PyDataset whose `num_batches` is "
                "None is infinite. Received: data with num_batches=None"
            )
        return
    if not is_tf_dataset(data):
        raise TypeError(
            "`data` must be a tf.data.Dataset or a keras.utils.PyDataset of "
            "input batches (for NumPy arrays, use cache_soft_targets). "
            f"Received: data={type(data).__name__}"
        )
    if int(data.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError(
            "`data` must be a finite dataset (repeat() without a count "
            "never ends). Received: data with infinite cardinality"
        )
    if int(data.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY):
        raise ValueError(
            "`data` must have a known number of batches (a stream of unknown "
            "length, e.g. repeat().filter(...), may never end): if it is "
            "finite, state its length with "
            "data.apply(tf.data.experimental.assert_cardinality(batches)). "
            "Received: data with unknown cardinality"
        )
    if data.options().deterministic is False:
        raise ValueError(
            "`data` must yield its elements in a deterministic order, since "
            "logits are matched to examples by position. Received: data with "
            "options().deterministic=False"
        )


def inputs_of(element):
    """The `x` of a batch element `x`, `(x,)`, `(x, y)` or `(x, y, w)`."""
    if isinstance(element, tuple):
        if not 1 <= len(element) <= 3:
            raise ValueError(
                "`data` elements must be x, (x,), (x, y) or (x, y, "
                f"sample_weight). Received: a tuple of {len(element)}"
            )
        return element[0]
    return element


def input_batches(data):
    """Yields the `x` of every batch of a checked stream, as NumPy."""
    import tensorflow as tf

    if is_py_dataset(data):
        elements = (data[i] for i in range(data.num_batches))
    else:
        elements = iter(data)
    for element in elements:
        x = inputs_of(element)
        yield tf.nest.map_structure(keras.ops.convert_to_numpy, x)


def batch_rows(batch):
    arrays = inputs.flat_arrays(batch, "data")
    counts = {int(a.shape[0]) if a.ndim else -1 for a in arrays}
    if len(counts) != 1 or -1 in counts:
        raise ValueError(
            "`data` batches must have one row per example in every input. "
            f"Received: a batch with row counts {sorted(counts)}"
        )
    return arrays, counts.pop()


def input_signature(arrays):
    return [[a.dtype.str, list(a.shape[1:])] for a in arrays]


def slice_batch(batch, start, stop):
    import tensorflow as tf

    return tf.nest.map_structure(lambda a: a[start:stop], batch)


class InputDigest:
    """SHA-256 of a shard's inputs: their bytes in stream order, per input."""

    def __init__(self, signature):
        self.signature = signature
        self.hashes = [hashlib.sha256() for _ in signature]

    def update(self, arrays):
        for digest, array in zip(self.hashes, arrays, strict=True):
            array = np.ascontiguousarray(array)
            if array.size:
                digest.update(memoryview(array.reshape(-1)).cast("B"))

    def hexdigest(self):
        combined = hashlib.sha256(json.dumps(self.signature).encode())
        for digest in self.hashes:
            combined.update(digest.hexdigest().encode())
        return combined.hexdigest()


def stream_fingerprint(signature, input_digests):
    digest = hashlib.sha256(json.dumps(signature).encode())
    for shard_digest in input_digests:
        digest.update(shard_digest.encode())
    return digest.hexdigest()


class StreamPass:
    """One pass over the stream: shard input digests, and the owned logits.

    Args:
        data: A checked stream.
        examples_per_shard: Rows per shard, or `None` for the default
            (needs `model`).
        model: The teacher's logits model, or `None` to only hash inputs.
        dtype, top_k: The storage options (for the default shard size).
    """

    def __init__(self, data, examples_per_shard, model=None, dtype=None, top_k=None):
        self.data = data
        self.examples_per_shard = examples_per_shard
        self.model = model
        self.dtype = dtype
        self.top_k = top_k
        self.classes = None

    def run(self, owned=lambda shard_id: False, writer=None):
        """Streams `data`; owned shards' logits go to `writer` as they come.

        `writer.append(shard_id, logits, fingerprints)` receives each owned
        segment's logits and its inputs' `row_fingerprints`, and `writer.finish(shard_id)` follows the shard's last one,
        so no more than one batch of logits is held in memory.

        Returns:
            `(signature, input_digests, examples)`.
        """
        signature = None
        digests = []
        current = None
        examples = 0
        for batch in input_batches(self.data):
            arrays, count = batch_rows(batch)
            if signature is None:
                signature = input_signature(arrays)
            elif input_signature(arrays) != signature:
                raise ValueError(
                    "`data` batches must all have the same input dtypes and "
                    f"per-example shapes. Received: {input_signature(arrays)} "
                    f"after {signature}"
                )
            if count == 0:
                continue
            if self.model is not None and self.classes is None:
                self._start(slice_batch(batch, 0, 1))
            rows = self.examples_per_shard
            segments = []  # (shard id, start, stop) within the batch
            start = 0
            while start < count:
                shard_id = (examples + start) // rows
                stop = min(count, (shard_id + 1) * rows - examples)
                segments.append((shard_id, start, stop))
                start = stop
            # The teacher runs on each (batch, shard) segment, so a worker
            # computing some shards gives bitwise the same logits as one
            # process computing them all.
            for shard_id, start, stop in segments:
                if current is None:
                    current = InputDigest(signature)
                current.update([a[start:stop] for a in arrays])
                if self.model is not None and owned(shard_id):
                    whole = start == 0 and stop == count
                    segment = batch if whole else slice_batch(batch, start, stop)
                    writer.append(
                        shard_id,
                        self._logits(segment),
                        row_fingerprints([a[start:stop] for a in arrays]),
                    )
                if (examples + stop) % rows == 0:
                    digests.append(current.hexdigest())
                    if self.model is not None and owned(shard_id):
                        writer.finish(shard_id)
                    current = None
            examples += count
        if examples == 0:
            raise ValueError(
                "`data` must yield at least one example. Received: an empty stream"
            )
        if current is not None:
            digests.append(current.hexdigest())
            if self.model is not None and owned(len(digests) - 1):
                writer.finish(len(digests) - 1)
        return signature, digests, examples

    def _logits(self, batch):
        logits = self.model.predict_on_batch(batch)
        return np.asarray(logits, dtype=np.float32)

    def _start(self, one_example):
        """Learns the classes (one forward pass) and the shard size."""
        inputs.check_model_inputs(self.model, one_example, "data")
        logits = self._logits(one_example)
        if logits.ndim != 2:
            raise ValueError(
                "`teacher` must output (batch, classes) logits. Received: "
                f"an output of shape {logits.shape}"
            )
        self.classes = int(logits.shape[1])
        if self.top_k:
            topk.check_top_k(self.top_k, self.classes)
        if self.examples_per_shard is None:
            itemsize = np.dtype(self.dtype).itemsize
            if self.top_k:
                row_bytes = self.top_k * (itemsize + 4) + 4
            else:
                row_bytes = self.classes * itemsize
            self.examples_per_shard = max(1, SHARD_BYTES // row_bytes)
