"""Offline soft targets: run the teacher once, cache its logits, train on them.

Distilling from cached soft targets removes the teacher's forward pass from
every training step. `cache_soft_targets` runs the teacher (or an `Ensemble`)
over `x` once and stores its logits on disk, keyed by a fingerprint of the
teacher (architecture and every weight's bytes) and of the data (shape, dtype
and bytes of `x`), with a SHA-256 digest of the stored logits checked on
every load. A cache whose fingerprints or digest do not match, or that cannot
be read (empty, truncated, not a cache), is never used silently: it is
recomputed (default) or rejected with `StaleSoftTargetsError`.

Teacher logits holding NaN or infinity are refused (nothing is written): a
non-finite soft target makes the distillation loss, then the student, NaN.

`kdkeras.targets.soft_target_dataset` then batches the inputs with their
cached logits for `kdkeras.Distiller`. For inputs that do not fit in
memory, see `kdkeras.targets.shards.writer`.
"""

import json
import logging
import os
import zipfile

import numpy as np

from kdkeras import teachers
from kdkeras.targets import files
from kdkeras.targets import fingerprint
from kdkeras.targets import inputs

FORMAT_VERSION = 2
DTYPES = ("float16", "float32")
FLOAT16_MAX = 65504.0
#: The most float16 rounding may move a teacher probability (relative).
FLOAT16_MAX_PROBABILITY_ERROR = 0.01

logger = logging.getLogger(__name__)


class StaleSoftTargetsError(ValueError):
    """A soft-target cache does not match the teacher or the data, or is
    unreadable, truncated or tampered with."""


def check_dtype(dtype):
    """Checks a storage dtype (`"float32"` or `"float16"`) and returns it."""
    if dtype not in DTYPES:
        raise ValueError(f"`dtype` must be one of {DTYPES}. Received: dtype={dtype!r}")
    return dtype


def check_on_stale(on_stale):
    """Checks `on_stale` (`"recompute"` or `"error"`) and returns it."""
    if on_stale not in ("recompute", "error"):
        raise ValueError(
            "`on_stale` must be 'recompute' or 'error'. "
            f"Received: on_stale={on_stale!r}"
        )
    return on_stale


def float16_probability_error(largest, temperature=1.0):
    """How far float16 rounding may move a probability, relative.

    Rounding moves each logit by up to half the float16 spacing at the
    largest |logit|, so two logits' difference moves by up to one spacing
    `s`, and a ratio of their probabilities at temperature `T` by up to
    `exp(s / T) - 1`.

    Args:
        largest: The largest |logit|.
        temperature: The temperature the probabilities are taken at.

    Returns:
        The relative error bound, a float.

    Example:

    >>> round(float16_probability_error(1000.0, 4.0), 3)  # spacing 0.5
    0.133
    >>> float16_probability_error(3.0) < 0.01
    True
    """
    spacing = float(np.spacing(np.float16(min(largest, FLOAT16_MAX))))
    return float(np.expm1(spacing / temperature))


