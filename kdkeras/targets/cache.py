"""One soft-target cache for everything `fit` takes, in memory or sharded.

`cache_soft_targets` takes what `keras.Model.fit` takes for `x` (a NumPy
array, a list or a dict of arrays keyed by input name, a `tf.data.Dataset` or
a `keras.utils.PyDataset`), runs the teacher over it once and keeps its
logits in one of two storages:

memory   one digest-checked `.npz` file, held in memory once loaded
         (`kdkeras.targets.memory`): arrays whose logits take at most
         `MEMORY_LIMIT_BYTES`.
shards   a folder of `.npy` shard files and a digest-checked index, written
         and read row by row (`kdkeras.targets.shards`): datasets, larger
         arrays, top-k storage and the parts of several workers.

Both are keyed by the teacher's and the data's fingerprints and checked
against their digests on every load; a stale or damaged cache is recomputed
or refused (`on_stale`), never used. `cache_soft_targets` returns a
`SoftTargetCache`, from which `soft_target_dataset` builds the training
batches of `kdkeras.Distiller` whatever the storage.
"""

import os

import keras
import numpy as np

from kdkeras import teachers
from kdkeras.targets import fingerprint
from kdkeras.targets import inputs
from kdkeras.targets.memory import cache as memory_cache
from kdkeras.targets.memory import dataset as memory_dataset
from kdkeras.targets.shards import dataset as shards_dataset
from kdkeras.targets.shards import writer as shards_writer
from kdkeras.targets.shards.reader import SoftTargetShards
from kdkeras.targets.shards.stream import is_py_dataset
from kdkeras.targets.shards.stream import is_tf_dataset

#: `storage="auto"` keeps the logits of arrays in memory up to this many
#: bytes (examples × classes × the dtype's item size), and shards them above.
MEMORY_LIMIT_BYTES = 2**30
#: Rows per teacher forward pass over arrays (`batch_size=None`).
DEFAULT_BATCH_SIZE = 1024
STORAGES = ("auto", "memory", "shards")


class SoftTargetCache:
    """Cached teacher logits and the inputs they were computed on.

    Returned by `cache_soft_targets`; `soft_target_dataset(cache, ...)`
    builds training batches from it. It reads as the array of its logits
    (`np.asarray(cache)`, `cache[rows]`).

    Attributes:
        storage: `"memory"` or `"shards"`.
        path: The cache file (memory) or folder (shards).
        x: The inputs the cache belongs to (arrays or the stream).
        shards: The `SoftTargetShards` of the sharded storage, else `None`.
        examples, classes: The number of examples and of classes.
        dtype: The storage dtype (a NumPy dtype).
        top_k, temperature: The top-k storage's K and temperature, or `None`.
    """

    def __init__(self, storage, path, x, logits=None, shards=None):
        self.storage = storage
        self.path = path
        self.x = x
        self.shards = shards
        self._logits = logits
        if shards is None:
            self.examples, self.classes = (int(n) for n in logits.shape)
            self.dtype = logits.dtype
            self.top_k = self.temperature = None
        else:
            self.examples = shards.examples
            self.classes = shards.classes
            self.dtype = np.dtype(shards.dtype)
            self.top_k = shards.top_k
            self.temperature = shards.temperature

    @property
    def logits(self):
        """The teacher logits `(examples, classes)`.

        In memory: the cached array, in the storage dtype. Sharded: read
        from the shard files as float32 (for a top-k cache, the full logits
        `kdkeras.targets.topk.dense_logits_from_top_k` rebuilds at the
        cache's temperature).
        """
        if self.shards is None:
            return self._logits
        return self.shards.logits(np.arange(self.examples))

    @property
    def shape(self):
        return (self.examples, self.classes)

    def __len__(self):
        return self.examples

    def __getitem__(self, index):
        """The logits of these examples (`cache[i]`, `cache[a:b]`, ...)."""
        if self.shards is None:
            return self._logits[index]
        rows = np.arange(self.examples)[index]
        return self.shards.logits(np.atleast_1d(rows)).reshape(
            np.shape(rows) + (self.classes,)
        )

    def __array__(self, dtype=None, copy=None):
        logits = self.logits
        if dtype is not None:
            return logits.astype(dtype, copy=bool(copy))
        return logits.copy() if copy else logits

    def __repr__(self):
        return (
            f"SoftTargetCache(storage={self.storage!r}, path={self.path!r}, "
            f"examples={self.examples}, classes={self.classes}, "
            f"dtype={self.dtype.name!r}, top_k={self.top_k})"
        )


