"""Loads the model to export: a `.keras` file or a SavedModel directory.

`.keras` files are loaded with `safe_mode=True`: a `Lambda` layer holding a
Python lambda (arbitrary code) is refused unless `unsafe=True`, which warns.
A SavedModel directory is wrapped in a Keras functional model around a
`keras.layers.TFSMLayer` calling its `serving_default` signature, so every
exporter and the parity check see one kind of object: a single-input,
single-output `keras.Model`.

Errors are one line and name the problem (missing path, not a zip archive,
no `config.json`, Lambda under safe mode, SavedModel without a usable
signature).
"""

import json
import os
import re
import warnings
import zipfile

from export import weights

SERVING_SIGNATURE = "serving_default"


class ModelLoadError(ValueError):
    """The model file or directory exists but cannot be used."""


class UnsafeLoadWarning(UserWarning):
    """A `.keras` file was loaded with `safe_mode=False`."""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_summary(error):
    """One line describing `error`: its first non-empty message line.

    Keras wraps layer errors as "Exception encountered when calling X.call()."
    followed by the actual cause; the cause is appended.
    """
    lines = [" ".join(_ANSI.sub("", line).split()) for line in str(error).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(error).__name__
    if lines[0].startswith("Exception encountered when calling") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]


def load_model(path, unsafe=False):
    """Loads a `.keras` file or a SavedModel directory as a `keras.Model`.

    Args:
        path: Path to a `.keras` file or a SavedModel directory (one holding
            `saved_model.pb`).
        unsafe: Load `.keras` files with `safe_mode=False`, allowing `Lambda`
            layers that deserialize Python bytecode. Emits an
            `UnsafeLoadWarning` (a `UserWarning`).
            Only for files you trust.

    Returns:
        A `keras.Model` with one input and one output.

    Raises:
        FileNotFoundError: `path` does not exist.
        ModelLoadError: the file is corrupt, not a model, holds a Lambda
            layer under safe mode, or has several inputs/outputs.

    Example:

    >>> import os
    >>> import tempfile
    >>> import keras
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "student.keras")
    >>> keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).save(path)
    >>> load_model(path).predict(np.ones((2, 4)), verbose=0).shape
    (2, 3)
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"MODEL {path} does not exist; expected a .keras file or a "
            "SavedModel directory"
        )
    if os.path.isdir(path):
        model = _load_saved_model(path)
    else:
        model = _load_keras_file(path, unsafe)
    check_single_input_output(model, path)
    weights.check_finite_weights(model, path)
    return model


def _load_keras_file(path, unsafe):
    if not path.endswith(".keras"):
        raise ModelLoadError(
            f"MODEL {path} is not a .keras file or a SavedModel directory"
        )
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(
            f"MODEL {path} is corrupt: not a .keras zip archive (truncated, "
            "or not a model file)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            json.loads(archive.read("config.json"))
    except KeyError:
        raise ModelLoadError(
            f"MODEL {path} is corrupt: the archive has no config.json"
        ) from None
    except (ValueError, zipfile.BadZipFile, OSError) as error:
        raise ModelLoadError(
            f"MODEL {path} is corrupt: unreadable config.json ({error_summary(error)})"
        ) from None
    import keras

    if unsafe:
        warnings.warn(
            f"loading {path} with safe_mode=False (--unsafe): Lambda layers "
            "run arbitrary Python code; only do this for files you trust",
            UnsafeLoadWarning,
            stacklevel=3,
        )
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as error:  # Keras raises many types for bad files.
        message = error_summary(error)
        if not unsafe and "safe_mode" in str(error):
            raise ModelLoadError(
                f"MODEL {path} contains a Lambda layer (arbitrary Python "
                "code), refused under safe mode; pass --unsafe (Python: "
                "unsafe=True) only if you trust the file"
            ) from None
        raise ModelLoadError(f"MODEL {path} could not be loaded: {message}") from None


def _load_saved_model(path):
    import keras
    import tensorflow as tf

    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise ModelLoadError(
            f"MODEL {path} is a directory without saved_model.pb; expected "
            "a SavedModel directory or a .keras file"
        )
    try:
        loaded = tf.saved_model.load(path)
    except Exception as error:
        raise ModelLoadError(
            f"MODEL {path} is not a loadable SavedModel: {error_summary(error)}"
        ) from None
    signatures = dict(loaded.signatures)
    if not signatures:
        raise ModelLoadError(f"MODEL {path} has no serving signatures")
    endpoint = (
        SERVING_SIGNATURE if SERVING_SIGNATURE in signatures else sorted(signatures)[0]
    )
    function = signatures[endpoint]
    _, input_specs = function.structured_input_signature
    output_specs = function.structured_outputs
    if len(input_specs) != 1 or len(output_specs) != 1:
        raise ModelLoadError(
            f"MODEL {path}: signature {endpoint!r} has {len(input_specs)} "
            f"inputs and {len(output_specs)} outputs; expected 1 and 1"
        )
    ((input_name, spec),) = input_specs.items()
    (output_name,) = output_specs
    inputs = keras.Input(
        shape=tuple(spec.shape[1:]), dtype=spec.dtype.name, name=input_name
    )
    layer = keras.layers.TFSMLayer(path, call_endpoint=endpoint)
    outputs = layer(inputs)
    if isinstance(outputs, dict):
        outputs = outputs[output_name]
    name = os.path.basename(os.path.normpath(path)) or "saved_model"
    return keras.Model(inputs, outputs, name=_safe_name(name))


def _safe_name(name):
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return cleaned or "saved_model"


def check_single_input_output(model, source="model"):
    """Raises `ModelLoadError` unless `model` has exactly one input and output."""
    inputs = model.inputs if hasattr(model, "inputs") else None
    outputs = model.outputs if hasattr(model, "outputs") else None
    if not inputs or not outputs:
        raise ModelLoadError(
            f"{source}: the model is not built (no inputs/outputs); build it "
            "on an input shape before exporting"
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelLoadError(
            f"{source}: the model has {len(inputs)} inputs and "
            f"{len(outputs)} outputs; expected exactly one of each"
        )


def resolve_model(model, unsafe=False):
    """Returns `model` if it is a `keras.Model`, else loads it from a path.

    Args:
        model: A `keras.Model`, or a path accepted by `load_model`.
        unsafe: Passed to `load_model`.

    Returns:
        A single-input, single-output `keras.Model`.

    Raises:
        TypeError: `model` is neither a `keras.Model` nor a path.
    """
    if isinstance(model, (str, os.PathLike)):
        return load_model(model, unsafe=unsafe)
    import keras  # Only now: a bad path must fail without importing TF.

    if isinstance(model, keras.Model):
        check_single_input_output(model)
        weights.check_finite_weights(model)
        return model
    raise TypeError(
        f"`model` must be a keras.Model or a path. Received: {type(model).__name__}"
    )


def check_logits_output(model):
    """Raises `ModelLoadError` unless the output is 2-D logits `(batch, classes)`.

    Every check (top-1 agreement, accuracy) reads classes from the last axis;
    a scalar-per-example or image-shaped output would make them meaningless.
    """
    shape = tuple(model.outputs[0].shape)
    if len(shape) != 2 or shape[1] is None or shape[1] < 2:
        raise ModelLoadError(
            "`model` must output 2-D logits (batch, classes) with at least 2 "
            f"classes. Received: a model with output shape {shape}"
        )


def num_classes(model):
    """Width of the model's 2-D logits output."""
    return int(model.outputs[0].shape[-1])


def input_signature(model):
    """`(shape, dtype)` of the model's input, batch dimension `None`.

    Raises:
        ModelLoadError: a non-batch dimension is unknown (the exporters need
            static spatial shapes to draw random inputs and to build TFLite).
    """
    tensor = model.inputs[0]
    shape = (None,) + tuple(tensor.shape[1:])
    if any(dim is None for dim in shape[1:]):
        raise ModelLoadError(
            f"the model input shape {shape} has unknown non-batch dimensions; "
            "expected a fixed shape such as (None, 28, 28, 1)"
        )
    dtype = tensor.dtype if isinstance(tensor.dtype, str) else tensor.dtype.name
    return shape, dtype
