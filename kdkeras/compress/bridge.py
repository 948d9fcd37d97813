"""Bridge between Keras 3 students and `tf_keras` (Keras 2) models.

Why: TensorFlow Model Optimization (TFMOT 0.8.1) wraps layers with
`tf_keras` classes (`PruneLowMagnitude`, `ClusterWeights`, `QuantizeWrapperV2`)
and refuses Keras 3 layers, while kdkeras students are Keras 3 models.

How: `to_tf_keras` rebuilds the student layer by layer. For every supported
layer it copies the configuration fields that define the forward pass (units,
kernel size, strides, padding, activation, epsilon, ...), creates the
matching `tf_keras` layer, and copies the weights with `set_weights` (shapes
checked). The result is a `tf_keras.Sequential` with the same input shape,
dtype, layer names and weights, whose outputs are bit-identical to the
student's (same TensorFlow kernels; `BatchNormalization` is built with
`fused=False` so that both sides run `tf.nn.batch_normalization`).
`from_tf_keras` is the inverse, used after the TFMOT wrappers are stripped
(`strip_pruning`, `strip_clustering`) so the compressed student continues
through kdkeras' Keras 3 exporters.

Supported: Sequential models and functional chains (one input, one output,
each layer feeding the next) of `InputLayer`, `Dense`, `Conv2D`,
`DepthwiseConv2D`, `BatchNormalization`, `MaxPooling2D`, `AveragePooling2D`,
`GlobalAveragePooling2D`, `Flatten`, `Reshape`, `Dropout`, `Activation`,
`ReLU`, `Rescaling`, with float32 dtype policies, built-in activations and
`L1`/`L2`/`L1L2` regularizers. The other layers that are random in training
and the identity at inference (`kdkeras._random_layers`: `RandomFlip`,
`RandomTranslation`, ..., `GaussianNoise`, `GaussianDropout`,
`SpatialDropout2D`, `AlphaDropout`) are dropped (`DROPPED_LAYERS`): outputs at
inference are unchanged, but compression fine-tuning then runs without them.
Anything else raises a `ValueError` naming the layer.
"""

import keras
import tf_keras

from kdkeras import _model_graph as model_graph
from kdkeras import _random_layers as random_layers

# Configuration fields, per layer class, that define the forward pass. The
# same names are used by Keras 3 and tf_keras for these layers.
_LAYER_FIELDS = {
    "Dense": ("units", "activation", "use_bias"),
    "Conv2D": (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "data_format",
        "dilation_rate",
        "groups",
        "activation",
        "use_bias",
    ),
    "DepthwiseConv2D": (
        "kernel_size",
        "strides",
        "padding",
        "depth_multiplier",
        "data_format",
        "dilation_rate",
        "activation",
        "use_bias",
    ),
    "BatchNormalization": ("axis", "momentum", "epsilon", "center", "scale"),
    "MaxPooling2D": ("pool_size", "strides", "padding", "data_format"),
    "AveragePooling2D": ("pool_size", "strides", "padding", "data_format"),
    "GlobalAveragePooling2D": ("data_format", "keepdims"),
    "Flatten": ("data_format",),
    "Reshape": ("target_shape",),
    "Dropout": ("rate", "noise_shape", "seed"),
    "Activation": ("activation",),
    "ReLU": ("max_value", "negative_slope", "threshold"),
    "Rescaling": ("scale", "offset"),
}
_REGULARIZER_FIELDS = (
    "kernel_regularizer",
    "bias_regularizer",
    "depthwise_regularizer",
    "activity_regularizer",
    "beta_regularizer",
    "gamma_regularizer",
)
_CONSTRAINT_FIELDS = (
    "kernel_constraint",
    "bias_constraint",
    "depthwise_constraint",
    "beta_constraint",
    "gamma_constraint",
)
# Built-in activations with the same definition in Keras 3 and tf_keras
# (`hard_sigmoid` differs between the two, so it is not carried).
_ACTIVATIONS = frozenset(
    (
        "linear",
        "relu",
        "sigmoid",
        "tanh",
        "softmax",
        "elu",
        "selu",
        "softplus",
        "softsign",
        "swish",
        "silu",
        "gelu",
        "exponential",
    )
)
_REGULARIZERS = frozenset(("L1", "L2", "L1L2"))
SUPPORTED_LAYERS = frozenset(_LAYER_FIELDS) | {"InputLayer"}
# Identity at inference and not carried; dropped from a Keras 3 student.
DROPPED_LAYERS = random_layers.INFERENCE_IDENTITY_LAYERS - SUPPORTED_LAYERS
_HINT = (
    "Supported: "
    + ", ".join(sorted(SUPPORTED_LAYERS))
    + " (and inference-identity augmentation layers, which are dropped)."
)


