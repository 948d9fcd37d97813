"""Bridge between Keras 3 models and `tf_keras` (Keras 2) models.

Why: TensorFlow Model Optimization (TFMOT 0.8.1) wraps layers with
`tf_keras` classes (`PruneLowMagnitude`, `ClusterWeights`, `QuantizeWrapperV2`)
and refuses Keras 3 layers, while kdkeras students are Keras 3 models.

How: `to_tf_keras` walks the student's functional graph
(`kdkeras._model_graph.graph_calls`: branches, merges, shared layers, one
input used by several layers) and rebuilds it call by call with the
`tf_keras` functional API. Each layer becomes the `tf_keras` layer of the
same class, built from its translated `get_config()`
(`kdkeras.compress._layers`), and receives a copy of its weights; a layer
called several times is one layer called several times. Nested models
(`Sequential` or functional, e.g. a backbone inside a classifier) are
flattened into the outer graph. Keras 3 operations recorded in the graph
(`x + 3.0`) become the same TensorFlow ops. Layers that are random in training
and the identity at inference (`DROPPED_LAYERS`: `RandomFlip`, ...,
`GaussianNoise`) are dropped: outputs at inference are unchanged, but
compression fine-tuning then runs without them. `from_tf_keras` is the
inverse, used after the TFMOT wrappers are stripped, so the compressed
student continues through kdkeras' Keras 3 exporters.

Every carry is checked: both models run on fresh random inputs and their
outputs must agree to float32 round-off (`MAX_RELATIVE_ERROR`), or a
`ValueError` says by how much they differ. What cannot be carried (a custom
layer, an activation or a setting defined differently in the two libraries,
a non-float32 dtype policy) is refused with a one-line `ValueError` naming
the layer and the reason.
"""

import keras
import numpy as np
import tensorflow as tf
import tf_keras

from kdkeras import _model_graph as model_graph
from kdkeras import _random_layers as random_layers
from kdkeras.compress import _layers as layers

SUPPORTED_LAYERS = layers.CARRIED_LAYERS | {"InputLayer"}
# Identity at inference and not carried; dropped from a Keras 3 student.
DROPPED_LAYERS = random_layers.INFERENCE_IDENTITY_LAYERS - SUPPORTED_LAYERS
# Largest difference allowed between the two models' outputs, relative to
# the largest output magnitude (float32 round-off through deep graphs).
MAX_RELATIVE_ERROR = 1e-4
_CHECK_BATCH = 4


def _dropped(layer):
    return (
        isinstance(layer, keras.layers.Layer)
        and random_layers.is_inference_identity(layer)
        and type(layer).__name__ in DROPPED_LAYERS
    )


