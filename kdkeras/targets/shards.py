"""Soft targets at scale: a streamed, sharded, memory-mappable cache.

`cache_soft_targets` holds `x` and the logits in memory. For inputs that come
as a stream (`tf.data.Dataset`, `keras.utils.PyDataset`, e.g. from
`keras.utils.image_dataset_from_directory` or TFRecords) and may not fit in
memory, `cache_soft_target_shards` runs the teacher over the stream batch by
batch and writes the logits to a folder:

    path/
      index.json                  fingerprints, layout, per-shard digests
      shard-00000.logits.npy      (rows, classes) float32 or float16
      ...                         (top-k: .values.npy, .indices.npy, .tail.npy)

Each shard holds `examples_per_shard` consecutive examples (the last one
fewer) and is a plain `.npy` file (`np.load(..., mmap_mode="r")` maps it).
The cache is written row by row as the teacher runs and read back row by
row by position, so memory stays flat however long the stream is. The folder
is written under a hidden name beside `path` and renamed when complete:
`path` never holds a partial cache.

The index records the teacher's fingerprint, the SHA-256 of every shard file
and of every shard's INPUTS (their bytes, in stream order), so a cache whose
files are missing, truncated or edited, or that belongs to another data
order, is detected (`StaleSoftTargetsError`) and never used. The stream must
be finite and deterministic: an infinite dataset (`repeat()` without a count)
or one with `options().deterministic == False` is refused.

`kdkeras.targets.shards_dataset.soft_target_shards_dataset` streams the
same inputs again and joins every example with its logits by its position in
the stream, shuffles with a buffer that spans shard boundaries, batches and
prefetches: the batches are `(x, {LABELS_KEY: y, TEACHER_LOGITS_KEY: t})`, as
from the in-memory cache.

Many classes: `top_k=K` stores the K largest logits (float16 by default),
their int32 class indices and the log-sum-exp of the other classes at the
distillation `temperature` (`kdkeras.targets.topk`).

Many workers: `shard=(i, n)` computes only the shards `j` with
`j % n == i` (the stream is read in full, the teacher runs on 1/n of it);
`merge_soft_target_shards` joins the n folders into the cache one process
would have written, byte for byte. `shard="auto"` does both steps on the
workers `TF_CONFIG` lists (as for `MultiWorkerMirroredStrategy`, e.g. under
`python -m kdkeras.launch`): worker `i` of `n` writes `path.i-of-n`, the
chief waits for every part and merges them into `path`, the other workers
wait for the merged cache (`path` must be on storage every worker shares).
"""

import json
import logging
import os
import re
import shutil
import time

import numpy as np

from kdkeras import teachers
from kdkeras.distribute.strategy import is_chief
from kdkeras.distribute.strategy import num_workers
from kdkeras.distribute.strategy import parse_tf_config
from kdkeras.losses import check_temperature
from kdkeras.targets import files
from kdkeras.targets import fingerprint
from kdkeras.targets import topk
from kdkeras.targets.cache import StaleSoftTargetsError
from kdkeras.targets.cache import check_dtype
from kdkeras.targets.cache import check_on_stale
from kdkeras.targets.shard_files import RowReader
from kdkeras.targets.shard_files import ShardWriter
from kdkeras.targets.shard_files import file_digest
from kdkeras.targets.stream import StreamPass
from kdkeras.targets.stream import check_stream
from kdkeras.targets.stream import stream_fingerprint

FORMAT = "kdkeras-soft-target-shards"
FORMAT_VERSION = 1
INDEX_NAME = "index.json"
#: With `shard="auto"`: how long a worker waits for the others' parts (the
#: chief) or for the merged cache (the other workers), in seconds.
WORKER_WAIT_SECONDS = 24 * 3600.0
_SHARD_FILE = re.compile(r"shard-\d{5,}\.(logits|values|indices|tail)\.npy")

logger = logging.getLogger(__name__)


def parse_shard(text):
    """`"i/n"` (e.g. a `--shard` flag) as `(i, n)`.

    Example:

    >>> parse_shard("1/4")
    (1, 4)
    """
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(
            f"`shard` must be 'i/n' with 0 <= i < n. Received: shard={text!r}"
        ) from None
    return check_shard((index, count))


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
            f"Received: shard={shard!r}"
        )
    return (int(shard[0]), int(shard[1]))


def _check_examples_per_shard(examples_per_shard):
    if examples_per_shard is None:
        return None
    if (
        isinstance(examples_per_shard, bool)
        or not isinstance(examples_per_shard, (int, np.integer))
        or examples_per_shard < 1
    ):
        raise ValueError(
            "`examples_per_shard` must be None or a positive int. "
            f"Received: examples_per_shard={examples_per_shard!r}"
        )
    return int(examples_per_shard)


