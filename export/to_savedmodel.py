"""Export a Keras model as a TensorFlow SavedModel for TF Serving.

The SavedModel has one signature, `serving_default`, with a dynamic batch
dimension, one named input (`inputs`) and one named output (`logits`):

    saved_model_cli show --dir student_savedmodel --tag_set serve \\
        --signature_def serving_default
    # inputs['inputs']  float32 (-1, 28, 28, 1)
    # outputs['logits'] float32 (-1, 10)

A model with several inputs (a dict, such as `{token_ids, segment_ids,
padding_mask}`, or a list) keeps its Keras input names in the signature;
several outputs keep their Keras output names:

    # inputs['padding_mask'] int32 (-1, -1)
    # inputs['segment_ids']  int32 (-1, -1)
    # inputs['token_ids']    int32 (-1, -1)

It is written with `keras.export.ExportArchive` (the machinery behind
`model.export(..., format="tf_saved_model")`, which does not let us name the
input and output), checked against Keras, then renamed into place.

Command line:

    python -m export.to_savedmodel student.keras --output student_savedmodel
"""

import atexit
import hashlib
import os
import shutil
import tempfile
import weakref

import numpy as np

from export import loading
from export import pipeline

INPUT_NAME = "inputs"
OUTPUT_NAME = "logits"


def signature_names(spec, input_name=INPUT_NAME, output_name=OUTPUT_NAME):
    """`(input names, output names)` of the exported signature.

    One input is named `input_name` and one output `output_name`; several keep
    their Keras names (`spec.names`, `spec.output_names`).
    """
    inputs = [input_name] if spec.single else list(spec.names)
    outputs = [output_name] if len(spec.output_names) <= 1 else list(spec.output_names)
    return inputs, outputs


def serving_function(model, input_name=INPUT_NAME, output_name=OUTPUT_NAME, spec=None):
    """A `tf.function` `{input name: x, ...} -> {output name: model(x), ...}`.

    The batch dimension is `None` (and the unknown sequence dimensions of
    integer inputs); the model runs with `training=False` (Dropout off,
    BatchNormalization on its moving statistics) on its inputs in the
    structure it was built with (array, list or dict).

    Args:
        model: The `keras.Model`.
        input_name: Name of the input of a one-input model.
        output_name: Name of the output of a one-output model.
        spec: The model's `export.inputs.InputSpec` (read here when None).
    """
    import keras
    import tensorflow as tf

    spec = loading.input_spec(model) if spec is None else spec
    inputs, outputs = signature_names(spec, input_name, output_name)
    tensor_specs = {
        name: tf.TensorSpec(shape, dtype, name=name)
        for shape, dtype, name in zip(spec.shapes, spec.dtypes, inputs, strict=True)
    }
    if spec.single:  # One tensor argument, as `keras.layers.TFSMLayer` calls it.
        tensor_specs = tensor_specs[inputs[0]]

    @tf.function(input_signature=[tensor_specs])
    def serve(tensors):
        values = keras.tree.flatten(
            model(spec.for_model(spec.as_dict(tensors)), training=False)
        )
        return dict(zip(outputs, values, strict=True))

    return serve


def write_savedmodel(
    model, path, input_name=INPUT_NAME, output_name=OUTPUT_NAME, spec=None
):
    """Writes `model` as a SavedModel at `path` (no checks, no staging).

    Returns:
        The `serving_default` function that was exported.
    """
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    function = serving_function(model, input_name, output_name, spec)
    archive.add_endpoint("serving_default", function)
    archive.write_out(os.fspath(path), verbose=False)
    return function