def _dropped(layer):
    return (
        random_layers.is_inference_identity(layer)
        and type(layer).__name__ in DROPPED_LAYERS
    )


def _cannot_carry(layer, reason=""):
    reason = f" {reason}" if reason else ""
    return ValueError(
        f"kdkeras.compress cannot carry layer {layer.name!r} "
        f"({type(layer).__name__}).{reason} {_HINT}"
    )


def _dtype_name(dtype_config):
    """The policy name from a Keras 3 dtype config (dict) or a plain string."""
    if isinstance(dtype_config, dict):
        return dtype_config.get("config", {}).get("name")
    return dtype_config


def _regularizer_config(layer, field, value):
    """Keras-neutral `{"class_name", "config"}` for L1/L2/L1L2, else error."""
    if value is None:
        return None
    if (
        isinstance(value, dict)
        and value.get("class_name") in _REGULARIZERS
        and value.get("registered_name") in (None, value.get("class_name"))
    ):
        return {"class_name": value["class_name"], "config": value["config"]}
    raise _cannot_carry(layer, f"Its {field} is not one of {sorted(_REGULARIZERS)}.")


def _translate_config(layer, target):
    """Config for the same layer in `target` (the `keras` or `tf_keras` module)."""
    class_name = type(layer).__name__
    source_config = layer.get_config()
    if _dtype_name(source_config.get("dtype", "float32")) != "float32":
        raise _cannot_carry(
            layer,
            f"Its dtype policy is {_dtype_name(source_config['dtype'])!r}; "
            "only float32 students are supported.",
        )
    config = {"name": layer.name, "trainable": layer.trainable}
    for field in _LAYER_FIELDS[class_name]:
        if field not in source_config:
            continue
        value = source_config[field]
        if field == "activation" and value not in _ACTIVATIONS:
            raise _cannot_carry(
                layer,
                f"Its activation {value!r} is not one of {sorted(_ACTIVATIONS)}.",
            )
        if field == "axis" and isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise _cannot_carry(layer, f"Its axis {list(value)} is not one axis.")
            value = value[0]  # tf_keras stores BatchNormalization axis as [3].
        config[field] = value
    for field in _REGULARIZER_FIELDS:
        if field in source_config:
            regularizer = _regularizer_config(layer, field, source_config[field])
            if regularizer is not None:
                config[field] = target.regularizers.deserialize(regularizer)
    for field in _CONSTRAINT_FIELDS:
        if source_config.get(field) is not None:
            raise _cannot_carry(layer, f"It has a {field}.")
    if source_config.get("lora_rank") or source_config.get("renorm"):
        raise _cannot_carry(
            layer, "LoRA-enabled layers and batch renormalization are not supported."
        )
    if class_name == "BatchNormalization" and target is tf_keras:
        # Same op (`tf.nn.batch_normalization`) as Keras 3: exact outputs.
        config["fused"] = False
    return config


def _keras_history(node_args):
    """Names of the layers whose outputs feed a node, from a model config."""
    names = []
    if isinstance(node_args, dict):
        if "keras_history" in node_args:
            names.append(node_args["keras_history"][0])
        else:
            for value in node_args.values():
                names += _keras_history(value)
    elif isinstance(node_args, (list, tuple)):
        if (
            len(node_args) >= 3
            and isinstance(node_args[0], str)
            and isinstance(node_args[1], int)
        ):
            names.append(node_args[0])  # tf_keras: [name, node, tensor, {}]
        else:
            for value in node_args:
                names += _keras_history(value)
    return names


