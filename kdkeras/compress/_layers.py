"""One layer of a Keras 3 model as a `tf_keras` layer, and back.

A layer is carried through its `get_config()`: the class of the same name in
the other library is built `from_config` with the configuration translated by
a small table of the known differences (below), and its weights are copied by
the caller. Only the classes in `CARRIED_LAYERS` are carried: each exists in
both libraries with the same forward definition (checked by the tests on
random configurations). Keras 3 operations recorded in a functional graph
(`x + 3.0`, `x * y`) become the same TensorFlow ops in `tf_keras`
(`TFOpLambda` layers), and come back as `keras.ops` calls.

Known differences handled here:

- `dtype`: a Keras 3 `DTypePolicy` dict, a plain string in `tf_keras`; only
  float32 layers are carried.
- Initializers are not carried (the weights are copied); regularizers
  (`L1`, `L2`, `L1L2`) and constraints (`MaxNorm`, `MinMaxNorm`, `NonNeg`,
  `UnitNorm`) are.
- `LeakyReLU`: `negative_slope` in Keras 3, `alpha` in `tf_keras`.
- `BatchNormalization`: built with `fused=False` in `tf_keras`, the same op
  as Keras 3; Keras 3's `synchronized` and renormalization are refused.
- `LayerNormalization`: `rms_scaling` (Keras 3 only) is refused.
- Activations: the names with one definition in both libraries are carried
  as they are (`silu` as `tf_keras`' `swish`); `relu6`, `hard_sigmoid` and
  `hard_silu` (`hard_swish`) are Keras 3 definitions that `tf_keras` lacks
  (its own `hard_sigmoid` is `0.2 x + 0.5`): they are carried as `tf_keras`
  functions with Keras 3's definition (`kdkeras>relu6`, ...). Others are
  refused.
"""

import keras
import tensorflow as tf
import tf_keras

# Layer classes with the same name and forward definition in Keras 3 and
# tf_keras.
CARRIED_LAYERS = frozenset(
    (
        "Activation",
        "Add",
        "Average",
        "AveragePooling1D",
        "AveragePooling2D",
        "AveragePooling3D",
        "BatchNormalization",
        "Concatenate",
        "Conv1D",
        "Conv1DTranspose",
        "Conv2D",
        "Conv2DTranspose",
        "Conv3D",
        "Cropping1D",
        "Cropping2D",
        "Cropping3D",
        "Dense",
        "DepthwiseConv2D",
        "Dropout",
        "ELU",
        "Flatten",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalAveragePooling3D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "GlobalMaxPooling3D",
        "LayerNormalization",
        "LeakyReLU",
        "MaxPooling1D",
        "MaxPooling2D",
        "MaxPooling3D",
        "Maximum",
        "Minimum",
        "Multiply",
        "Normalization",
        "Permute",
        "PReLU",
        "ReLU",
        "RepeatVector",
        "Rescaling",
        "Reshape",
        "SeparableConv1D",
        "SeparableConv2D",
        "Softmax",
        "Subtract",
        "UpSampling1D",
        "UpSampling2D",
        "ZeroPadding1D",
        "ZeroPadding2D",
        "ZeroPadding3D",
    )
)


def _relu6(x):
    return tf.nn.relu6(x)


def _hard_sigmoid(x):
    # Keras 3 (TensorFlow backend): relu6(x + 3) / 6.
    return tf.nn.relu6(x + tf.constant(3.0, x.dtype)) / tf.constant(6.0, x.dtype)


def _hard_silu(x):
    return x * _hard_sigmoid(x)


