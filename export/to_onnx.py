"""Export a Keras model to ONNX with tf2onnx, for ONNX Runtime.

`tf2onnx.convert.from_keras` targets Keras 2 objects; Keras 3 models are
converted from their serving `tf.function` (`export.to_savedmodel.
serving_function`), frozen first (`frozen_graph`: variables and captured
tensors become constants, nested calls are made inlinable), then converted with
`tf2onnx.convert.from_graph_def`, tf2onnx's graph optimisers on (its default:
transposes folded, BatchNormalization fused into convolutions, identities
removed). The graph has one input `inputs` and one output `logits`, both with a
symbolic batch dimension `batch`; a model with several inputs or outputs keeps
their Keras names (as its SavedModel signature,
`export.to_savedmodel.signature_names`).

The result is checked under ONNX Runtime with full graph optimisation, on
`CUDAExecutionProvider` when onnxruntime-gpu provides it, else on
`CPUExecutionProvider`. Ops tf2onnx leaves unconverted (it keeps them as
unknown ONNX nodes and only logs) are reported as a one-line error; `Erfc`
(used by Keras' exact GELU) is rewritten as `1 - Erf` (`CUSTOM_OP_HANDLERS`).

tf2onnx and the TensorFlow graph code under it are native code that can crash
the process: the conversion runs in a child process
(`export.pipeline.run_isolated`) on a scratch SavedModel the parent writes
and always deletes, so a crash becomes a one-line `ConversionError`.

Command line:

    python -m export.to_onnx student.keras               # -> student.onnx
    python -m export.to_onnx student/ --opset 17         # -> student.onnx
    python -m export.to_onnx student.keras --output out/model.onnx
"""

import os
import tempfile

from export import loading
from export import pipeline
from export import runtimes
from export import to_savedmodel

MIN_OPSET = 9


def supported_opsets():
    """`(lowest, highest)` opset accepted (highest = tf2onnx's newest)."""
    from tf2onnx import constants

    return MIN_OPSET, max(constants.OPSET_TO_IR_VERSION)


def check_opset(opset):
    """Validates `opset` (None = tf2onnx's preferred); returns it."""
    if opset is None:
        return None
    lowest, highest = supported_opsets()
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise TypeError(f"`--opset` must be an integer. Received: --opset={opset!r}")
    if not lowest <= opset <= highest:
        import tf2onnx

        raise ValueError(
            f"`--opset` must be in {lowest}..{highest} (tf2onnx "
            f"{tf2onnx.__version__}). Received: --opset={opset}"
        )
    return opset


def default_output_path(model_path):
    """`student.keras` -> `student.onnx`; `student/` -> `student.onnx` beside it."""
    path = os.path.normpath(os.fspath(model_path))
    if os.path.isdir(path):
        return path + ".onnx"
    return os.path.splitext(path)[0] + ".onnx"


def _erfc_as_one_minus_erf(ctx, node, name, args):
    """tf2onnx handler: `Erfc(x)` -> `1 - Erf(x)` (ONNX has Erf, not Erfc).

    Keras' exact GELU (`tf.nn.gelu(approximate=False)`) computes
    `0.5 * x * erfc(-x / sqrt(2))`, which tf2onnx 1.17 cannot convert. `1 -
    erf` loses relative precision only where erfc underflows towards 0, i.e.
    where GELU's output itself is ~0, so the absolute error stays ~1e-7.
    """
    import numpy as np
    from tf2onnx import utils

    output = node.output[0]
    dtype = ctx.get_dtype(output)
    node.type = "Erf"
    one = ctx.make_const(
        utils.make_name(f"{name}_one"),
        np.array(1, dtype=utils.map_onnx_to_numpy_type(dtype)),
    )
    minus = ctx.insert_new_node_on_output(
        "Sub",
        output,
        name=utils.make_name(f"{name}_one_minus"),
        inputs=[one.output[0], output],
    )
    ctx.set_dtype(minus.output[0], dtype)
    ctx.copy_shape(output, minus.output[0])
    return minus


# TF ops tf2onnx lacks, rewritten here (old-style `custom_op_handlers`).
CUSTOM_OP_HANDLERS = {"Erfc": (_erfc_as_one_minus_erf, [])}


