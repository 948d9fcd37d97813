"""Offline soft targets: run the teacher once, cache its logits, train on them.

Distilling from cached soft targets removes the teacher's forward pass from
every training step. `cache_soft_targets` runs the teacher (or an `Ensemble`)
over `x` once and stores its logits on disk, keyed by a fingerprint of the
teacher (architecture and every weight's bytes) and of the data (shape, dtype
and bytes of `x`). A cache whose fingerprints do not match is never used
silently: it is recomputed (default) or rejected with `StaleSoftTargetsError`.

`soft_target_dataset` then yields `(x, {"labels": y, "teacher_logits": t})`
batches (plus `sample_weight` when given), the input `kdkeras.Distiller`
trains on without a teacher forward pass.

Random augmentation. Cached targets are the teacher's logits for the
UNAUGMENTED `x`. A teacher containing random augmentation layers (e.g. the
paper teacher's `RandomTranslation` jitter) is fine: those layers are inactive
at inference, which is how the targets are computed. But if the STUDENT's
input is randomly augmented during training (augmentation layers inside the
student, or an augmentation pipeline), each augmented example would be paired
with the targets of a different (clean) input, so the cached targets are
wrong for it. `soft_target_dataset` refuses that combination with a
`ValueError`; distil online (with the teacher) instead, so the teacher sees
the same augmented batch as the student.
"""

import hashlib
import json
import logging
import os
import tempfile
import zipfile

import numpy as np

import keras

from kdkeras import teachers

FORMAT_VERSION = 1
DTYPES = ("float16", "float32")
# Image-augmentation layers that draw random transforms in training mode.
_AUGMENTATION_NAMES = ("AugMix", "CutMix", "MixUp", "RandAugment")

logger = logging.getLogger(__name__)


class StaleSoftTargetsError(ValueError):
    """A soft-target cache does not match the teacher or the data."""


def _layers(model):
    if hasattr(model, "_flatten_layers"):
        return list(model._flatten_layers(include_self=True, recursive=True))
    return [model]