_relu6.__name__ = "relu6"  # The name TFMOT's 8-bit registry knows.
_hard_sigmoid.__name__ = "hard_sigmoid"
_hard_silu.__name__ = "hard_silu"
# Keras 3 definitions that tf_keras has not (or defines differently),
# registered for tf_keras' (de)serialization, which TFMOT's cloning uses.
_KERAS3_ACTIVATIONS = {
    name: tf_keras.saving.register_keras_serializable("kdkeras", name)(function)
    for name, function in (
        ("relu6", _relu6),
        ("hard_sigmoid", _hard_sigmoid),
        ("hard_silu", _hard_silu),
    )
}
# Keras 3 activation name -> tf_keras activation (name or function).
_TO_TF_KERAS_ACTIVATIONS = {
    **{
        name: name
        for name in (
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
            "gelu",
            "exponential",
            "mish",
        )
    },
    "silu": "swish",
    "hard_swish": _KERAS3_ACTIVATIONS["hard_silu"],
    **_KERAS3_ACTIVATIONS,
}
# tf_keras activation name (as serialized) -> Keras 3 activation name.
_TO_KERAS_ACTIVATIONS = {
    **{
        name: name
        for name, value in _TO_TF_KERAS_ACTIVATIONS.items()
        if isinstance(value, str) and name == value
    },
    **{f"kdkeras>{name}": name for name in _KERAS3_ACTIVATIONS},
}
_SERIALIZED_CLASSES = {
    "regularizer": ("L1", "L2", "L1L2"),
    "constraint": ("MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"),
}
# Configuration keys that only one library has: dropped when they hold the
# neutral value, refused otherwise (key -> neutral values).
_ONE_SIDED = {
    "quantization_config": (None,),
    "lora_rank": (None, 0),
    "lora_alpha": None,  # Any value: meaningless without lora_rank.
    "synchronized": (False,),
    "renorm": (False,),
    "renorm_clipping": (None,),
    "renorm_momentum": None,
    "rms_scaling": (False,),
    "fused": None,
    "virtual_batch_size": (None,),
    "adjustment": (None,),
}
# The same, for one class only.
_ONE_SIDED_BY_CLASS = {
    # tf_keras' depthwise and separable convolutions take `groups` too, and
    # its separable ones an unused `kernel_*` besides `depthwise_*`.
    "DepthwiseConv2D": {"groups": (1,)},
    **{
        name: {
            "groups": (1,),
            "kernel_initializer": None,
            "kernel_regularizer": (None,),
            "kernel_constraint": (None,),
        }
        for name in ("SeparableConv1D", "SeparableConv2D")
    },
}
_RENAMED = {"LeakyReLU": {"negative_slope": "alpha"}}
# Functions of the TensorFlow ops recorded as `TFOpLambda` layers in tf_keras
# by their symbol, with the Keras 3 operation of the same definition.
_OPS = {
    "Add": (("math.add", "__operators__.add"), tf.math.add, keras.ops.add),
    "Subtract": (("math.subtract",), tf.math.subtract, keras.ops.subtract),
    "Multiply": (("math.multiply",), tf.math.multiply, keras.ops.multiply),
    "Divide": (("math.truediv",), tf.math.truediv, keras.ops.divide),
    "TrueDivide": ((), tf.math.truediv, keras.ops.true_divide),
    "Negative": (("math.negative",), tf.math.negative, keras.ops.negative),
    "Maximum": (("math.maximum",), tf.math.maximum, keras.ops.maximum),
    "Minimum": (("math.minimum",), tf.math.minimum, keras.ops.minimum),
}
_KERAS_OPS_BY_SYMBOL = {
    symbol: keras_op for symbols, _, keras_op in _OPS.values() for symbol in symbols
}


class CannotCarry(ValueError):
    """A layer the bridge cannot carry; the message names it and why."""

    def __init__(self, layer, reason):
        super().__init__(
            f"kdkeras.compress cannot carry layer {layer.name!r} "
            f"({type(layer).__name__}): {reason}"
        )


def _application_layers():
    """Layers that keras.applications define and tf_keras defines alike."""
    from keras.src.applications import convnext as keras_convnext
    from tf_keras.src.applications import convnext as tf_keras_convnext

    return ((keras_convnext.LayerScale, tf_keras_convnext.LayerScale),)


def is_operation(operation):
    """Whether a graph call is a Keras 3 operation (not a layer)."""
    return not isinstance(operation, (keras.layers.Layer, tf_keras.layers.Layer))


def target_class(layer, target):
    """The class of `target` (`keras` or `tf_keras`) that carries `layer`.

    Raises:
        CannotCarry: no class of the other library has its definition.
    """
    source = tf_keras if target is keras else keras
    name = type(layer).__name__
    if name in CARRIED_LAYERS and type(layer) is getattr(source.layers, name):
        return getattr(target.layers, name)
    for keras_class, tf_keras_class in _application_layers():
        pair = (keras_class, tf_keras_class)
        if type(layer) is pair[source is tf_keras]:
            return pair[target is tf_keras]
    if name == "TFOpLambda" and source is tf_keras:
        return None  # Carried by `call_tf_op_lambda`.
    known = "" if name in CARRIED_LAYERS else " (a custom layer or a layer class"
    reason = (
        "it is not one of the layer classes that Keras 3 and tf_keras both define alike"
    )
    if known:
        reason += f"{known}, its forward definition unknown to the other library)"
    raise CannotCarry(layer, reason)


def _dtype_name(value):
    if isinstance(value, dict):
        return value.get("config", {}).get("name")
    return value


def _serialized(layer, key, value, kind, target):
    """A regularizer or constraint config, rebuilt in `target`."""
    if value is None:
        return None
    if (
        isinstance(value, dict)
        and value.get("class_name") in _SERIALIZED_CLASSES[kind]
        and value.get("registered_name") in (None, value.get("class_name"))
    ):
        module = getattr(target, kind + "s")
        return module.deserialize(
            {"class_name": value["class_name"], "config": value["config"]}
        )
    raise CannotCarry(
        layer,
        f"its {key} is not one of {', '.join(_SERIALIZED_CLASSES[kind])}",
    )


