"""Fingerprints that key a soft-target cache to its teacher and its data.

A cache is used only for the teacher (architecture and every weight's bytes)
and the inputs (structure, shapes, dtypes and bytes) it was computed from;
these SHA-256 fingerprints are what the cache records and compares.
"""

import hashlib
import json

import keras
import numpy as np

from kdkeras.targets import inputs


def model_layers(model):
    """Every layer of `model`, recursively, `model` itself first.

    Args:
        model: A `keras.layers.Layer` or `keras.Model`.

    Returns:
        List of layers.
    """
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
    for layer in model_layers(model):
        mapping.setdefault(layer.name, f"layer_{len(mapping)}")
    try:
        config = model.get_config()
    except (NotImplementedError, TypeError, AttributeError):
        config = None
    if config is None:  # Subclassed model without a config: the layer list.
        config = [
            [type(layer).__name__, [tuple(w.shape) for w in layer.weights]]
            for layer in model_layers(model)
        ]
    config = _normalise_names(config, mapping)
    return json.dumps(
        [type(model).__module__, type(model).__qualname__, config],
        sort_keys=True,
        default=repr,
    )


def check_teacher(teacher):
    """Raises `TypeError` unless `teacher` is a `keras.Model`."""
    if not isinstance(teacher, keras.Model):
        raise TypeError(
            "`teacher` must be a keras.Model. "
            f"Received: teacher={type(teacher).__name__}"
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

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> len(teacher_fingerprint(model))
    64
    """
    check_teacher(teacher)
    digest = hashlib.sha256()
    digest.update(_architecture(teacher).encode())
    for weight in teacher.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def data_fingerprint(x):
    """SHA-256 of the inputs' structure, shapes, dtypes and bytes.

    Args:
        x: NumPy array, or a list/tuple/dict of NumPy arrays.

    Returns:
        A hex string.

    Example:

    >>> x = np.arange(6.0).reshape(3, 2)
    >>> data_fingerprint(x) == data_fingerprint(x.copy())
    True
    >>> data_fingerprint(x) == data_fingerprint(x[::-1])
    False
    """
    digest = hashlib.sha256()
    for array in inputs.flat_arrays(x):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        if array.size:
            digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def array_digest(array):
    """SHA-256 of an array's dtype, shape and bytes (a stored array's digest).

    Args:
        array: NumPy array (a memory map is read in place).

    Returns:
        A hex string.

    Example:

    >>> array_digest(np.zeros(3)) == array_digest(np.zeros(3, "float32"))
    False
    """
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    if array.size:
        digest.update(memoryview(array.reshape(-1)).cast("B"))
    return digest.hexdigest()