def storable_logits(logits, dtype, temperature=None):
    """`logits` in the storage `dtype`, refusing what it cannot hold.

    float16 is refused for logits beyond its range, and for logits so large
    that its spacing there could move a teacher probability by more than
    `FLOAT16_MAX_PROBABILITY_ERROR` (relative) at `temperature`.

    Args:
        logits: float32 teacher logits.
        dtype: `"float32"` or `"float16"`.
        temperature: The temperature the targets are for; `None` (not
            known): 1, the most demanding usual one.

    Returns:
        NumPy array in `dtype`.

    Raises:
        ValueError: NaN or inf logits, or logits float16 cannot hold
            precisely enough.
    """
    inputs.check_finite_logits(logits)
    if dtype == "float16" and logits.size:
        largest = float(np.abs(logits).max())
        if largest > FLOAT16_MAX:
            raise ValueError(
                "`dtype` 'float16' cannot hold these teacher logits (max "
                f"|logit| {largest:.4g} > {FLOAT16_MAX:g}); use "
                "dtype='float32'. Received: dtype='float16'"
            )
        at = 1.0 if temperature is None else float(temperature)
        error = float16_probability_error(largest, at)
        if error > FLOAT16_MAX_PROBABILITY_ERROR:
            raise ValueError(
                "`dtype` 'float16' is too coarse for these teacher logits: "
                f"at |logit| {largest:.4g} its spacing can move a probability "
                f"at temperature {at:g} by up to {100 * error:.1f}% (more than "
                f"{100 * FLOAT16_MAX_PROBABILITY_ERROR:g}%); use "
                "dtype='float32'. Received: dtype='float16'"
            )
    return logits.astype(dtype)


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

    Example:

    >>> import keras, numpy as np
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> compute_soft_targets(teacher, np.ones((5, 4), "float32")).shape
    (5, 3)
    """
    batch_size = inputs.check_batch_size(batch_size)
    fingerprint.check_teacher(teacher)
    inputs.check_rows(x, [])
    inputs.check_model_inputs(teacher, x)
    logits = teachers.logits_model(teacher).predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(logits, dtype=np.float32)


def _unreadable(path, reason):
    return StaleSoftTargetsError(
        f"`path` {path!r} is not a readable soft-target cache ({reason})."
    )


def _read(path):
    """`(logits, metadata)` from a cache file; raises if unreadable."""
    if os.path.isdir(path):
        raise _unreadable(path, "it is a directory")
    try:
        with np.load(path, allow_pickle=False) as archive:
            metadata = json.loads(str(archive["metadata"]))
            logits = archive["logits"]
    except (
        KeyError,
        ValueError,
        OSError,
        EOFError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
    ) as error:
        reason = str(error).splitlines()[0] if str(error) else "empty"
        if os.path.getsize(path) == 0:
            reason = "the file is empty"
        raise _unreadable(path, f"{type(error).__name__}: {reason}") from None
    if not isinstance(metadata, dict):
        raise _unreadable(path, "its metadata is not a JSON object")
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
    classes = expected["classes"] or metadata.get("classes")
    shape = (expected["examples"], classes)
    if logits.ndim != 2 or logits.shape != shape:
        raise StaleSoftTargetsError(
            f"Soft-target cache `path` {path!r} holds logits of shape "
            f"{logits.shape} for {shape[0]} examples of "
            f"{shape[1]} classes."
        )
    if logits.dtype != np.dtype(expected["dtype"]):
        raise StaleSoftTargetsError(
            f"Soft-target cache `path` {path!r} holds {logits.dtype} logits "
            f"recorded as {expected['dtype']}."
        )
    if fingerprint.array_digest(logits) != metadata.get("logits_sha256"):
        raise StaleSoftTargetsError(
            f"Soft-target cache `path` {path!r} is corrupt: its logits do not "
            "match their recorded SHA-256 digest."
        )


def _expected(teacher, x, dtype):
    fingerprint.check_teacher(teacher)
    examples = inputs.check_rows(x, [])
    return {
        "format_version": FORMAT_VERSION,
        "teacher": fingerprint.teacher_fingerprint(teacher),
        "data": fingerprint.data_fingerprint(x),
        "dtype": dtype,
        "examples": examples,
        "classes": teacher_classes(teacher),
    }


def teacher_classes(teacher):
    """The number of classes a teacher outputs, or `None` if not known yet.

    Args:
        teacher: A built `keras.Model`.

    Returns:
        Int or `None` (a subclassed model never called).
    """
    try:
        shape = teacher.outputs[0].shape
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    return None if shape[-1] is None else int(shape[-1])


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
        StaleSoftTargetsError: the file is unreadable (empty, truncated, a
            directory), its logits do not match their digest, or its
            fingerprints do not match `teacher`/`x`/`dtype`.
    """
    dtype = check_dtype(dtype)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No soft-target cache at `path` {path!r}.")
    expected = _expected(teacher, x, dtype)
    logits, metadata = _read(path)
    _check_matches(path, logits, metadata, expected)
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
    data (`x`'s shape, dtype and bytes) and `dtype`, whose logits match their
    recorded digest, it is loaded and the teacher does not run. Otherwise the
    logits are computed with `compute_soft_targets` and written atomically
    (hidden file beside `path`, verified, then renamed), so `path` never
    holds a partial file. A mismatching or unreadable cache is recomputed
    with a warning (`on_stale="recompute"`) or raises
    `StaleSoftTargetsError` (`on_stale="error"`); it is never returned.

    Args:
        teacher: A `keras.Model` outputting logits or probabilities (e.g. a
            `kdkeras.teachers.Ensemble`).
        x: Inputs: NumPy array, or list/dict of NumPy arrays, at least one
            example.
        path: Cache file path (a `.npz` archive; any file name).
        batch_size: Batch size of the teacher's forward pass.
        dtype: Storage dtype, `"float32"` or `"float16"` (half the disk;
            logits rounded to ~3 significant digits; refused where that
            could move a probability at temperature 1 by more than 1%,
            see `storable_logits`).
        on_stale: `"recompute"` or `"error"`.

    Returns:
        NumPy array `(len(x), classes)` of teacher logits, in `dtype`.

    Raises:
        ValueError: bad arguments, no example in `x`, or teacher logits
            that are not finite (nothing is written).
        StaleSoftTargetsError: `on_stale="error"` and `path` holds a
            mismatching or unreadable cache.

    Example:

    >>> import keras, numpy as np, tempfile, os
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.random.default_rng(0).normal(size=(10, 4)).astype("float32")
    >>> path = os.path.join(tempfile.mkdtemp(), "targets.npz")
    >>> cache_soft_targets(teacher, x, path).shape
    (10, 3)
    """
    dtype = check_dtype(dtype)
    batch_size = inputs.check_batch_size(batch_size)
    check_on_stale(on_stale)
    path = os.fspath(path)
    expected = _expected(teacher, x, dtype)
    if os.path.isdir(path):
        raise IsADirectoryError(
            "`path` must be a file path for the soft-target cache. "
            f"Received: path={path!r}, a directory"
        )
    if os.path.exists(path):
        try:
            logits, metadata = _read(path)
            _check_matches(path, logits, metadata, expected)
            return logits
        except StaleSoftTargetsError as error:
            if on_stale == "error":
                raise
            logger.warning("%s Recomputing.", error)

    logits = storable_logits(compute_soft_targets(teacher, x, batch_size), dtype)
    metadata = {
        "format_version": FORMAT_VERSION,
        "teacher": expected["teacher"],
        "data": expected["data"],
        "dtype": dtype,
        "examples": expected["examples"],
        "classes": int(logits.shape[1]),
        "logits_sha256": fingerprint.array_digest(logits),
    }
    _write_atomically(path, logits, metadata, expected)
    return logits


def _write_atomically(path, logits, metadata, expected):
    handle, staging = files.create_staging_file(path)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, logits=logits, metadata=np.array(json.dumps(metadata)))
            file.flush()
            os.fsync(file.fileno())
        written, written_metadata = _read(staging)
        _check_matches(path, written, written_metadata, expected)
        os.replace(staging, path)
    except BaseException:
        files.remove(staging)
        raise