def _activation(layer, value, target):
    if isinstance(value, dict) and value.get("class_name") == "function":
        value = value.get("config")  # A registered function, by its name.
    if target is tf_keras:
        if isinstance(value, str) and value in _TO_TF_KERAS_ACTIVATIONS:
            return _TO_TF_KERAS_ACTIVATIONS[value]
    elif isinstance(value, str) and value in _TO_KERAS_ACTIVATIONS:
        return _TO_KERAS_ACTIVATIONS[value]
    shown = repr(value if isinstance(value, str) else type(value).__name__)[:60]
    raise CannotCarry(
        layer,
        f"its activation {shown} is not one that Keras 3 and tf_keras define alike",
    )


def translate_config(layer, target):
    """`layer.get_config()` for the class of `target` that carries it.

    Args:
        layer: A Keras 3 or `tf_keras` layer.
        target: `tf_keras` or `keras`, the library to carry it to.

    Returns:
        The configuration for `target_class(layer, target).from_config`.

    Raises:
        CannotCarry: a setting the other library has not.
    """
    config = dict(layer.get_config())
    dtype = _dtype_name(config.get("dtype", "float32"))
    if dtype not in (None, "float32"):
        raise CannotCarry(
            layer, f"its dtype policy is {dtype!r}; only float32 layers are carried"
        )
    config["dtype"] = "float32"
    one_sided = {**_ONE_SIDED, **_ONE_SIDED_BY_CLASS.get(type(layer).__name__, {})}
    for key in list(config):
        value = config[key]
        if key in one_sided:
            neutral = one_sided[key]
            if neutral is not None and value not in neutral:
                raise CannotCarry(
                    layer,
                    f"its {key}={str(value)[:40]} has no equivalent in the "
                    "other library",
                )
            del config[key]
        elif key.endswith("_initializer"):
            del config[key]  # The weights are copied.
        elif key.endswith("_regularizer"):
            config[key] = _serialized(layer, key, value, "regularizer", target)
        elif key.endswith("_constraint"):
            config[key] = _serialized(layer, key, value, "constraint", target)
        elif "activation" in key:
            config[key] = _activation(layer, value, target)
    renamed = _RENAMED.get(type(layer).__name__, {})
    if target is keras:
        renamed = {new: old for old, new in renamed.items()}
    for old, new in renamed.items():
        if old in config:
            config[new] = config.pop(old)
    if type(layer).__name__ == "BatchNormalization":
        if target is tf_keras:
            config["fused"] = False  # `tf.nn.batch_normalization`, as Keras 3.
        else:  # tf_keras stores the axis as a list, `[3]`.
            axis = list(config["axis"]) if _is_list(config["axis"]) else None
            if axis is not None and len(axis) != 1:
                raise CannotCarry(layer, f"its axis {axis} is not one axis")
            config["axis"] = config["axis"] if axis is None else axis[0]
    return _plain(config)


def _is_list(value):
    return isinstance(value, (list, tuple)) or type(value).__name__ == "ListWrapper"


def _plain(value):
    """`value` with tf_keras' tracking wrappers (`ListWrapper`) as lists."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if _is_list(value):
        return [_plain(item) for item in value]
    return value


def call_operation(operation, args, kwargs):
    """Calls the `tf_keras` equivalent of a recorded Keras 3 operation.

    Args:
        operation: A Keras 3 operation of a graph (`keras.ops.add`'s ...).
        args, kwargs: Its arguments with `tf_keras` tensors in place.

    Returns:
        The `tf_keras` output tensor (of a `TFOpLambda` layer).

    Raises:
        CannotCarry: an operation without a known TensorFlow equivalent.
    """
    name = type(operation).__name__
    if name not in _OPS or kwargs:
        raise CannotCarry(
            operation,
            f"the Keras operation is not one of {', '.join(sorted(_OPS))} "
            "(write it as a layer)",
        )
    return _OPS[name][1](*args)


def call_tf_op_lambda(layer, args, kwargs):
    """Calls the Keras 3 equivalent of a `tf_keras` `TFOpLambda` call."""
    symbol = getattr(layer, "symbol", None)
    kwargs = {key: value for key, value in kwargs.items() if key != "name"}
    # A cloned tf_keras model (TFMOT's wrapping clones) records the ops'
    # operands as keywords: `tf.math.add(x, y=3.0)`.
    args = list(args) + [kwargs.pop(key) for key in ("x", "y") if key in kwargs]
    if symbol not in _KERAS_OPS_BY_SYMBOL or kwargs:
        raise CannotCarry(
            layer,
            f"the TensorFlow op {str(symbol)[:40]!r} has no Keras 3 "
            "equivalent known to kdkeras.compress",
        )
    return _KERAS_OPS_BY_SYMBOL[symbol](*args)
