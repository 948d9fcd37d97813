"""Soft targets at scale: a streamed, sharded, memory-mappable cache.

`cache_soft_targets` holds `x` and the logits in memory. For inputs that come
as a stream (`tf.data.Dataset`, `keras.utils.PyDataset`, e.g. from
`keras.utils.image_dataset_from_directory` or TFRecords) and may not fit in
memory, `cache_soft_target_shards` runs the teacher over the stream batch by
batch and writes the logits to a folder:

    path/
      index.json                  fingerprints, layout, per-shard digests
      shard-00000.logits.npy      (rows, classes) float32 or float16
      shard-00000.inputs.npy      (rows,) uint64 fingerprints of the inputs
      ...                         (top-k: .values.npy, .indices.npy, .tail.npy)

Each shard holds `examples_per_shard` consecutive examples (the last one
fewer) and is a plain `.npy` file (`np.load(..., mmap_mode="r")` maps it).
The cache is written row by row as the teacher runs and read back row by
row by position, so memory stays flat however long the stream is. The folder
is written under a hidden name beside `path` and renamed when complete:
`path` never holds a partial cache.

The index (`kdkeras.targets.shards.index`) records the teacher's fingerprint,
the SHA-256 of every shard file and of every shard's INPUTS (their bytes, in
stream order), so a cache whose files are missing, truncated or edited, or
that belongs to another data order, is detected (`StaleSoftTargetsError`)
and never used; `load_soft_target_shards` (`kdkeras.targets.shards.reader`)
opens a cache after these checks. The stream must
be finite and deterministic: an infinite dataset (`repeat()` without a count),
one of unknown length (`filter()`, `TFRecordDataset`: state it with
`tf.data.experimental.assert_cardinality`) or one with
`options().deterministic == False` is refused. Every example's inputs are
also fingerprinted beside its targets, and the training dataset checks them
as it joins them, every epoch: a stream that changes order later is stopped.

`kdkeras.targets.shards.dataset.soft_target_shards_dataset` streams the
same inputs again and joins every example with its logits by its position in
the stream, shuffles within windows that span shard boundaries, batches and
prefetches: the batches are `(x, {LABELS_KEY: y, TEACHER_LOGITS_KEY: t})`, as
from the in-memory cache.

Many classes: `top_k=K` stores the K largest logits (float16 by default),
their int32 class indices and the log-sum-exp of the other classes at the
distillation `temperature` (`kdkeras.targets.topk`).

Many workers: `shard=(i, n)` computes only the shards `j` with
`j % n == i` (the stream is read in full, the teacher runs on 1/n of it);
`merge_soft_target_shards` (`kdkeras.targets.shards.merge`) joins the n
folders into the cache one process would have written, byte for byte. `shard="auto"` does both steps on the
workers `TF_CONFIG` lists (as for `MultiWorkerMirroredStrategy`, e.g. under
`python -m kdkeras.distribute.launch`): worker `i` of `n` writes `path.i-of-n`, the
chief waits for every part and merges them into `path`, the other workers
wait for the merged cache (`path` must be on storage every worker shares).
"""

import logging
import os

import numpy as np

from kdkeras import teachers
from kdkeras.distribute.strategy import is_chief
from kdkeras.distribute.strategy import num_workers
from kdkeras.distribute.strategy import parse_tf_config
from kdkeras.losses import check_temperature
from kdkeras.targets import files
from kdkeras.targets import fingerprint
from kdkeras.targets.memory.cache import StaleSoftTargetsError
from kdkeras.targets.memory.cache import check_dtype
from kdkeras.targets.memory.cache import check_on_stale
from kdkeras.targets.memory.cache import teacher_classes
from kdkeras.targets.shards.files import ShardWriter
from kdkeras.targets.shards.index import FORMAT
from kdkeras.targets.shards.index import FORMAT_VERSION
from kdkeras.targets.shards.index import check_classes
from kdkeras.targets.shards.index import check_complete
from kdkeras.targets.shards.index import check_files
from kdkeras.targets.shards.index import check_stream_matches
from kdkeras.targets.shards.index import check_target_folder
from kdkeras.targets.shards.index import read_index
from kdkeras.targets.shards.index import shown
from kdkeras.targets.shards.index import write_index
from kdkeras.targets.shards.merge import is_ready
from kdkeras.targets.shards.merge import merge_soft_target_shards
from kdkeras.targets.shards.merge import wait_until
from kdkeras.targets.shards.merge import worker_of
from kdkeras.targets.shards.reader import SoftTargetShards
from kdkeras.targets.shards.reader import load_soft_target_shards
from kdkeras.targets.shards.stream import StreamPass
from kdkeras.targets.shards.stream import check_stream
from kdkeras.targets.shards.stream import stream_fingerprint
from kdutils.checks import check_positive_int