def convert(model, opset=None, spec=None):
    """Converts `model` to an optimised `onnx.ModelProto` (no checks).

    The conversion runs in a child process on a scratch SavedModel of
    `model` (see the module docstring); `spec` is the model's
    `export.inputs.InputSpec` (read when None).

    Raises:
        export.pipeline.ConversionError: tf2onnx fails, crashes, or leaves
            ops it cannot convert.
    """
    import onnx

    with tempfile.TemporaryDirectory(prefix="kdkeras-onnx-") as scratch:
        saved_model_dir = to_savedmodel.scratch_savedmodel(model, spec)
        output_path = os.path.join(scratch, "model.onnx")
        pipeline.run_isolated(
            convert_saved_model,
            {
                "saved_model_dir": saved_model_dir,
                "output_path": output_path,
                "opset": opset,
            },
            what="tf2onnx",
        )
        return onnx.load(output_path)


def convert_saved_model(saved_model_dir, output_path, opset=None):
    """Converts a SavedModel's `serving_default` to ONNX (run in a child).

    Args:
        saved_model_dir: A SavedModel written by
            `export.to_savedmodel.write_savedmodel`.
        output_path: Where the `.onnx` file is written.
        opset: ONNX opset; None uses tf2onnx's preferred opset.

    Raises:
        export.pipeline.ConversionError: tf2onnx fails, or leaves ops it
            cannot convert.
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model_dir)
    signature = loaded.signatures["serving_default"]
    _, input_specs = signature.structured_input_signature
    names = sorted(input_specs)

    @tf.function(
        input_signature=[
            tf.TensorSpec(input_specs[n].shape, input_specs[n].dtype, name=n)
            for n in names
        ]
    )
    def function(*tensors):
        return signature(**dict(zip(names, tensors, strict=True)))

    model_proto = convert_function(function, opset)
    with open(output_path, "wb") as handle:
        handle.write(model_proto.SerializeToString())


# Attributes that keep TensorFlow's function inliner away from a call: Keras
# compiles grouped convolutions with XLA on CPU (`@tf.function(jit_compile=True)`
# in its TensorFlow backend), which marks the call `_XlaMustCompile` and
# `_noinline`; left as a call, tf2onnx emits an unknown `StatefulPartitionedCall`.
NOINLINE_ATTRIBUTES = ("_noinline", "_XlaMustCompile", "_XlaCompile", "_XlaScope")


def frozen_graph(function):
    """The inference graph of a serving `tf.function`, variables made constants.

    Variables and captured tensors (a `keras.layers.Normalization`'s mean and
    variance are captured eager tensors, not variables) become `Const` nodes,
    so the graph's only inputs are the function's own: given the traced
    function, tf2onnx lists every non-resource input, captures included, as a
    graph input that nobody feeds. Nested calls are made inlinable
    (`NOINLINE_ATTRIBUTES` removed) for the inlining tf2onnx's Grappler pass
    does.

    Args:
        function: A `tf.function` with an `input_signature`.

    Returns:
        `(graph_def, input_names, output_names, tensors_to_rename)`: the frozen
        `GraphDef`, its input and output tensor names, and the map from those
        names to the signature's (`inputs`, `logits`, ...).
    """
    import tensorflow as tf
    from tensorflow.python.framework import convert_to_constants

    concrete = function.get_concrete_function(*function.input_signature)
    frozen = convert_to_constants.convert_variables_to_constants_v2(
        concrete, lower_control_flow=False, aggressive_inlining=True
    )
    graph_def = frozen.graph.as_graph_def(add_shapes=True)
    _allow_inlining(graph_def)
    input_names = [tensor.name for tensor in frozen.inputs]
    output_names = [tensor.name for tensor in frozen.outputs]
    specs = [
        spec
        for spec in tf.nest.flatten(concrete.structured_input_signature)
        if isinstance(spec, tf.TensorSpec)
    ]
    renames = {
        name: spec.name
        for name, spec in zip(input_names, specs, strict=True)
        if spec.name
    }
    outputs = concrete.structured_outputs
    if isinstance(outputs, dict):
        renames.update({tensor.name: key for key, tensor in outputs.items()})
    return graph_def, input_names, output_names, renames


def _allow_inlining(graph_def):
    """Removes `NOINLINE_ATTRIBUTES` from every call and function of `graph_def`."""
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        for name in NOINLINE_ATTRIBUTES:
            if name in function.attr:
                del function.attr[name]
        nodes.extend(function.node_def)
    for node in nodes:
        for name in NOINLINE_ATTRIBUTES:
            if name in node.attr:
                del node.attr[name]


def convert_function(function, opset=None):
    """tf2onnx on a serving `tf.function`: an optimised `onnx.ModelProto`.

    The function is frozen first (`frozen_graph`), then converted with
    `tf2onnx.convert.from_graph_def`; the ONNX graph keeps the signature's
    input and output names.

    Raises:
        export.pipeline.ConversionError: tf2onnx fails, or leaves ops it
            cannot convert.
    """
    import onnx
    import tf2onnx

    try:
        graph_def, input_names, output_names, renames = frozen_graph(function)
        model_proto, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            name=getattr(function, "__name__", None),
            input_names=input_names,
            output_names=output_names,
            opset=opset,
            custom_op_handlers=CUSTOM_OP_HANDLERS,
            tensors_to_rename=renames,
        )
    except Exception as error:
        first = next(
            (line.strip() for line in str(error).splitlines() if line.strip()),
            type(error).__name__,
        )
        raise pipeline.ConversionError(f"tf2onnx failed: {first}") from None
    unconverted = sorted(
        {
            node.op_type
            for node in model_proto.graph.node
            if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type)
        }
    )
    if unconverted:
        raise pipeline.ConversionError(
            f"tf2onnx cannot convert TF op(s) {', '.join(unconverted)} to ONNX "
            f"(opset {_opset_of(model_proto)})"
        )
    for value in list(model_proto.graph.input) + list(model_proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    return model_proto


def _opset_of(model_proto):
    return next(
        (o.version for o in model_proto.opset_import if o.domain in ("", "ai.onnx")),
        None,
    )


def export_onnx(
    model,
    output_path=None,
    opset=None,
    overwrite=False,
    labelled_data=None,
    seed=0,
    unsafe=False,
):
    """Exports `model` as a verified `.onnx` file.

    Args:
        model: A `keras.Model`, or a path to a `.keras` file / SavedModel.
        output_path: Destination; default (for a path `model`) the model path
            with the extension `.onnx` (a directory `d/` gives `d.onnx`).
        opset: ONNX opset; None uses tf2onnx's preferred opset.
        overwrite: Replace an existing `output_path`.
        labelled_data: Optional `.npz` (`x` or `x_<input name>`, and `y`),
            `(x, y)` or a dataset, for accuracy.
        seed: Seed of the random parity inputs.
        unsafe: Allow Lambda layers when loading a `.keras` path.

    Returns:
        An `export.pipeline.ExportResult`; sidecar `<output_path>.json`.

    Raises:
        ValueError: bad `opset`, missing `output_path` for an in-memory
            model, or an op tf2onnx cannot convert.
        export.verify.ParityError: relative error >= 1e-5 against Keras.

    Example:

    >>> import os
    >>> import tempfile
    >>> import keras
    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> path = os.path.join(tempfile.mkdtemp(), "student.onnx")
    >>> result = export_onnx(model, path)
    >>> result.sidecar["parity"]["max_relative_error"] < 1e-5
    True
    """
    opset = check_opset(opset)
    is_path = isinstance(model, (str, os.PathLike))
    if output_path is None:
        if not is_path:
            raise ValueError("output_path is required when model is a keras.Model")
        output_path = default_output_path(model)
    model, source = pipeline.resolve_for_export(model, output_path, overwrite, unsafe)
    spec = loading.input_spec(model)
    names, outputs = to_savedmodel.signature_names(spec)

    def write(path):
        model_proto = convert(model, opset, spec)
        metadata = model_proto.metadata_props.add()
        metadata.key, metadata.value = "source", source or model.name
        with open(path, "wb") as handle:
            handle.write(model_proto.SerializeToString())
        return {
            "opset": _opset_of(model_proto),
            "providers": runtimes.onnx_providers(),
        }

    return pipeline.export_artifact(
        model,
        output_path,
        "onnx",
        write,
        options={
            **to_savedmodel.name_options(names, outputs),
            "tf2onnx_optimizers": True,
            "ort_graph_optimization": "ORT_ENABLE_ALL (at session creation)",
        },
        overwrite=overwrite,
        labelled_data=labelled_data,
        seed=seed,
        source=source,
        spec=spec,
    )


def main(argv=None):
    """`python -m export.to_onnx MODEL [--output FILE] [--opset N]`."""
    from absl import flags

    from export import cli

    cli.define_common_flags(
        "Output .onnx file (default: MODEL with extension .onnx, beside it)."
    )
    flags.DEFINE_integer("opset", None, "ONNX opset (default: tf2onnx's).")
    cli.run(
        "export.to_onnx",
        export_onnx,
        argv,
        tool_arguments=lambda: {"opset": cli.flag_value("opset")},
    )


if __name__ == "__main__":
    main()
