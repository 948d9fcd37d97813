"""Tiny synthetic data and models shared by the Distiller tests."""

import keras
import numpy as np

import kdkeras

NUM_CLASSES = 5
FEATURES = 12


def random_data(examples=64, seed=0):
    """`(x, y)`: standard-normal features and uniform integer labels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(examples, FEATURES)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=examples).astype("int32")
    return x, y


def mlp(
    width=16,
    seed=0,
    dropout=0.0,
    classes=NUM_CLASSES,
    features=FEATURES,
    activation=None,
    batch_norm=False,
):
    """A seeded one-hidden-layer MLP whose last layer is named `"logits"`."""
    keras.utils.set_random_seed(seed)
    layers = [
        keras.Input((features,)),
        keras.layers.Dense(width, activation="relu", name="hidden"),
    ]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(classes, activation=activation, name="logits"))
    return keras.Sequential(layers)


def linear(seed, classes=NUM_CLASSES):
    """A seeded linear classifier (one `Dense` named `"logits"`)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(classes, name="logits")]
    )


def compiled_distiller(alpha, temperature=4.0, **compile_kwargs):
    """An 8-unit student and a 32-unit teacher, compiled with SGD(0.05)."""
    distiller = kdkeras.Distiller(student=mlp(8, seed=1), teacher=mlp(32, seed=2))
    compile_kwargs.setdefault("optimizer", keras.optimizers.SGD(0.05))
    distiller.compile(alpha=alpha, temperature=temperature, **compile_kwargs)
    return distiller