def _normalise_names(config, mapping):
    """Replaces layer names (which depend on creation order) by indices."""
    if isinstance(config, dict):
        return {k: _normalise_names(v, mapping) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [_normalise_names(v, mapping) for v in config]
    if isinstance(config, str):
        return mapping.get(config, config)
    return config


def _architecture(model):
    mapping = {}
    for layer in _layers(model):
        mapping.setdefault(layer.name, f"layer_{len(mapping)}")
    try:
        config = model.get_config()
    except (NotImplementedError, TypeError, AttributeError):
        config = None
    if config is None:  # Subclassed model without a config: the layer list.
        config = [
            [type(layer).__name__, [tuple(w.shape) for w in layer.weights]]
            for layer in _layers(model)
        ]
    config = _normalise_names(config, mapping)
    return json.dumps(
        [type(model).__module__, type(model).__qualname__, config],
        sort_keys=True,
        default=repr,
    )


def teacher_fingerprint(teacher):
    """SHA-256 of a model's architecture and all its weights' bytes.

    Layer names, which depend on how many layers a session created before,
    are replaced by their index, so the same architecture with the same
    weights has the same fingerprint in any process.

    Args:
        teacher: A `keras.Model`.

    Returns:
        A hex string.
    """
    if not isinstance(teacher, keras.Model):
        raise TypeError(
            "`teacher` must be a keras.Model. "
            f"Received: teacher={type(teacher).__name__}"
        )
    digest = hashlib.sha256()
    digest.update(_architecture(teacher).encode())
    for weight in teacher.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _flat_arrays(x, name="x"):
    if isinstance(x, dict):
        return [a for k in sorted(x) for a in _flat_arrays(x[k], name)]
    if isinstance(x, (list, tuple)):
        return [a for item in x for a in _flat_arrays(item, name)]
    if isinstance(x, np.ndarray):
        return [x]
    raise TypeError(
        f"`{name}` must be a NumPy array (or a list/dict of them). "
        f"Received: {name}={type(x).__name__}"
    )


def data_fingerprint(x):
    """SHA-256 of the inputs' structure, shapes, dtypes and bytes.

    Args:
        x: NumPy array, or a list/tuple/dict of NumPy arrays.

    Returns:
        A hex string.
    """
    digest = hashlib.sha256()
    for array in _flat_arrays(x):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def _check_dtype(dtype):
    if dtype not in DTYPES:
        raise ValueError(
            f"`dtype` must be one of {DTYPES}. Received: dtype={dtype!r}"
        )
    return dtype


def _check_batch_size(batch_size):
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(
            "`batch_size` must be a positive int. "
            f"Received: batch_size={batch_size!r}"
        )
    return int(batch_size)


def compute_soft_targets(teacher, x, batch_size=1024):
    """The teacher's logits for `x`, float32, in inference mode.

    A teacher whose output is probabilities (final softmax) is converted
    with `kdkeras.teachers.logits_model` first.

    Args:
        teacher: A `keras.Model` (e.g. a `kdkeras.teachers.Ensemble`).
        x: Inputs (NumPy array or list/dict of arrays).
        batch_size: Batch size of the forward pass.

    Returns:
        float32 NumPy array `(len(x), classes)`.
    """
    batch_size = _check_batch_size(batch_size)
    if not isinstance(teacher, keras.Model):
        raise TypeError(
            "`teacher` must be a keras.Model. "
            f"Received: teacher={type(teacher).__name__}"
        )
    _flat_arrays(x)
    logits = teachers.logits_model(teacher).predict(
        x, batch_size=batch_size, verbose=0
    )
    return np.asarray(logits, dtype=np.float32)


def _read(path):
    """`(logits, metadata)` from a cache file; raises ValueError if bad."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            metadata = json.loads(str(archive["metadata"]))
            logits = archive["logits"]
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
        raise StaleSoftTargetsError(
            f"`path` {path!r} is not a readable soft-target cache ({error})."
        ) from None
    return logits, metadata


def _check_matches(path, logits, metadata, expected):
    for key in ("format_version", "teacher", "data", "dtype"):
        if metadata.get(key) != expected[key]:
            what = {
                "teacher": "the teacher's architecture or weights changed",
                "data": "`x` changed (shape, dtype or values)",
                "dtype": f"it holds {metadata.get('dtype')} logits, "
                f"{expected['dtype']} were requested",
                "format_version": "it was written by another kdkeras version",
            }[key]
            raise StaleSoftTargetsError(
                f"Soft-target cache `path` {path!r} is stale: {what}."
            )
    if logits.shape[0] != expected["examples"]:
        raise StaleSoftTargetsError(
            f"Soft-target cache `path` {path!r} holds {logits.shape[0]} rows "
            f"for {expected['examples']} examples."
        )


def _expected(teacher, x, dtype):
    return {
        "format_version": FORMAT_VERSION,
        "teacher": teacher_fingerprint(teacher),
        "data": data_fingerprint(x),
        "dtype": dtype,
        "examples": len(_flat_arrays(x)[0]),
    }


def load_soft_targets(path, teacher, x, dtype="float32"):
    """Loads cached logits, checking they belong to `teacher` and `x`.

    Args:
        path: Cache file written by `cache_soft_targets`.
        teacher: The teacher the cache must have been computed with.
        x: The inputs the cache must have been computed on.
        dtype: The storage dtype expected, `"float32"` or `"float16"`.

    Returns:
        NumPy array `(len(x), classes)` in `dtype`.

    Raises:
        FileNotFoundError: no file at `path`.
        StaleSoftTargetsError: the file is unreadable or its fingerprints do
            not match `teacher`/`x`/`dtype`.
    """
    dtype = _check_dtype(dtype)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No soft-target cache at `path` {path!r}.")
    logits, metadata = _read(path)
    _check_matches(path, logits, metadata, _expected(teacher, x, dtype))
    return logits


def cache_soft_targets(
    teacher,
    x,
    path,
    batch_size=1024,
    dtype="float32",
    on_stale="recompute",
):
    """Teacher logits for `x`, computed once and cached at `path`.

    If `path` holds a cache for this very teacher (architecture + weights),
    data (`x`'s shape, dtype and bytes) and `dtype`, it is loaded and the
    teacher does not run. Otherwise the logits are computed with
    `compute_soft_targets` and written atomically (temporary file beside
    `path`, verified, then `os.replace`), so `path` never holds a partial
    file. A mismatching cache is recomputed with a warning
    (`on_stale="recompute"`) or raises `StaleSoftTargetsError`
    (`on_stale="error"`); it is never returned.

    Args:
        teacher: A `keras.Model` outputting logits or probabilities (e.g. a
            `kdkeras.teachers.Ensemble`).
        x: Inputs: NumPy array, or list/dict of NumPy arrays.
        path: Cache file path (a `.npz` archive; any file name).
        batch_size: Batch size of the teacher's forward pass.
        dtype: Storage dtype, `"float32"` or `"float16"` (half the disk;
            logits rounded to ~3 significant digits).
        on_stale: `"recompute"` or `"error"`.

    Returns:
        NumPy array `(len(x), classes)` of teacher logits, in `dtype`.

    Example:

    >>> import keras, numpy as np, tempfile, os
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.random.default_rng(0).normal(size=(10, 4)).astype("float32")
    >>> path = os.path.join(tempfile.mkdtemp(), "targets.npz")
    >>> cache_soft_targets(teacher, x, path).shape
    (10, 3)
    """
    dtype = _check_dtype(dtype)
    batch_size = _check_batch_size(batch_size)
    if on_stale not in ("recompute", "error"):
        raise ValueError(
            "`on_stale` must be 'recompute' or 'error'. "
            f"Received: on_stale={on_stale!r}"
        )
    path = os.fspath(path)
    expected = _expected(teacher, x, dtype)
    if os.path.exists(path):
        try:
            logits, metadata = _read(path)
            _check_matches(path, logits, metadata, expected)
            return logits
        except StaleSoftTargetsError as error:
            if on_stale == "error":
                raise
            logger.warning("%s Recomputing.", error)

    logits = compute_soft_targets(teacher, x, batch_size)
    if dtype == "float16" and np.abs(logits).max(initial=0.0) > 65504.0:
        raise ValueError(
            "`dtype` 'float16' cannot hold these teacher logits (max |logit| "
            f"{np.abs(logits).max():.4g} > 65504); use dtype='float32'."
        )
    logits = logits.astype(dtype)
    metadata = {k: expected[k] for k in ("format_version", "teacher", "data")}
    metadata["dtype"] = dtype
    metadata["examples"] = expected["examples"]
    _write_atomically(path, logits, metadata, expected)
    return logits


def _write_atomically(path, logits, metadata, expected):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".partial"
    )
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(
                file, logits=logits, metadata=np.array(json.dumps(metadata))
            )
            file.flush()
            os.fsync(file.fileno())
        written, written_metadata = _read(temporary)
        _check_matches(path, written, written_metadata, expected)
        if not np.array_equal(written, logits, equal_nan=True):
            raise OSError(f"Verification of {temporary!r} failed.")
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _augmentation_classes():
    names = [n for n in dir(keras.layers) if n.startswith("Random")]
    names += [n for n in _AUGMENTATION_NAMES if hasattr(keras.layers, n)]
    return tuple(getattr(keras.layers, n) for n in names)


def random_augmentation_layers(model):
    """The random image-augmentation layers inside `model` (recursively).

    `keras.layers.Random*` (RandomTranslation, RandomFlip, ...), `RandAugment`,
    `AugMix`, `MixUp` and `CutMix`. They are active in training only.

    Args:
        model: A `keras.layers.Layer` or `keras.Model`.

    Returns:
        List of layers (empty if none).
    """
    classes = _augmentation_classes()
    return [layer for layer in _layers(model) if isinstance(layer, classes)]


def inference_supports_jit(model):
    """Whether XLA can compile `model`'s inference-mode forward pass.

    Keras' `supports_jit` check vetoes XLA for random augmentation layers
    (`RandomTranslation`, ...), but at inference those return their input
    untouched, so they are left out; every other layer must support XLA.

    Args:
        model: A `keras.Model`.

    Returns:
        Bool.
    """
    inactive = {id(layer) for layer in random_augmentation_layers(model)}
    return all(
        layer.supports_jit
        for layer in model._flatten_layers()
        if id(layer) not in inactive
    )


def check_no_augmentation(student=None, augmentation=None):
    """Raises if cached soft targets would meet randomly augmented inputs.

    Args:
        student: Optional student `keras.Model`; refused if it contains
            random augmentation layers (they run in training mode).
        augmentation: What the caller will apply to the student's input:
            `None`/`False` (nothing), `True`, a layer, a list of layers or a
            callable. Anything but `None`/`False`/`[]` is refused.

    Raises:
        ValueError: with the reason and the alternative (online distillation).
    """
    reason = (
        "cached soft targets are the teacher's logits for the un-augmented "
        "inputs, so a randomly augmented example would be trained towards "
        "another input's targets; distil online (kdkeras.Distiller with the "
        "teacher) so the teacher sees the same augmented batch."
    )
    if augmentation is not None and augmentation is not False:
        if not (isinstance(augmentation, (list, tuple)) and not augmentation):
            raise ValueError(
                "`augmentation` must be None with cached soft targets: "
                + reason
            )
    if student is not None:
        found = random_augmentation_layers(student)
        if found:
            names = ", ".join(f"{type(l).__name__}({l.name!r})" for l in found)
            raise ValueError(
                f"`student` contains random augmentation layers ({names}): "
                + reason
            )


def _length(array, name):
    shape = getattr(array, "shape", None)
    if shape is None or len(shape) == 0:
        raise ValueError(
            f"`{name}` must be an array with one row per example. "
            f"Received: {name} of type {type(array).__name__}"
        )
    return shape[0]


def soft_target_dataset(
    x,
    y,
    teacher_logits,
    batch_size=128,
    shuffle=True,
    seed=None,
    sample_weight=None,
    augmentation=None,
    student=None,
    drop_remainder=False,
):
    """A `tf.data.Dataset` of `(x, {"labels": y, "teacher_logits": t})`.

    This is the batch format `kdkeras.Distiller` trains on without running
    the teacher. With `sample_weight`, elements are
    `(x, targets, sample_weight)`. Shuffling permutes example indices and
    gathers `x`, `y`, the teacher logits and the weights with the SAME
    indices, so every example keeps its own targets; it is reshuffled every
    epoch (deterministically for a given `seed`). Teacher logits are fed as
    float32 (a float16 cache is widened).

    Args:
        x: Inputs, NumPy array (or list/dict of arrays), `N` rows.
        y: Labels, `N` rows (sparse ints or one-hot).
        teacher_logits: `(N, classes)` teacher logits (`cache_soft_targets`).
        batch_size: Positive int.
        shuffle: Whether to reshuffle every epoch.
        seed: Optional int seed of the shuffle.
        sample_weight: Optional `(N,)` per-example weights.
        augmentation: Must be `None`: random augmentation of the student's
            input is refused with cached targets (see the module docstring).
        student: Optional student model, checked for random augmentation
            layers (refused likewise).
        drop_remainder: Drop the last incomplete batch.

    Returns:
        A `tf.data.Dataset`, batched and prefetched.

    Example:

    >>> import numpy as np
    >>> x = np.arange(12, dtype="float32").reshape(6, 2)
    >>> y = np.arange(6)
    >>> dataset = soft_target_dataset(x, y, np.eye(6, 3), batch_size=4)
    >>> [int(batch[0].shape[0]) for batch in dataset]
    [4, 2]
    """
    import tensorflow as tf

    check_no_augmentation(student=student, augmentation=augmentation)
    batch_size = _check_batch_size(batch_size)
    inputs = _flat_arrays(x)
    count = _length(inputs[0], "x")
    named = [("y", y), ("teacher_logits", teacher_logits)]
    if sample_weight is not None:
        named.append(("sample_weight", sample_weight))
    for array in inputs[1:]:
        if _length(array, "x") != count:
            raise ValueError(
                "All arrays in `x` must have the same number of rows. "
                f"Received: {[len(a) for a in inputs]}"
            )
    for name, array in named:
        if _length(array, name) != count:
            raise ValueError(
                f"`{name}` must have one row per example of `x` ({count}). "
                f"Received: {name} with {_length(array, name)} rows"
            )
    if np.ndim(teacher_logits) != 2:
        raise ValueError(
            "`teacher_logits` must be 2-D (examples, classes). "
            f"Received: shape {np.shape(teacher_logits)}"
        )

    x_tensors = tf.nest.map_structure(tf.convert_to_tensor, x)
    y_tensor = tf.convert_to_tensor(y)
    logits_tensor = tf.convert_to_tensor(np.asarray(teacher_logits, "float32"))
    weight_tensor = (
        None
        if sample_weight is None
        else tf.convert_to_tensor(np.asarray(sample_weight, "float32"))
    )

    def gather(indices):
        batch_x = tf.nest.map_structure(
            lambda tensor: tf.gather(tensor, indices), x_tensors
        )
        targets = {
            "labels": tf.gather(y_tensor, indices),
            "teacher_logits": tf.gather(logits_tensor, indices),
        }
        if weight_tensor is None:
            return batch_x, targets
        return batch_x, targets, tf.gather(weight_tensor, indices)

    return index_batches(
        count, gather, batch_size, shuffle, seed, drop_remainder
    )


def index_batches(count, gather, batch_size, shuffle, seed, drop_remainder):
    """Batches of example indices (reshuffled every epoch), mapped by `gather`.

    Gathering whole batches by index keeps every array of an example
    together under shuffling, and is faster than per-example slicing.

    Args:
        count: Number of examples.
        gather: Maps an int64 index vector to a batch element.
        batch_size: Positive int.
        shuffle: Whether to reshuffle every epoch.
        seed: Optional shuffle seed.
        drop_remainder: Drop the last incomplete batch.

    Returns:
        A prefetched `tf.data.Dataset`.
    """
    import tensorflow as tf

    indices = tf.data.Dataset.range(count)
    if shuffle:
        indices = indices.shuffle(
            count, seed=seed, reshuffle_each_iteration=True
        )
    dataset = indices.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