def _read_index(path):
    index_path = os.path.join(path, INDEX_NAME)
    if not os.path.isdir(path):
        raise StaleSoftTargetsError(
            f"`path` {path!r} is not a soft-target shard cache (not a folder)."
        )
    try:
        with open(index_path, encoding="utf-8") as file:
            index = json.load(file)
    except (OSError, ValueError) as error:
        raise StaleSoftTargetsError(
            f"Soft-target shard index {index_path!r} is missing or "
            f"unreadable ({type(error).__name__})."
        ) from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise StaleSoftTargetsError(f"{index_path!r} is not a soft-target shard index.")
    if index.get("format_version") != FORMAT_VERSION:
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {path!r} is stale: it was "
            "written by another kdkeras version."
        )
    return index


def _check_files(path, index):
    """Every shard file present, intact (SHA-256) and of the recorded shape."""
    rows_per_shard = index["examples_per_shard"]
    for shard in index["shards"]:
        for _, entry in sorted(shard["files"].items()):
            file_path = os.path.join(path, entry["name"])
            if not os.path.isfile(file_path):
                raise StaleSoftTargetsError(
                    f"Soft-target shard cache `path` {path!r} is incomplete: "
                    f"{entry['name']} is missing."
                )
            if file_digest(file_path) != entry["sha256"]:
                raise StaleSoftTargetsError(
                    f"Soft-target shard {file_path!r} is truncated or "
                    "changed: its SHA-256 digest does not match the index."
                )
        if not 0 < shard["rows"] <= rows_per_shard:
            raise StaleSoftTargetsError(
                f"Soft-target shard cache `path` {path!r} records "
                f"{shard['rows']} rows in shard {shard['id']}."
            )


def _check_complete(path, index):
    count = len(index["input_digests"])
    rows = [s["rows"] for s in index["shards"]]
    ids = [s["id"] for s in index["shards"]]
    if ids != list(range(count)) or sum(rows) != index["examples"]:
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {path!r} is incomplete: it "
            f"lists shards {ids} of {count} and {sum(rows)} of "
            f"{index['examples']} examples."
        )


def check_stream_matches(path, index, data):
    """Streams `data` once (no teacher) and compares its shard digests."""
    stream = StreamPass(data, index["examples_per_shard"])
    signature, digests, examples = stream.run()
    if signature != index["inputs"]:
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {path!r} is stale: `data` "
            f"yields inputs {signature}, the cache was computed on "
            f"{index['inputs']}."
        )
    if examples != index["examples"]:
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {path!r} is stale: `data` "
            f"yields {examples} examples, the cache holds {index['examples']}."
        )
    for shard_id, (actual, recorded) in enumerate(
        zip(digests, index["input_digests"], strict=False)
    ):
        if actual != recorded:
            raise StaleSoftTargetsError(
                f"Soft-target shard cache `path` {path!r} is stale: the "
                f"inputs of shard {shard_id} differ (other data, or another "
                "data order)."
            )


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
        self.path = path
        self.index = index
        self.examples = index["examples"]
        self.classes = index["classes"]
        self.dtype = index["dtype"]
        self.top_k = index["top_k"]
        self.temperature = index["temperature"]
        self.examples_per_shard = index["examples_per_shard"]
        self.verified_for = verified_for
        self._row_readers = None

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
                            f"Soft-target shard {reader.path!r} holds "
                            f"{reader.shape[0]} rows, the index records "
                            f"{shard['rows']}."
                        )
        return self._row_readers

    def stored(self, indices):
        """The stored arrays of these examples, as a dict of NumPy arrays.

        Rows are read from the shard files by position (not memory-mapped,
        so resident memory does not grow with the cache).

        Args:
            indices: int array of example positions in the stream.

        Returns:
            `{"logits": ...}`, or for top-k `{"values", "indices", "tail"}`.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.examples):
            raise ValueError(
                f"`data` yields more examples than the soft-target cache "
                f"{self.path!r} holds ({self.examples})."
            )
        readers = self._readers()
        unique, inverse = np.unique(indices, return_inverse=True)
        shard_ids = unique // self.examples_per_shard
        result = {}
        for kind, reader in readers[0].items():
            result[kind] = np.empty(
                (len(unique),) + tuple(reader.shape[1:]), dtype=reader.dtype
            )
        for shard_id in np.unique(shard_ids):
            selected = np.flatnonzero(shard_ids == shard_id)
            local = unique[selected] - shard_id * self.examples_per_shard
            for kind, reader in readers[shard_id].items():
                result[kind][selected] = reader.read(local)
        return {kind: array[inverse] for kind, array in result.items()}

    def close(self):
        """Closes the shard files (they reopen on the next read)."""
        for readers in self._row_readers or []:
            for reader in readers.values():
                reader.close()
        self._row_readers = None

    def __del__(self):
        self.close()

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
    """
    path = os.fspath(path)
    index = _read_index(path)
    if index["shard"] is not None:
        i, n = index["shard"]
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {path!r} holds the shards of "
            f"worker {i} of {n} only: join the workers' folders with "
            "merge_soft_target_shards."
        )
    _check_complete(path, index)
    _check_files(path, index)
    if teacher is not None:
        if fingerprint.teacher_fingerprint(teacher) != index["teacher"]:
            raise StaleSoftTargetsError(
                f"Soft-target shard cache `path` {path!r} is stale: the "
                "teacher's architecture or weights changed."
            )
    if data is not None:
        check_stream(data)
        check_stream_matches(path, index, data)
    return SoftTargetShards(path, index, verified_for=data)


