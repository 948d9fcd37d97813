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

A subclassed model (a `keras.Model` subclass with its own `call`) has no
`inputs` of its own: `functional_model` wraps it in a functional model whose
inputs come from the shapes it was built on (its build config, which a
`.keras` file keeps), as Keras' own `model.export` derives its signature.

A `.keras` file naming the user's own registered classes loads only once the
module registering them is imported: `import_modules` imports the modules the
user names (`--import=my_package.layers` on every command line) and remembers
them, so that the measurement child processes import them too
(`imported_modules`).
"""

import importlib
import json
import os
import re
import warnings
import zipfile

from export import weights
from kdutils import imports

SERVING_SIGNATURE = "serving_default"


def signature_key(signatures):
    """The signature every tool runs: `serving_default`, else the first by name.

    The one choice shared by the SavedModel loader, the runtimes (SavedModel
    and LiteRT signature runners) and the int8 debugger's input order.

    Args:
        signatures: The signature names (any iterable of them, e.g. a
            SavedModel's `signatures` or LiteRT's `get_signature_list()`).

    Returns:
        The key, or None when there is no signature.

    Example:

    >>> signature_key(["b", "a"]), signature_key({"serving_default": {}, "a": {}})
    ('a', 'serving_default')
    """
    names = sorted(signatures)
    if SERVING_SIGNATURE in names:
        return SERVING_SIGNATURE
    return names[0] if names else None


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
    model = functional_model(model, path)
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
        if "Could not locate class" in message:
            message += (
                "; name the module that registers it with --import=<module> "
                "(Python: export.loading.import_modules)"
            )
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
    endpoint = signature_key(signatures)
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


def functional_model(model, source="model"):
    """`model` as a model with `inputs` and `outputs`: a subclassed one wrapped.

    A functional or `Sequential` model is returned as it is. A subclassed
    model, built by `fit`, by a call on a batch or by `build` (or loaded from
    a `.keras` file, which keeps its build config), is wrapped in a functional
    model calling it on `keras.Input`s of the shapes it was built on: one
    input, a dict of inputs (named by their keys) or a list, or, for a
    `build(self, a_shape, b_shape)`, one input per argument. The wrapper
    shares the model's layers and weights. As in Keras' own export, the
    inputs take the model's `input_dtype` (float32 for mixed precision);
    integer inputs (token ids) are not recorded by Keras, so a subclassed
    model reading token ids is exported with float inputs: nest a
    functional model with `keras.Input(dtype="int32")` instead.

    Args:
        model: A `keras.Model`.
        source: Description of the model for error messages.

    Returns:
        A built `keras.Model` with `inputs` and `outputs`.

    Raises:
        ModelLoadError: the model was never built, or was built on shapes
            that do not describe its inputs.
    """
    if _has_graph(model):
        return model
    import keras

    shapes = getattr(model, "_build_shapes_dict", None) or {}
    if not getattr(model, "built", False) or not shapes:
        raise ModelLoadError(
            f"{source}: the model ({type(model).__name__[:60]}) records no input "
            "shape (it was never built); call it on a batch (or fit it, or "
            "model.build(input_shape)) before saving or exporting it"
        )
    dtype = _input_dtype(model)
    if len(shapes) == 1:
        (structure,) = shapes.values()
    else:  # A `build(self, a_shape, b_shape)`: `call(self, a, b)`.
        structure = {_argument_name(key): shape for key, shape in shapes.items()}
    try:
        inputs = _symbolic_inputs(keras, structure, dtype)
    except (TypeError, ValueError):
        raise ModelLoadError(
            f"{source}: the subclassed model {type(model).__name__[:60]} was built "
            f"on {_bounded_structure(structure)}; expected an input shape, a "
            "dict or a list of them"
        ) from None
    try:
        if len(shapes) == 1:
            outputs = model(inputs, training=False)
        else:
            outputs = model(*inputs.values(), training=False)
            inputs = list(inputs.values())
    except Exception as error:  # Any error of the user's `call`.
        raise ModelLoadError(
            f"{source}: the subclassed model {type(model).__name__[:60]} cannot "
            f"be called on symbolic inputs {_bounded_structure(structure)}: "
            f"{error_summary(error)}"
        ) from None
    return keras.Model(inputs, outputs, name=_safe_name(model.name))


def _argument_name(key):
    """`call`'s argument of a `build` argument: `images_shape` -> `images`."""
    return key[: -len("_shape")] if key.endswith("_shape") else key


def _has_graph(model):
    try:
        return bool(model.inputs) and bool(model.outputs)
    except (AttributeError, ValueError):
        return False


def _input_dtype(model):
    dtype = str(getattr(model, "input_dtype", None) or "float32")
    return "float32" if dtype in ("float16", "bfloat16") else dtype


def _is_shape(structure):
    return isinstance(structure, (list, tuple)) and all(
        d is None or isinstance(d, int) for d in structure
    )


def _symbolic_inputs(keras, structure, dtype):
    """`keras.Input`s of the build shapes `structure` (batch dimension dropped)."""

    def one(shape, name):
        if not _is_shape(shape) or len(shape) < 1:
            raise ValueError(f"not a shape: {shape!r}")
        return keras.Input(shape=tuple(shape[1:]), dtype=dtype, name=name)

    if _is_shape(structure):
        return one(structure, "inputs")
    if isinstance(structure, dict) and structure:
        return {str(key): one(shape, str(key)) for key, shape in structure.items()}
    if isinstance(structure, (list, tuple)) and structure:
        return [one(shape, f"input_{i}") for i, shape in enumerate(structure)]
    raise ValueError(f"not a shape structure: {structure!r}")


def _bounded_structure(structure):
    from kdutils.echo import bounded

    return bounded(structure, 120)


def parse_module_names(text, flag="--import"):
    """The module names of a comma-separated `--import` value, checked.

    `kdutils.imports.parse_module_names`, the one definition every command
    line shares.

    Raises:
        ValueError: an entry is not a dotted Python module name.
    """
    return imports.parse_module_names(text, flag)


def import_modules(names, flag="--import"):
    """Imports the modules registering the user's Keras classes, and remembers them.

    `kdutils.imports.import_modules`; the names are remembered
    (`imported_modules`): the measurement child processes import them too.

    Args:
        names: Module names (`parse_module_names` checks a command-line value).
        flag: Argument name for error messages.

    Raises:
        ValueError: a name is not a module name.
        ModelLoadError: a module cannot be imported (missing, or raising).
    """
    try:
        imports.import_modules(names, flag)
    except imports.ModuleImportError as error:
        raise ModelLoadError(str(error)) from None


imported_modules = imports.imported_modules
imported_module_roots = imports.imported_module_roots


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
        model = functional_model(model)
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