logger = logging.getLogger(__name__)


def check_shard(shard):
    """Checks `shard`: `None`, or `(i, n)` with `0 <= i < n`."""
    if shard is None:
        return None
    if (
        not isinstance(shard, (tuple, list))
        or len(shard) != 2
        or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shard
        )
        or not 0 <= shard[0] < shard[1]
    ):
        raise ValueError(
            "`shard` must be None, 'auto' or (i, n) with 0 <= i < n. "
            f"Received: shard={shown(shard)}"
        )
    return (int(shard[0]), int(shard[1]))


def cache_soft_target_shards(
    teacher,
    data,
    path,
    dtype=None,
    top_k=None,
    temperature=None,
    examples_per_shard=None,
    shard=None,
    on_stale="recompute",
):
    """Streams the teacher over `data` once; caches its logits in shards.

    If `path` holds a complete, intact cache for this teacher, these
    options and this stream (every shard's inputs compared), it is returned
    and the teacher does not run. Otherwise the logits are computed batch by
    batch and written to a hidden folder beside `path`, which replaces
    `path` when complete. A mismatching cache is recomputed (with
    `on_stale="recompute"`) or raises `StaleSoftTargetsError`.

    Args:
        teacher: A `keras.Model` outputting logits or probabilities.
        data: A finite, deterministic `tf.data.Dataset` or
            `keras.utils.PyDataset` yielding batches `x`, `(x,)`, `(x, y)` or
            `(x, y, sample_weight)`; only `x` is read.
        path: The cache folder (created or replaced).
        dtype: Storage dtype of the logits, `"float32"` or `"float16"`;
            default float32, and float16 with `top_k`. float16 is refused
            (nothing written) for logits so large that its spacing could move
            a probability by more than 1% at `temperature` (at 1 without
            top-k): `kdkeras.targets.memory.cache.storable_logits`.
        top_k: Optional int: store only the K largest logits per example,
            their classes and the other classes' log-sum-exp at
            `temperature` (`kdkeras.targets.topk`).
        temperature: The distillation temperature; required with `top_k`
            (the training batches are valid at this temperature only).
        examples_per_shard: Examples per shard file; default: as many as
            make 64 MiB of stored targets.
        shard: Optional `(i, n)`: compute only the shards `j % n == i`
            (worker `i` of `n`); join the folders with
            `merge_soft_target_shards`. Or `"auto"`: `i` and `n` from
            `TF_CONFIG` (chief first, then the workers; none: one process),
            each worker's part written to `path.i-of-n`, then merged into
            `path` by the chief once every part is complete (the parts are
            then removed); every worker returns the merged cache. Waits at
            most `kdkeras.targets.shards.merge.WORKER_WAIT_SECONDS` for the
            others.
        on_stale: `"recompute"` or `"error"`.

    Returns:
        A `SoftTargetShards` (for a worker's part `shard=(i, n)`: its
        index only).

    Raises:
        TypeError, ValueError: bad arguments, an infinite, non-deterministic
            or empty stream, non-finite teacher logits (nothing is written).
        StaleSoftTargetsError: `on_stale="error"` and `path` holds a cache
            that does not match.

    Example:

    >>> import keras, numpy as np, tensorflow as tf, tempfile, os
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.random.default_rng(0).normal(size=(10, 4)).astype("float32")
    >>> data = tf.data.Dataset.from_tensor_slices(x).batch(4)
    >>> path = os.path.join(tempfile.mkdtemp(), "targets")
    >>> shards = cache_soft_target_shards(teacher, data, path,
    ...                                   examples_per_shard=6)
    >>> len(shards), sorted(os.listdir(path))[:3]
    (10, ['index.json', 'shard-00000.inputs.npy', 'shard-00000.logits.npy'])
    """
    if isinstance(shard, str) and shard == "auto":
        return _cache_on_workers(
            teacher,
            data,
            path,
            dtype=dtype,
            top_k=top_k,
            temperature=temperature,
            examples_per_shard=examples_per_shard,
            on_stale=on_stale,
        )
    fingerprint.check_teacher(teacher)
    check_stream(data)
    if top_k is not None:
        if dtype is None:
            dtype = "float16"
        if temperature is None:
            raise ValueError(
                "`temperature` must be given with `top_k` (the other "
                "classes' mass is stored at it). Received: temperature=None"
            )
        temperature = check_temperature(temperature)
        top_k = check_positive_int("top_k", top_k)
    elif temperature is not None:
        raise ValueError(
            "`temperature` is only used with `top_k`. "
            f"Received: temperature={shown(temperature)}, top_k=None"
        )
    dtype = check_dtype(dtype or "float32")
    if examples_per_shard is not None:
        examples_per_shard = check_positive_int(
            "examples_per_shard", examples_per_shard
        )
    shard = check_shard(shard)
    check_on_stale(on_stale)
    path = os.fspath(path)
    check_target_folder(path)
    teacher_id = fingerprint.teacher_fingerprint(teacher)
    options = {
        "teacher": teacher_id,
        "dtype": dtype,
        "top_k": top_k,
        "temperature": temperature,
        "shard": list(shard) if shard else None,
    }

    if os.path.isdir(path) and os.listdir(path):
        try:
            expected = dict(options, classes=teacher_classes(teacher))
            existing = _load_matching(path, expected, examples_per_shard, data)
            return existing
        except StaleSoftTargetsError as error:
            if on_stale == "error":
                raise
            logger.warning("%s Recomputing.", error)

    model = teachers.logits_model(teacher)
    stream = StreamPass(data, examples_per_shard, model, dtype, top_k)
    owned = (lambda j: True) if shard is None else (lambda j: j % shard[1] == shard[0])
    staging = files.create_staging_directory(path)
    writer = ShardWriter(staging, dtype, top_k, temperature, stream)
    try:
        signature, digests, examples = stream.run(owned, writer)
        index = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "data": stream_fingerprint(signature, digests),
            "inputs": signature,
            "input_digests": digests,
            "examples": examples,
            "examples_per_shard": stream.examples_per_shard,
            "classes": stream.classes,
            "shards": writer.entries,
            **options,
        }
        index = write_index(staging, index)
        if shard is None:
            check_complete(staging, index)
        check_files(staging, index)
        files.replace_directory(staging, path)
    except BaseException:
        writer.close()
        files.remove(staging)
        raise
    # Not marked as verified for `data`: the training dataset streams it once
    # more and compares, which catches a stream that changes order between
    # passes (e.g. a shuffle inside `data`).
    return SoftTargetShards(path, index)