class _ArrayBatches(keras.utils.PyDataset):
    """Arrays as a finite, deterministic stream of batches (no copy)."""

    def __init__(self, x, y=None, sample_weight=None, batch_size=DEFAULT_BATCH_SIZE):
        super().__init__()
        # A list of inputs as a tuple: a list is not a nested structure to
        # tf.data.
        self.x = tuple(x) if isinstance(x, list) else x
        self.y = y
        self.sample_weight = sample_weight
        self.batch_size = batch_size
        self.count = inputs.check_rows(x, [])

    def __len__(self):
        return -(-self.count // self.batch_size)

    def __getitem__(self, index):
        import tensorflow as tf

        start = index * self.batch_size
        rows = slice(start, min(start + self.batch_size, self.count))
        x = tf.nest.map_structure(lambda array: array[rows], self.x)
        if self.y is None:
            return (x,)  # Not `x`: a tuple of inputs is not `(x, y)`.
        if self.sample_weight is None:
            return x, self.y[rows]
        return x, self.y[rows], self.sample_weight[rows]


def _is_stream(x):
    return is_tf_dataset(x) or is_py_dataset(x)


def _check_arrays(x):
    """Refuses what is neither arrays (list/dict of arrays) nor a stream."""
    try:
        inputs.flat_arrays(x)
    except TypeError:
        raise TypeError(
            "`x` must be a NumPy array, a list or dict of NumPy arrays, a "
            "tf.data.Dataset or a keras.utils.PyDataset. "
            f"Received: x={type(x).__name__}"
        ) from None
    return inputs.check_rows(x, [])


def _classes(teacher, x):
    """The teacher's number of classes (one forward pass if not known)."""
    import tensorflow as tf

    classes = memory_cache.teacher_classes(teacher)
    if classes is None:
        one = tf.nest.map_structure(lambda array: array[:1], x)
        logits = teachers.logits_model(teacher).predict_on_batch(one)
        classes = int(np.shape(logits)[-1])
    return classes


def _choose_storage(storage, teacher, x, dtype, sharded_options):
    """`"memory"` or `"shards"`, refusing combinations that cannot work."""
    if not isinstance(storage, str) or storage not in STORAGES:
        raise ValueError(
            f"`storage` must be one of {STORAGES}. Received: storage={storage!r}"
        )
    if storage == "memory":
        if _is_stream(x):
            raise ValueError(
                "`storage` 'memory' needs NumPy arrays (or a list/dict of "
                "them); a dataset is cached in shards. "
                f"Received: storage='memory', x={type(x).__name__}"
            )
        for name, value in sharded_options.items():
            if value is not None:
                raise ValueError(
                    f"`{name}` needs storage='shards' (or 'auto'). "
                    f"Received: {name}={value!r}, storage='memory'"
                )
        return "memory"
    if storage == "shards" or _is_stream(x):
        return "shards"
    if any(value is not None for value in sharded_options.values()):
        return "shards"
    examples = inputs.check_rows(x, [])
    itemsize = np.dtype(dtype or "float32").itemsize
    size = examples * _classes(teacher, x) * itemsize
    return "memory" if size <= MEMORY_LIMIT_BYTES else "shards"


def cache_soft_targets(
    teacher,
    x,
    path,
    batch_size=None,
    dtype=None,
    storage="auto",
    top_k=None,
    temperature=None,
    examples_per_shard=None,
    shard=None,
    on_stale="recompute",
):
    """Teacher logits for `x`, computed once and cached at `path`.

    If `path` holds a cache for this very teacher (architecture and
    weights), these inputs and these storage options, whose files match
    their recorded digests, it is loaded and the teacher does not run.
    Otherwise the teacher runs over `x` in inference mode (a softmax-output
    teacher through `kdkeras.teachers.logits_model`) and the logits are
    written beside `path` and renamed into place when complete and
    verified: `path` never holds a partial cache. A mismatching or
    unreadable cache is recomputed with a warning (`on_stale="recompute"`)
    or raises `StaleSoftTargetsError` (`on_stale="error"`); it is never
    used. Non-finite teacher logits are refused (nothing is written).

    Storage (`storage="auto"`): the logits of arrays stay in memory, in one
    `.npz` file at `path`, while they take at most `MEMORY_LIMIT_BYTES`
    (1 GiB: examples × classes × 4 bytes in float32); larger arrays, any
    `tf.data.Dataset` or `keras.utils.PyDataset`, and `top_k`,
    `examples_per_shard` or `shard` go to the sharded cache, a folder at
    `path` written and read row by row (`kdkeras.targets.shards`).

    Args:
        teacher: A `keras.Model` outputting logits or probabilities (e.g. a
            `kdkeras.teachers.Ensemble`).
        x: What `fit` takes: a NumPy array, a list or dict (keyed by input
            name) of NumPy arrays, at least one example; or a finite,
            deterministic `tf.data.Dataset` or `keras.utils.PyDataset`
            yielding batches `x`, `(x,)`, `(x, y)` or
            `(x, y, sample_weight)` (only `x` is read; the training batches
            take `y` and `sample_weight` from it).
        path: The cache file (memory) or folder (shards).
        batch_size: Rows per teacher forward pass over arrays (default
            1024). Not for a dataset, whose own batches are used.
        dtype: Storage dtype, `"float32"` or `"float16"` (half the disk;
            logits rounded to ~3 significant digits). Default float32, and
            float16 with `top_k`.
        storage: `"auto"`, `"memory"` or `"shards"`.
        top_k: Optional int (sharded): store only the K largest logits per
            example, their classes and the other classes' log-sum-exp at
            `temperature` (`kdkeras.targets.topk`).
        temperature: The distillation temperature; required with `top_k`
            and only used with it.
        examples_per_shard: Optional (sharded): examples per shard file;
            default as many as make 64 MiB of stored targets.
        shard: Optional (sharded): `(i, n)` to compute only the shards
            `j % n == i` (worker `i` of `n`; join the parts with
            `kdkeras.targets.merge_soft_target_shards`), or `"auto"` for the
            workers `TF_CONFIG` lists (see `kdkeras.targets.shards.writer`).
        on_stale: `"recompute"` or `"error"`.

    Returns:
        A `SoftTargetCache` for `soft_target_dataset`.

    Raises:
        TypeError, ValueError: bad arguments, no example in `x`, an
            infinite or non-deterministic dataset, non-finite teacher logits.
        StaleSoftTargetsError: `on_stale="error"` and `path` holds a cache
            that does not match or cannot be read.

    Example:

    >>> import keras, numpy as np, tempfile, os
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.random.default_rng(0).normal(size=(10, 4)).astype("float32")
    >>> path = os.path.join(tempfile.mkdtemp(), "targets.npz")
    >>> cache = cache_soft_targets(teacher, x, path)
    >>> cache.storage, cache.shape
    ('memory', (10, 3))
    >>> batches = soft_target_dataset(cache, np.arange(10) % 3, batch_size=4)
    >>> [int(batch[0].shape[0]) for batch in batches]
    [4, 4, 2]
    """
    stream = _is_stream(x)
    if not stream:
        _check_arrays(x)
    if batch_size is not None:
        if stream:
            raise ValueError(
                "`batch_size` must be None when `x` is a dataset (its own "
                f"batches are used). Received: batch_size={batch_size!r}"
            )
        batch_size = inputs.check_batch_size(batch_size)
    if dtype is not None:
        memory_cache.check_dtype(dtype)
    memory_cache.check_on_stale(on_stale)
    fingerprint.check_teacher(teacher)
    sharded_options = {
        "top_k": top_k,
        "temperature": temperature,
        "examples_per_shard": examples_per_shard,
        "shard": shard,
    }
    storage = _choose_storage(storage, teacher, x, dtype, sharded_options)
    batch_size = batch_size or DEFAULT_BATCH_SIZE
    if storage == "memory":
        logits = memory_cache.cache_soft_targets(
            teacher,
            x,
            path,
            batch_size=batch_size,
            dtype=dtype or "float32",
            on_stale=on_stale,
        )
        return SoftTargetCache("memory", os.fspath(path), x, logits=logits)
    data = x if stream else _ArrayBatches(x, batch_size=batch_size)
    shards = shards_writer.cache_soft_target_shards(
        teacher,
        data,
        path,
        dtype=dtype,
        on_stale=on_stale,
        **sharded_options,
    )
    return SoftTargetCache("shards", shards.path, x, shards=shards)


def soft_target_dataset(
    x,
    y=None,
    teacher_logits=None,
    batch_size=128,
    shuffle=True,
    seed=None,
    sample_weight=None,
    augmentation=None,
    student=None,
    drop_remainder=False,
    shuffle_buffer=16384,
    expand_top_k=False,
):
    """Training batches `(x, {LABELS_KEY: y, TEACHER_LOGITS_KEY: t})`.

    The batch format `kdkeras.Distiller` trains on without running the
    teacher (with `sample_weight`: `(x, targets, sample_weight)`; without
    labels, no `LABELS_KEY`). Every example keeps its own targets under
    shuffling, reshuffled every epoch (deterministically for a given
    `seed`). Logits are fed as float32. Random augmentation of the
    student's input is refused (`kdkeras.targets.augmentation`).

    From the memory storage (or arrays of logits), every epoch is one
    permutation of all examples. From the sharded storage, the inputs are
    streamed again, joined with their logits by position and shuffled
    within windows of `shuffle_buffer` examples; a top-k cache yields its
    top-k targets (`kdkeras.targets.batch`), or full logits with
    `expand_top_k=True`. A dataset is checked against the cache (every
    shard's inputs) unless the cache was just checked against it.

    Args:
        x: A `SoftTargetCache` from `cache_soft_targets` (its inputs and
            logits); or the inputs themselves (arrays, or for a
            `SoftTargetShards` a dataset), with `teacher_logits`.
        y: Labels, one row per example (sparse ints or one-hot; -1 marks
            an unlabelled example), or `None` (no labels). For cached
            arrays; a dataset's labels come from its elements.
        teacher_logits: `None` with a `SoftTargetCache`; otherwise
            `(examples, classes)` finite logits, or a `SoftTargetShards`
            (`kdkeras.targets.load_soft_target_shards`).
        batch_size: Positive int.
        shuffle: Whether to reshuffle every epoch.
        seed: Optional int seed of the shuffle.
        sample_weight: Optional per-example weights, for cached arrays
            (with `y` in the sharded storage).
        augmentation: Must be `None` (cached targets are of the unaugmented
            inputs).
        student: Optional student model, checked for random augmentation
            layers (refused likewise).
        drop_remainder: Drop the last incomplete batch.
        shuffle_buffer: Sharded storage: examples per shuffled window.
        expand_top_k: Top-k storage: yield full logits
            (`kdkeras.targets.topk.dense_logits_from_top_k`) for a loss
            that needs every logit (DKD, DIST), at the cache's temperature.

    Returns:
        A batched, prefetched `tf.data.Dataset`.

    Example:

    >>> import numpy as np
    >>> x = np.arange(12, dtype="float32").reshape(6, 2)
    >>> dataset = soft_target_dataset(x, np.arange(6), np.eye(6, 3), batch_size=4)
    >>> [int(batch[0].shape[0]) for batch in dataset]
    [4, 2]
    """
    batching = memory_dataset.Batching(
        batch_size, shuffle, seed, drop_remainder, augmentation, student
    )

    def sharded(data, shards):
        return shards_dataset.soft_target_shards_dataset(
            data,
            shards,
            shuffle_buffer=shuffle_buffer,
            expand_top_k=expand_top_k,
            **batching.keywords(),
        )

    if isinstance(x, SoftTargetCache):
        if teacher_logits is not None:
            raise ValueError(
                "`teacher_logits` must be None when `x` is a SoftTargetCache "
                "(it holds them). Received: teacher_logits of type "
                f"{type(teacher_logits).__name__}"
            )
        cache, x = x, x.x
        teacher_logits = cache.shards if cache.shards is not None else cache.logits
    elif isinstance(teacher_logits, SoftTargetCache):
        cache = teacher_logits
        teacher_logits = cache.shards if cache.shards is not None else cache.logits
    else:
        cache = None
    if teacher_logits is None:
        raise ValueError(
            "`teacher_logits` must be given unless `x` is a SoftTargetCache "
            "(from cache_soft_targets). Received: teacher_logits=None"
        )
    if not isinstance(teacher_logits, SoftTargetShards):
        return memory_dataset.cached_array_dataset(
            x, y, teacher_logits, sample_weight, batching
        )
    if _is_stream(x):
        for name, value in (("y", y), ("sample_weight", sample_weight)):
            if value is not None:
                raise ValueError(
                    f"`{name}` must be None when the inputs are a dataset (its "
                    f"elements hold it). Received: {name} of type "
                    f"{type(value).__name__}"
                )
        return sharded(x, teacher_logits)
    count = _check_arrays(x)
    inputs.check_rows(x, [("y", y), ("sample_weight", sample_weight)])
    if sample_weight is not None:
        if y is None:
            raise ValueError(
                "`sample_weight` needs `y` with the sharded storage (-1 marks "
                "an unlabelled example). Received: y=None"
            )
        sample_weight = inputs.finite_weights(sample_weight)
    if count != teacher_logits.examples:
        raise ValueError(
            f"`x` must have one row per cached example ({teacher_logits.examples})."
            f" Received: x with {count} rows"
        )
    data = _ArrayBatches(x, y, sample_weight)
    if cache is not None and cache.x is x:
        # The arrays the cache was written or checked for: unlike a
        # dataset, they cannot change order between passes.
        teacher_logits.verified_for = data
    return sharded(data, teacher_logits)