class _Rebuilder:
    """Rebuilds a model of `source` (`keras` or `tf_keras`) in `target`."""

    def __init__(self, source, target):
        self.source, self.target = source, target
        self.carried = {}  # id(source layer) -> target layer
        self.pairs = []  # (source layer, target layer) with weights to copy
        self.names = set()

    def layer(self, layer, prefix):
        """The target layer that carries `layer` (one per source layer)."""
        if id(layer) in self.carried:
            return self.carried[id(layer)]
        target_class = layers.target_class(layer, self.target)
        config = layers.translate_config(layer, self.target)
        name = config["name"]
        if name in self.names:
            name = f"{prefix}_{name}"
        while name in self.names:
            name += "_"
        self.names.add(name)
        config["name"] = name
        try:
            new_layer = target_class.from_config(config)
        except (TypeError, ValueError) as error:
            reason = str(error).split("Exception encountered:")[-1].strip()
            reason = " ".join(reason.split())[:200]
            raise layers.CannotCarry(
                layer,
                f"its configuration does not build in the other library: {reason}",
            ) from None
        self.carried[id(layer)] = new_layer
        self.pairs.append((layer, new_layer))
        return new_layer

    def run(self, model, inputs, prefix=""):
        """Calls the carried layers of `model` on target tensors `inputs`.

        Args:
            model: A source model (functional or `Sequential`).
            inputs: Flat list of target tensors, one per `model.inputs`.

        Returns:
            Flat list of target tensors, one per `model.outputs`.
        """
        if isinstance(model, self.source.Sequential):
            (tensor,) = inputs
            for layer in model.layers:
                tensor = self.call(layer, (tensor,), {}, model.name)
            return [tensor]
        tensors = {
            id(source): target
            for source, target in zip(model.inputs, inputs, strict=True)
        }

        def mapped(value):
            if id(value) in tensors:
                return tensors[id(value)]
            if hasattr(value, "_keras_history"):
                raise ValueError(
                    f"`model` {model.name!r} uses a tensor that does not come "
                    "from its inputs."
                )
            return value

        for call in model_graph.graph_calls(model):
            args = tf.nest.map_structure(mapped, call.args)
            kwargs = tf.nest.map_structure(mapped, call.kwargs)
            outputs = self.call(call.operation, args, kwargs, model.name)
            outputs = tf.nest.flatten(outputs)
            for source, target in zip(call.outputs, outputs, strict=True):
                tensors[id(source)] = target
        return [tensors[id(tensor)] for tensor in model.outputs]

    def call(self, operation, args, kwargs, prefix):
        """Calls the carried `operation` on target `args`, `kwargs`."""
        if isinstance(operation, self.source.Model):
            inner = tf.nest.flatten(args[0] if len(args) == 1 else args)
            outputs = self.run(operation, inner, prefix=operation.name)
            return outputs[0] if len(outputs) == 1 else outputs
        if self.source is keras and _dropped(operation):
            return args[0]
        if self.source is keras and layers.is_operation(operation):
            return layers.call_operation(operation, args, kwargs)
        if (
            self.source is tf_keras
            and type(operation).__name__ == "TFOpLambda"
            and type(operation).__module__.startswith("tf_keras")
        ):
            return layers.call_tf_op_lambda(operation, args, kwargs)
        kwargs = {key: value for key, value in kwargs.items() if key != "training"}
        return self.layer(operation, prefix)(*args, **kwargs)

    def copy_weights(self):
        for layer, new_layer in self.pairs:
            weights = layer.get_weights()
            expected = [tuple(w.shape) for w in new_layer.get_weights()]
            if [tuple(w.shape) for w in weights] != expected:
                raise layers.CannotCarry(
                    layer,
                    f"its weight shapes {[tuple(w.shape) for w in weights]} do "
                    f"not match the other library's {expected}",
                )
            new_layer.set_weights(weights)


def _check_model(model, framework):
    if not isinstance(model, framework.Model):
        raise TypeError(
            f"`model` must be a {framework.__name__} Model. "
            f"Received: model of type {type(model).__name__}"
        )
    return model_graph.graph_inputs_outputs(model, "model")[0]


def _random_inputs(model):
    rng = np.random.default_rng()
    batch = []
    for tensor in model.inputs:
        shape = [
            _CHECK_BATCH if index == 0 else (16 if size is None else size)
            for index, size in enumerate(tuple(tensor.shape))
        ]
        dtype = tf.as_dtype(tensor.dtype)
        if dtype.is_floating:
            batch.append(rng.normal(size=shape).astype(dtype.as_numpy_dtype))
        else:
            batch.append(rng.integers(0, 8, size=shape).astype(dtype.as_numpy_dtype))
    return batch


def _outputs(model, inputs):
    outputs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    return [np.asarray(output, dtype="float64") for output in tf.nest.flatten(outputs)]


