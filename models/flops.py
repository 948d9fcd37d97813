"""FLOPs per example of a Keras model, counted from its layers.

Convention (the one the builders' docstrings use): FLOPs = 2 × the
multiply-accumulates of `Dense`, `Conv1D/2D/3D`, `DepthwiseConv1D/2D` and
`SeparableConv2D` layers for one example. Bias additions, activations,
pooling, normalisation, dropout and augmentation layers are not counted
(they are small next to the matrix products, and they vary by runtime:
BatchNormalization folds into the preceding convolution when exported).
"""

import math

import keras


def _known(layer, shape):
    """`shape` without its batch axis, refusing an unknown dimension."""
    if any(d is None for d in shape[1:]):
        raise ValueError(
            "`model` must have known input dimensions (besides the batch) to "
            f"count FLOPs. Received: layer {layer.name!r} with output shape "
            f"{tuple(shape)}"
        )
    return tuple(int(d) for d in shape[1:])


def _spatial_size(layer):
    # (batch, *spatial, channels) in channels_last; drop batch and channels.
    return math.prod(_known(layer, layer.output.shape)[:-1])


def _layer_macs(layer):
    """Multiply-accumulates for one example through `layer` (0 if none)."""
    if isinstance(layer, keras.layers.Dense):
        input_units = _known(layer, layer.input.shape)[-1]
        # A Dense on a rank > 2 input applies to every leading position.
        positions = math.prod(_known(layer, layer.output.shape)[:-1])
        return positions * input_units * layer.units
    if isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        _check_channels_last(layer)
        kernel = layer.kernel.shape  # (*k, in, multiplier)
        return _spatial_size(layer) * math.prod(kernel)
    if isinstance(layer, keras.layers.SeparableConv2D):
        _check_channels_last(layer)
        depthwise = layer.depthwise_kernel.shape
        pointwise = layer.pointwise_kernel.shape
        depthwise_output = math.prod(depthwise)
        return _spatial_size(layer) * (depthwise_output + math.prod(pointwise))
    if isinstance(
        layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
    ):
        _check_channels_last(layer)
        # kernel (*k, in / groups, out): every output position costs its size.
        return _spatial_size(layer) * math.prod(layer.kernel.shape)
    if hasattr(layer, "kernel") or hasattr(layer, "cell"):
        # Transposed convolutions, EinsumDense, recurrent layers...: matrix
        # products this convention does not count; 0 would be wrong.
        raise ValueError(
            "count_flops counts Dense, Conv1D/2D/3D, DepthwiseConv1D/2D and "
            "SeparableConv2D layers only. Received: layer "
            f"{layer.name!r} of type {type(layer).__name__}"
        )
    return 0


def _check_channels_last(layer):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise ValueError(
            "count_flops supports channels_last convolutions only. "
            f"Received: layer {layer.name!r} with "
            f"data_format={layer.data_format!r}"
        )


def _layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    if not model.built:
        raise TypeError(
            "`model` must be built (call it once or give it an Input). "
            f"Received: unbuilt model {model.name!r}"
        )


def count_flops(model):
    """FLOPs per example of a built functional/Sequential Keras model.

    Counts 2 × multiply-accumulates in Dense and convolution layers (see the
    module docstring); nested models are counted recursively.

    Args:
        model: A built `keras.Model` (Functional or Sequential), e.g. from
            `models.build_mlp_student()`.

    Returns:
        Int, FLOPs for one example.

    Raises:
        TypeError: `model` is not a built Keras model.

    Example:

    >>> import models
    >>> count_flops(models.build_mlp_student())
    2550400
    """
    _check_model(model)
    return 2 * sum(_layer_macs(layer) for layer in _layers(model))


def count_training_flops(model):
    """FLOPs per example of one training step of a built Keras model.

    The same layers and convention as `count_flops`: the forward pass, the
    gradients of every counted layer's weights (as many multiply-accumulates
    again) and the gradients of its input, except for the first counted
    layer, whose input (the data) needs none. So a chain of layers costs
    3 x its forward FLOPs minus its first layer's. This assumes the counted
    layers form a chain from the input, as in `models`' builders; the loss,
    activations and the optimizer are not counted.

    Args:
        model: A built `keras.Model`, as for `count_flops`.

    Returns:
        Int, FLOPs of one example's training step.

    Example:

    >>> import models
    >>> count_training_flops(models.build_compact_cnn_student())
    1561728
    """
    _check_model(model)
    macs = [_layer_macs(layer) for layer in _layers(model)]
    macs = [value for value in macs if value]
    return 2 * (3 * sum(macs) - (macs[0] if macs else 0))