def _write_index(folder, index):
    with open(os.path.join(folder, INDEX_NAME), "w", encoding="utf-8") as f:
        f.write(json.dumps(index, indent=1, sort_keys=True) + "\n")


def _is_cache_file(name):
    return name == INDEX_NAME or bool(_SHARD_FILE.fullmatch(name))


def _check_target_folder(path):
    """Refuses a target that is a file, or a folder that is not a cache.

    Only a folder holding nothing but cache files (possibly a damaged cache)
    is ever replaced, so no user folder is deleted by mistake.
    """
    if os.path.lexists(path) and not os.path.isdir(path):
        raise FileExistsError(
            "`path` must be a folder for the sharded soft-target cache. "
            f"Received: path={path!r}, an existing file"
        )
    if os.path.isdir(path) and os.listdir(path):
        if not all(_is_cache_file(name) for name in os.listdir(path)):
            raise FileExistsError(
                "`path` must be a new folder or a soft-target shard cache "
                "(it is replaced). Received: path="
                f"{path!r}, a folder with other files"
            )


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
            default float32, and float16 with `top_k`.
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
            most `WORKER_WAIT_SECONDS` for the others.
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
    >>> len(shards), sorted(os.listdir(path))
    (10, ['index.json', 'shard-00000.logits.npy', 'shard-00001.logits.npy'])
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
        if (
            isinstance(top_k, bool)
            or not isinstance(top_k, (int, np.integer))
            or top_k < 1
        ):
            raise ValueError(
                f"`top_k` must be None or a positive int. Received: top_k={top_k!r}"
            )
        top_k = int(top_k)
    elif temperature is not None:
        raise ValueError(
            "`temperature` is only used with `top_k`. "
            f"Received: temperature={temperature!r}, top_k=None"
        )
    dtype = check_dtype(dtype or "float32")
    examples_per_shard = _check_examples_per_shard(examples_per_shard)
    shard = check_shard(shard)
    check_on_stale(on_stale)
    path = os.fspath(path)
    _check_target_folder(path)
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
            existing = _load_matching(path, options, examples_per_shard, data)
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
        _write_index(staging, index)
        if shard is None:
            _check_complete(staging, index)
        _check_files(staging, index)
        files.replace_directory(staging, path)
    except BaseException:
        writer.close()
        files.remove(staging)
        raise
    # Not marked as verified for `data`: the training dataset streams it once
    # more and compares, which catches a stream that changes order between
    # passes (e.g. a shuffle inside `data`).
    return SoftTargetShards(path, index)


def _worker(tf_config):
    """`(i, n)` of this process among the `TF_CONFIG` workers, chief first."""
    cluster = tf_config["cluster"]
    task_type, task_index = tf_config["task_type"], tf_config["task_index"]
    if task_type not in ("chief", "worker"):
        raise ValueError(
            "`shard='auto'` must run on a chief or worker task of TF_CONFIG. "
            f"Received: task type {task_type!r}"
        )
    offset = len(cluster.get("chief", ())) if task_type == "worker" else 0
    return offset + task_index, num_workers(tf_config)


def _same_cache(index, reference):
    keys = (
        "format_version",
        "teacher",
        "data",
        "examples",
        "examples_per_shard",
        "classes",
        "dtype",
        "top_k",
        "temperature",
    )
    return all(index.get(key) == reference[key] for key in keys)


def _ready_index(path, reference, shard):
    """`path`'s index if it is the cache (or part) `reference` belongs to."""
    try:
        index = _read_index(path)
    except (StaleSoftTargetsError, KeyError, TypeError):
        return None
    if index.get("shard") != shard or not _same_cache(index, reference):
        return None
    return index