def check_outputs(model, carried):
    """Raises unless `carried` gives `model`'s outputs on random inputs.

    Both models run in inference mode on one fresh batch of standard-normal
    inputs; the largest absolute difference of any output must be at most
    `MAX_RELATIVE_ERROR` times the largest output magnitude (at least 1e-3).

    Args:
        model: The source model.
        carried: Its copy in the other library.

    Returns:
        The largest relative difference found.

    Raises:
        ValueError: the outputs differ by more (one line, the amount).
    """
    inputs = _random_inputs(model)
    expected = _outputs(model, inputs)
    actual = _outputs(carried, inputs)
    worst = 0.0
    for want, got in zip(expected, actual, strict=True):
        scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-3)
        difference = float(np.max(np.abs(want - got), initial=0.0))
        if not np.isfinite(difference):
            difference = np.inf if np.isfinite(want).all() else 0.0
        worst = max(worst, difference / scale)
    if worst > MAX_RELATIVE_ERROR:
        raise ValueError(
            f"kdkeras.compress: the carried copy of {model.name!r} does not "
            f"give its outputs on random inputs (largest difference "
            f"{worst:.2e} of the output scale, allowed {MAX_RELATIVE_ERROR:g}): "
            "a layer is defined differently in Keras 3 and tf_keras."
        )
    return worst


def _rebuild(model, source, target):
    inputs = _check_model(model, source)
    rebuilder = _Rebuilder(source, target)
    new_inputs = []
    for tensor in inputs:
        history = getattr(tensor, "_keras_history", None)
        name = history[0].name if history is not None else None
        rebuilder.names.add(name)
        new_inputs.append(
            target.Input(
                batch_shape=tuple(tensor.shape),
                dtype=tf.as_dtype(tensor.dtype).name,
                name=name,
            )
        )
    outputs = rebuilder.run(model, new_inputs)
    rebuilt = target.Model(
        new_inputs if len(new_inputs) > 1 else new_inputs[0],
        outputs if len(outputs) > 1 else outputs[0],
        name=model.name,
    )
    rebuilder.copy_weights()
    check_outputs(model, rebuilt)
    return rebuilt


def to_tf_keras(model):
    """Rebuilds a Keras 3 model as a `tf_keras` functional model for TFMOT.

    Args:
        model: A built Keras 3 functional or `Sequential` model (nested
            models allowed) of layers that both libraries define alike
            (`SUPPORTED_LAYERS`, `keras.applications`' `LayerScale`) and
            elementwise `keras.ops` (add, subtract, multiply, divide,
            negative, maximum, minimum).

    Returns:
        A `tf_keras.Model` with the same inputs, layer names (nested models
        flattened), weights and inference outputs (checked on random inputs).
        Inference-identity augmentation layers are dropped.

    Raises:
        TypeError: `model` is not a Keras 3 model.
        ValueError: a layer cannot be carried (the message names it and
            why), or the copy's outputs differ.

    Example:

    >>> import keras, numpy as np
    >>> inputs = keras.Input((4,))
    >>> hidden = keras.layers.Dense(3, activation="relu")(inputs)
    >>> outputs = keras.layers.Add()([hidden, keras.layers.Dense(3)(inputs)])
    >>> student = keras.Model(inputs, outputs)
    >>> legacy = to_tf_keras(student)
    >>> x = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")
    >>> bool(np.allclose(student(x), legacy(x), atol=1e-6))
    True
    """
    return _rebuild(model, keras, tf_keras)


def from_tf_keras(model):
    """Rebuilds a (stripped) `tf_keras` model as a Keras 3 functional model.

    Use after `tfmot.sparsity.keras.strip_pruning` or
    `tfmot.clustering.keras.strip_clustering`. Quantization-aware models do
    not come back (their fake-quant state has no Keras 3 layer); export them
    with `export.to_tflite.export_tflite(model, path, quantize="qat")`.

    Args:
        model: A built `tf_keras` functional or `Sequential` model of the
            supported layers, without TFMOT wrappers.

    Returns:
        A Keras 3 `keras.Model` with the same weights and outputs (checked).

    Raises:
        TypeError: `model` is not a `tf_keras` model.
        ValueError: a layer cannot be carried, e.g. a TFMOT wrapper that was
            not stripped (the message names it).
    """
    for layer in getattr(model, "layers", ()):
        if type(layer).__module__.startswith("tensorflow_model_optimization"):
            raise layers.CannotCarry(
                layer,
                "strip TFMOT wrappers first (strip_pruning / strip_clustering); "
                "quantization-aware models go to TFLite with "
                "export.to_tflite.export_tflite(model, path, quantize='qat')",
            )
    return _rebuild(model, tf_keras, keras)