def _cache_on_workers(teacher, data, path, **options):
    """`cache_soft_target_shards(..., shard="auto")`."""
    tf_config = parse_tf_config()
    if num_workers(tf_config) == 1:
        return cache_soft_target_shards(teacher, data, path, **options)
    index, count = worker_of(tf_config)
    path = os.fspath(path)
    if os.path.isdir(path) and os.listdir(path):
        # A complete cache for this teacher, these options and this stream:
        # every worker finds it and the teacher does not run.
        try:
            return cache_soft_target_shards(
                teacher, data, path, **{**options, "on_stale": "error"}
            )
        except StaleSoftTargetsError:
            pass
    parts = [f"{path}.{i}-of-{count}" for i in range(count)]
    own = cache_soft_target_shards(
        teacher, data, parts[index], shard=(index, count), **options
    )
    if not is_chief(tf_config):
        wait_until(
            lambda: is_ready(path, own.index, None),
            f"the chief to merge the workers' parts into {shown(path)}",
        )
        return load_soft_target_shards(path, teacher=teacher)
    wait_until(
        lambda: all(
            is_ready(part, own.index, [i, count]) for i, part in enumerate(parts)
        ),
        f"the {count} workers' parts {parts}",
    )
    merged = merge_soft_target_shards(parts, path)
    for part in parts:
        files.remove(part)
    return merged


def _load_matching(path, options, examples_per_shard, data):
    index = read_index(path)
    for key, value in options.items():
        if key != "classes" and index.get(key) != value:
            what = (
                "the teacher's architecture or weights changed"
                if key == "teacher"
                else f"it has {key}={shown(index.get(key))}, {shown(value)} requested"
            )
            raise StaleSoftTargetsError(
                f"Soft-target shard cache `path` {shown(path)} is stale: {what}."
            )
    check_classes(path, index, options["classes"])
    if examples_per_shard not in (None, index["examples_per_shard"]):
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {shown(path)} is stale: it has "
            f"examples_per_shard={index['examples_per_shard']}, "
            f"{examples_per_shard} requested."
        )
    if index["shard"] is None:
        check_complete(path, index)
    check_files(path, index)
    check_stream_matches(path, index, data)
    return SoftTargetShards(path, index, verified_for=data)