def weights_digest(model):
    """SHA-256 of a model's weights (names, shapes, values): changes when they do."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(np.asarray(weight))
        digest.update(f"{weight.path}:{value.dtype}:{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


class ScratchSavedModels:
    """SavedModels of in-memory models, written once per model and weights.

    The TFLite and ONNX converters read a SavedModel; a report converts each
    model several times (float, float16, dynamic-range, int8, ONNX). Each model
    object's SavedModel is written once into a private temporary folder and
    reused while its weights are unchanged (`weights_digest`); it is removed
    when the model is garbage-collected, or at exit.
    """

    def __init__(self):
        self.folder = None
        self.entries = {}

    def path(self, model, spec=None):
        """A SavedModel of `model` as it is now (`write_savedmodel`)."""
        digest = weights_digest(model)
        key = id(model)
        entry = self.entries.get(key)
        if entry is not None and entry[0]() is model and entry[1] == digest:
            return entry[2]
        if entry is not None:
            self.forget(key)
        if self.folder is None:
            self.folder = tempfile.mkdtemp(prefix="kdkeras-savedmodels-")
            atexit.register(shutil.rmtree, self.folder, True)
        path = tempfile.mkdtemp(dir=self.folder)
        write_savedmodel(model, os.path.join(path, "saved_model"), spec=spec)
        self.entries[key] = (
            weakref.ref(model, lambda _, key=key: self.forget(key)),
            digest,
            os.path.join(path, "saved_model"),
        )
        return self.entries[key][2]

    def forget(self, key):
        entry = self.entries.pop(key, None)
        if entry is not None:
            shutil.rmtree(os.path.dirname(entry[2]), ignore_errors=True)


SCRATCH_SAVEDMODELS = ScratchSavedModels()


def scratch_savedmodel(model, spec=None):
    """A SavedModel of `model` for a converter to read (written once, reused).

    Do not modify it: other conversions of the same model read it too.
    `spec` is the model's `export.inputs.InputSpec` (read when None).
    """
    return SCRATCH_SAVEDMODELS.path(model, spec)


def export_savedmodel(
    model,
    output_dir,
    input_name=INPUT_NAME,
    output_name=OUTPUT_NAME,
    overwrite=False,
    labelled_data=None,
    seed=0,
    unsafe=False,
):
    """Exports `model` as a verified SavedModel directory.

    Args:
        model: A `keras.Model`, or a path to a `.keras` file / SavedModel.
        output_dir: Destination directory (must not exist unless
            `overwrite`).
        input_name: Name of the signature input of a one-input model
            (several inputs keep their Keras names).
        output_name: Name of the signature output of a one-output model
            (several outputs keep their Keras names).
        overwrite: Replace an existing `output_dir`.
        labelled_data: Optional `.npz` (`x` or `x_<input name>`, and `y`),
            `(x, y)` or a dataset, for accuracy.
        seed: Seed of the random parity inputs.
        unsafe: Allow Lambda layers when loading a `.keras` path.

    Returns:
        An `export.pipeline.ExportResult`; the sidecar is `<output_dir>.json`.

    Raises:
        export.verify.ParityError: outputs differ from Keras by a relative
            error >= 1e-5 on random inputs.

    Example:

    >>> import os
    >>> import tempfile
    >>> import keras
    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> path = os.path.join(tempfile.mkdtemp(), "student_savedmodel")
    >>> result = export_savedmodel(model, path)
    >>> result.sidecar["parity"]["max_relative_error"] < 1e-5
    True
    """
    for name, value in (("input_name", input_name), ("output_name", output_name)):
        if not isinstance(value, str) or not value.isidentifier():
            raise ValueError(
                f"`{name}` must be an identifier. Received: {name}={value!r}"
            )
    model, source = pipeline.resolve_for_export(
        model, output_dir, overwrite, unsafe, directory=True
    )
    spec = loading.input_spec(model)
    inputs, outputs = signature_names(spec, input_name, output_name)

    def write(path):
        write_savedmodel(model, path, input_name, output_name, spec)

    return pipeline.export_artifact(
        model,
        output_dir,
        "savedmodel",
        write,
        directory=True,
        options={
            "signature": "serving_default",
            **name_options(inputs, outputs),
        },
        overwrite=overwrite,
        labelled_data=labelled_data,
        seed=seed,
        source=source,
        spec=spec,
    )


def name_options(inputs, outputs):
    """Sidecar options naming the signature's inputs and outputs."""
    options = {"input_name": inputs[0], "output_name": outputs[0]}
    if len(inputs) > 1:
        options["input_names"] = list(inputs)
    if len(outputs) > 1:
        options["output_names"] = list(outputs)
    return options


def main(argv=None):
    """`python -m export.to_savedmodel MODEL --output DIR`."""
    from export import cli

    cli.define_common_flags("Output SavedModel directory (required).")
    cli.run(
        "export.to_savedmodel",
        export_savedmodel,
        argv,
        output_required="the SavedModel directory to write",
    )


if __name__ == "__main__":
    main()
