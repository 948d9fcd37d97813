"""A small model that full-integer int8 breaks and a float fallback repairs.

Its first Dense layer has one output channel 300 times larger than the others
(an outlier channel, as in transformer activations); the next layer reads the
small channels. One int8 scale per tensor spends the range on the outlier and
rounds the small channels away, so the int8 model disagrees with Keras; kept in
float, those two layers restore it. A LayerNormalization and a GELU follow, the
ops of ConvNeXt and BERT blocks.
"""

import keras
import numpy as np

FEATURES = 16
CLASSES = 10


def outlier_model(seed=0):
    """The model (float32, logits), deterministic for a seed."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((FEATURES,))
    wide = keras.layers.Dense(64, name="wide")
    mix = keras.layers.Dense(32, name="mix")
    x = mix(wide(inputs))
    x = keras.layers.LayerNormalization(name="norm")(x)
    x = keras.layers.Activation("gelu", name="gelu")(x)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, name="head")(x))
    kernel, bias = wide.get_weights()
    kernel[:, 0] *= 300.0
    wide.set_weights([kernel, bias])
    kernel, bias = mix.get_weights()
    kernel[0, :] /= 300.0
    mix.set_weights([kernel, bias])
    return model


def inputs(seed, count):
    """Uniform [0, 1) inputs."""
    return np.random.default_rng(seed).random((count, FEATURES), dtype=np.float32)