def _wait_until(ready, what):
    deadline = time.monotonic() + WORKER_WAIT_SECONDS
    delay = 0.05
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Waited {WORKER_WAIT_SECONDS:g} s for {what}; did a worker "
                "fail, or is `path` not on storage every worker shares?"
            )
        time.sleep(delay)
        delay = min(2 * delay, 1.0)


def _cache_on_workers(teacher, data, path, **options):
    """`cache_soft_target_shards(..., shard="auto")`."""
    tf_config = parse_tf_config()
    if num_workers(tf_config) == 1:
        return cache_soft_target_shards(teacher, data, path, **options)
    index, count = _worker(tf_config)
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
        _wait_until(
            lambda: _ready_index(path, own.index, None) is not None,
            f"the chief to merge the workers' parts into {path!r}",
        )
        return load_soft_target_shards(path, teacher=teacher)
    _wait_until(
        lambda: all(
            _ready_index(part, own.index, [i, count]) is not None
            for i, part in enumerate(parts)
        ),
        f"the {count} workers' parts {parts}",
    )
    merged = merge_soft_target_shards(parts, path)
    for part in parts:
        files.remove(part)
    return merged


def _load_matching(path, options, examples_per_shard, data):
    index = _read_index(path)
    for key, value in options.items():
        if index.get(key) != value:
            what = (
                "the teacher's architecture or weights changed"
                if key == "teacher"
                else f"it has {key}={index.get(key)!r}, {value!r} requested"
            )
            raise StaleSoftTargetsError(
                f"Soft-target shard cache `path` {path!r} is stale: {what}."
            )
    if examples_per_shard not in (None, index["examples_per_shard"]):
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {path!r} is stale: it has "
            f"examples_per_shard={index['examples_per_shard']}, "
            f"{examples_per_shard} requested."
        )
    if index["shard"] is None:
        _check_complete(path, index)
    _check_files(path, index)
    check_stream_matches(path, index, data)
    return SoftTargetShards(path, index, verified_for=data)


def merge_soft_target_shards(paths, path):
    """Joins the folders of `n` workers (`shard=(i, n)`) into one cache.

    The result is byte for byte the cache one process would have written.
    Every part's files are checked against their digests, and the parts must
    agree on the teacher, the options and the stream (every shard's input
    digest), and cover every shard exactly once.

    Args:
        paths: The workers' folders, any order.
        path: The merged cache folder (created or replaced).

    Returns:
        A `SoftTargetShards`.

    Raises:
        StaleSoftTargetsError: a part is missing, damaged, or disagrees.
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("`paths` must list the workers' folders. Received: paths=[]")
    path = os.fspath(path)
    _check_target_folder(path)
    indexes = []
    for part in paths:
        index = _read_index(part)
        if index["shard"] is None:
            raise StaleSoftTargetsError(
                f"`paths` entry {part!r} is a complete cache, not a worker's part."
            )
        _check_files(part, index)
        indexes.append(index)
    first = indexes[0]
    shared = [
        "teacher",
        "data",
        "inputs",
        "input_digests",
        "examples",
        "examples_per_shard",
        "classes",
        "dtype",
        "top_k",
        "temperature",
    ]
    for part, index in zip(paths, indexes, strict=True):
        for key in shared:
            if index[key] != first[key]:
                raise StaleSoftTargetsError(
                    f"Worker part {part!r} disagrees with {paths[0]!r} on "
                    f"`{key}`: they were not computed on the same teacher, "
                    "options and stream."
                )
    count = first["shard"][1]
    workers = sorted(index["shard"][0] for index in indexes)
    if workers != list(range(count)) or any(
        index["shard"][1] != count for index in indexes
    ):
        raise StaleSoftTargetsError(
            f"`paths` must hold the parts of workers 0..{count - 1} once "
            f"each. Received: workers {workers}"
        )
    staging = files.create_staging_directory(path)
    try:
        entries = []
        for part, index in zip(paths, indexes, strict=True):
            for entry in index["shards"]:
                for file_entry in entry["files"].values():
                    shutil.copyfile(
                        os.path.join(part, file_entry["name"]),
                        os.path.join(staging, file_entry["name"]),
                    )
                entries.append(entry)
        merged = dict(first)
        merged["shard"] = None
        merged["shards"] = sorted(entries, key=lambda e: e["id"])
        _write_index(staging, merged)
        _check_complete(staging, merged)
        _check_files(staging, merged)
        files.replace_directory(staging, path)
    except BaseException:
        files.remove(staging)
        raise
    return SoftTargetShards(path, merged)
