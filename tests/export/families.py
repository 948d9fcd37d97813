"""Small members of the keras.applications families, for the export tests.

The public constructors (`EfficientNetB0`, `ConvNeXtTiny`, ...) have no width
argument; the family constructors behind them (`keras.src.applications`) take
the width and depth coefficients, so the tests build each family at its
smallest width: the same layers (`Normalization` with captured statistics,
squeeze-and-excitation, grouped depthwise convolutions, `LayerNormalization`,
GELU, layer scale) in a model that converts in seconds.
"""

import keras
import numpy as np

INPUT_SHAPE = (32, 32, 3)
CLASSES = 10


def _head():
    return {
        "input_shape": INPUT_SHAPE,
        "classes": CLASSES,
        "weights": None,
        "classifier_activation": None,
    }


def _efficientnet(constructor, name):
    """An EfficientNet family member at width 0.1, one repeat per block."""
    return constructor(
        width_coefficient=0.1,
        depth_coefficient=0.1,
        default_size=32,
        name=name,
        **_head(),
    )


def efficientnet():
    """EfficientNet (B0's blocks) at width 0.1, one repeat per block."""
    from keras.src.applications import efficientnet

    return _efficientnet(efficientnet.EfficientNet, "efficientnet_small")


def efficientnet_v2():
    """EfficientNetV2 (B0's blocks) at width 0.1, one repeat per block."""
    from keras.src.applications import efficientnet_v2

    return _efficientnet(efficientnet_v2.EfficientNetV2, "efficientnetv2-b0")


def convnext():
    """ConvNeXt with one block per stage and projection widths 8-64."""
    from keras.src.applications import convnext as convnext_module

    return convnext_module.ConvNeXt(
        depths=[1, 1, 1, 1],
        projection_dims=[8, 16, 32, 64],
        default_size=32,
        name="convnext_small",
        **_head(),
    )


BUILDERS = {
    "efficientnet": efficientnet,
    "efficientnet_v2": efficientnet_v2,
    "convnext": convnext,
}


def build(family, seed=0):
    """The family's small model with seeded weights, moved off its init.

    Batch-normalisation and `Normalization` statistics and layer scales are
    set to random values, so that the exported graph's constants are not the
    initialisers' zeros and ones (a converter that dropped them would still
    match).
    """
    keras.utils.set_random_seed(seed)
    model = BUILDERS[family]()
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        name = weight.path.rsplit("/", 1)[-1]
        if name in ("moving_mean", "mean"):
            weight.assign(rng.normal(0, 0.1, weight.shape).astype(weight.dtype))
        elif name in ("moving_variance", "variance"):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype(weight.dtype))
        elif "layer_scale" in weight.path:
            weight.assign(rng.uniform(0.5, 1.0, weight.shape).astype(weight.dtype))
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Normalization):
            layer.finalize_state()  # Its mean and variance tensors, from the weights.
    return model


def fresh_images(seed, batch_size):
    """Random images in the [0, 255] range the families' preprocessing expects."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (batch_size, *INPUT_SHAPE)).astype(np.float32)
