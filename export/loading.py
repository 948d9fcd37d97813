"""Loads the model to export: a `.keras` file or a SavedModel directory.

`.keras` files are loaded with `safe_mode=True`: a `Lambda` layer holding a
Python lambda (arbitrary code) is refused unless `unsafe=True`, which warns.
A SavedModel directory is wrapped in a Keras functional model around a
`keras.layers.TFSMLayer` calling its `serving_default` signature (a dict of
inputs when it takes several), so every exporter and the parity check see one
kind of object: a built `keras.Model`, with any number of inputs and outputs
(`export.inputs.InputSpec` describes them).

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
        A built `keras.Model`.

    Raises:
        FileNotFoundError: `path` does not exist.
        ModelLoadError: the file is corrupt, not a model, or holds a Lambda
            layer under safe mode.

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
    check_built(model, path)
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
            config = json.loads(archive.read("config.json"))
    except KeyError:
        raise ModelLoadError(
            f"MODEL {path} is corrupt: the archive has no config.json"
        ) from None
    except (ValueError, zipfile.BadZipFile, OSError) as error:
        raise ModelLoadError(
            f"MODEL {path} is corrupt: unreadable config.json ({error_summary(error)})"
        ) from None
    import_model_packages(config, path)
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


# Packages whose Keras classes a `.keras` file may name (registered when the
# package is imported): imported before loading such a file. Only these: a
# file must not make the loader import an arbitrary module.
MODEL_PACKAGES = {"keras_hub": "kdkeras[text] (keras-hub)"}


def import_model_packages(config, source="MODEL"):
    """Imports the `MODEL_PACKAGES` a `.keras` config names, so its classes load.

    Args:
        config: The parsed `config.json` of a `.keras` file, or a path to the
            file.
        source: Description of the model for the error message.

    Raises:
        ModelLoadError: the model needs a package that is not installed.
    """
    import importlib

    if isinstance(config, (str, os.PathLike)):
        try:
            with zipfile.ZipFile(config) as archive:
                config = json.loads(archive.read("config.json"))
        except (KeyError, ValueError, OSError, zipfile.BadZipFile):
            return
    text = json.dumps(config)
    for package, extra in MODEL_PACKAGES.items():
        if f'"{package}.' not in text and f'"{package}"' not in text:
            continue
        try:
            importlib.import_module(package)
        except ImportError:
            raise ModelLoadError(
                f"{source} uses {package} classes; install {extra}"
            ) from None


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
    if not input_specs or not output_specs:
        raise ModelLoadError(
            f"MODEL {path}: signature {endpoint!r} has {len(input_specs)} "
            f"inputs and {len(output_specs)} outputs; expected at least one of each"
        )
    inputs = {
        name: keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype.name, name=name)
        for name, spec in sorted(input_specs.items())
    }
    if len(inputs) == 1:
        (inputs,) = inputs.values()
    layer = keras.layers.TFSMLayer(path, call_endpoint=endpoint)
    outputs = layer(inputs)
    if isinstance(outputs, dict) and len(outputs) == 1:
        (outputs,) = outputs.values()
    name = os.path.basename(os.path.normpath(path)) or "saved_model"
    return keras.Model(inputs, outputs, name=_safe_name(name))


def _safe_name(name):
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return cleaned or "saved_model"


def check_built(model, source="model"):
    """Raises `ModelLoadError` unless `model` is built (has inputs and outputs)."""
    inputs = model.inputs if hasattr(model, "inputs") else None
    outputs = model.outputs if hasattr(model, "outputs") else None
    if not inputs or not outputs:
        raise ModelLoadError(
            f"{source}: the model is not built (no inputs/outputs); build it "
            "on an input shape before exporting"
        )


def resolve_model(model, unsafe=False):
    """Returns `model` if it is a `keras.Model`, else loads it from a path.

    Args:
        model: A `keras.Model`, or a path accepted by `load_model`.
        unsafe: Passed to `load_model`.

    Returns:
        A built `keras.Model`.

    Raises:
        TypeError: `model` is neither a `keras.Model` nor a path.
    """
    if isinstance(model, (str, os.PathLike)):
        return load_model(model, unsafe=unsafe)
    import keras  # Only now: a bad path must fail without importing TF.

    if isinstance(model, keras.Model):
        check_built(model)
        weights.check_finite_weights(model)
        return model
    raise TypeError(
        f"`model` must be a keras.Model or a path. Received: {type(model).__name__}"
    )


def check_logits_output(model):
    """Raises `ModelLoadError` unless the (first) output is 2-D logits `(batch, classes)`.

    Every check (top-1 agreement, accuracy) reads classes from the last axis
    of the first output in Keras' order (`model.outputs[0]`); a
    scalar-per-example or image-shaped output would make them meaningless.
    Further outputs are compared with Keras too, but need no particular shape.
    """
    shape = tuple(model.outputs[0].shape)
    if len(shape) != 2 or shape[1] is None or shape[1] < 2:
        raise ModelLoadError(
            "`model` must output 2-D logits (batch, classes) with at least 2 "
            f"classes (its first output). Received: a model with output shape {shape}"
        )


def num_classes(model):
    """Width of the model's 2-D logits output."""
    return int(model.outputs[0].shape[-1])


def input_spec(model):
    """The `export.inputs.InputSpec` of `model` (read once per export).

    Raises:
        ModelLoadError: a float input has unknown non-batch dimensions (the
            exporters need static spatial shapes to draw random inputs and to
            build TFLite), or input names a signature cannot take.
    """
    from export.inputs import InputSpec

    try:
        return InputSpec.of(model)
    except ValueError as error:
        raise ModelLoadError(str(error)) from None
