"""A tiny dense model and random inputs shared by the soft-target tests."""

import keras
import numpy as np

FEATURES = 6
CLASSES = 4


def dense_model(
    seed, hidden=8, *, activation="relu", dropout=False, augment=False, softmax=False
):
    """A seeded classifier of `FEATURES` inputs: one hidden layer, `CLASSES` outputs.

    Args:
        seed: the seed of its initial weights.
        hidden: the units of its hidden `Dense` layer.
        activation: the hidden layer's activation.
        dropout: whether `Dropout(0.5)` follows the hidden layer.
        augment: whether `RandomTranslation` first jitters the inputs, seen as
            2x3 images (like `Dropout`, active in training only).
        softmax: whether it outputs probabilities instead of logits.

    Returns:
        A `keras.Sequential` model.
    """
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((FEATURES,))]
    if augment:
        layers += [
            keras.layers.Reshape((2, 3, 1)),
            keras.layers.RandomTranslation(0.3, 0.3),
            keras.layers.Flatten(),
        ]
    layers.append(keras.layers.Dense(hidden, activation=activation))
    if dropout:
        layers.append(keras.layers.Dropout(0.5))
    layers.append(
        keras.layers.Dense(CLASSES, activation="softmax" if softmax else None)
    )
    return keras.Sequential(layers)


def random_x(seed, count=50):
    """`count` standard-normal examples of `FEATURES` features, float32."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, FEATURES)).astype("float32")


def indexed_x(count, seed=0):
    """Random inputs whose first feature is the example's index (to find it)."""
    x = np.random.default_rng(seed).standard_normal((count, FEATURES))
    x[:, 0] = np.arange(count)
    return x.astype("float32")