def _chain(model, framework):
    """The model's layers in order, checking that they form a single chain."""
    if not isinstance(model, framework.Model):
        raise TypeError(
            f"`model` must be a {framework.__name__} Model. "
            f"Received: model of type {type(model).__name__}"
        )
    model_input, _ = model_graph.single_input_output(model, "model")
    layers = list(model.layers)
    for layer in layers:
        class_name = type(layer).__name__
        if isinstance(layer, framework.Model):
            raise _cannot_carry(layer, "Nested models are not supported.")
        if class_name in SUPPORTED_LAYERS and isinstance(
            layer, getattr(framework.layers, class_name)
        ):
            continue
        if framework is keras and _dropped(layer):
            continue
        raise _cannot_carry(layer)
    if not isinstance(model, framework.Sequential):
        config_layers = model.get_config()["layers"]
        previous = None
        for layer_config in config_layers:
            sources = _keras_history(layer_config.get("inbound_nodes", []))
            if layer_config["class_name"] == "InputLayer":
                sources = [] if previous is None else ["<second input>"]
            if sources != ([] if previous is None else [previous]):
                raise ValueError(
                    "kdkeras.compress only carries Sequential models and "
                    f"single-chain functional models; layer "
                    f"{layer_config['config']['name']!r} of {model.name!r} "
                    f"takes inputs from {sources}, not only from the layer "
                    f"before it ({previous!r})."
                )
            previous = layer_config["config"]["name"]
        layers = [
            layer
            for layer in layers
            if not isinstance(layer, framework.layers.InputLayer)
        ]
    return model_input, layers


def _rebuild(model, source, target):
    model_input, layers = _chain(model, source)
    rebuilt_layers = [
        target.Input(
            batch_shape=tuple(model_input.shape),
            dtype=model_input.dtype
            if isinstance(model_input.dtype, str)
            else model_input.dtype.name,
            name=model.layers[0].name
            if isinstance(model.layers[0], source.layers.InputLayer)
            else None,
        )
    ]
    pairs = []
    for layer in layers:
        class_name = type(layer).__name__
        if source is keras and _dropped(layer):
            continue
        config = _translate_config(layer, target)
        new_layer = getattr(target.layers, class_name)(**config)
        rebuilt_layers.append(new_layer)
        pairs.append((layer, new_layer))
    rebuilt = target.Sequential(rebuilt_layers, name=model.name)
    for layer, new_layer in pairs:
        weights = layer.get_weights()
        expected = [tuple(w.shape) for w in new_layer.get_weights()]
        if [tuple(w.shape) for w in weights] != expected:
            raise _cannot_carry(
                layer,
                f"Its weight shapes {[w.shape for w in weights]} do not match "
                f"the rebuilt layer's {expected}.",
            )
        new_layer.set_weights(weights)
    return rebuilt


def to_tf_keras(model):
    """Rebuilds a Keras 3 student as a `tf_keras.Sequential` for TFMOT.

    Args:
        model: A built Keras 3 `Sequential` or single-chain functional model
            made of the supported layers (see the module docstring).

    Returns:
        A `tf_keras.Sequential` with the same input, layer names, weights and
        (bit-identical) inference outputs. Inference-identity augmentation
        layers are dropped.

    Raises:
        TypeError: `model` is not a Keras 3 model.
        ValueError: a layer cannot be carried (the message names it), or the
            model is not a single chain.

    Example:

    >>> import keras, numpy as np
    >>> student = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(3, activation="relu")])
    >>> legacy = to_tf_keras(student)
    >>> x = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")
    >>> bool(np.array_equal(student.predict(x, verbose=0),
    ...                     legacy.predict(x, verbose=0)))
    True
    """
    return _rebuild(model, keras, tf_keras)


def from_tf_keras(model):
    """Rebuilds a (stripped) `tf_keras` model as a Keras 3 `Sequential`.

    Use after `tfmot.sparsity.keras.strip_pruning` or
    `tfmot.clustering.keras.strip_clustering`. Quantization-aware models
    cannot come back (their fake-quant state has no Keras 3 layer); export
    them with `export.to_tflite.export_tflite(model, path, quantize="qat")`.

    Args:
        model: A built `tf_keras` Sequential or single-chain functional model
            of the supported layers, without TFMOT wrappers.

    Returns:
        A Keras 3 `keras.Sequential` with the same weights and outputs.

    Raises:
        TypeError: `model` is not a `tf_keras` model.
        ValueError: a layer cannot be carried, e.g. a TFMOT wrapper that was
            not stripped (the message names it).
    """
    for layer in getattr(model, "layers", ()):
        if type(layer).__module__.startswith("tensorflow_model_optimization"):
            raise _cannot_carry(
                layer,
                "Strip TFMOT wrappers first (strip_pruning / "
                "strip_clustering); quantization-aware models go to TFLite "
                "with export.to_tflite.export_tflite(model, path, quantize='qat').",
            )
    return _rebuild(model, tf_keras, keras)
