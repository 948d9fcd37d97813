"""Layers that draw random numbers in training and are the identity at inference.

Dropout, noise and random augmentation change their input only while a model
trains; at inference they return it untouched. Three questions in kdkeras
turn on that: which layers the `tf_keras` bridge may drop
(`kdkeras.compress.bridge`), which models XLA slows down on a CPU
(`kdkeras._step.xla`: random draws in training), and which layers make cached soft
targets stale (`kdkeras.targets`: augmentation). This module answers the
first two and names the layers once.
"""

import keras

#: Class names of the Keras layers that draw random numbers in training and
#: return their input unchanged at inference.
INFERENCE_IDENTITY_LAYERS = frozenset(
    (
        "AlphaDropout",
        "Dropout",
        "GaussianDropout",
        "GaussianNoise",
        "RandomBrightness",
        "RandomContrast",
        "RandomFlip",
        "RandomRotation",
        "RandomTranslation",
        "RandomZoom",
        "SpatialDropout2D",
    )
)


def sublayers(model):
    """`model` and every layer inside it, recursively.

    Args:
        model: A `keras.layers.Layer` or `keras.Model`.

    Returns:
        List of layers, `model` first.
    """
    # Keras has no public recursive walk that also sees layers held by
    # custom layers; `_flatten_layers` is the one Keras itself uses.
    return list(model._flatten_layers(include_self=True))


def is_inference_identity(layer):
    """Whether `layer` is one of the `INFERENCE_IDENTITY_LAYERS`.

    Args:
        layer: A `keras.layers.Layer`.

    Returns:
        Bool: True for exactly those Keras classes (not subclasses, which may
        change what they do).

    Example:

    >>> is_inference_identity(keras.layers.Dropout(0.5))
    True
    >>> is_inference_identity(keras.layers.RandomCrop(2, 2))  # crops at inference
    False
    """
    name = type(layer).__name__
    return name in INFERENCE_IDENTITY_LAYERS and type(layer) is getattr(
        keras.layers, name
    )


def draws_random_numbers(layer):
    """Whether `layer` itself draws random numbers when it trains.

    Any layer holding a `keras.random.SeedGenerator` does: dropout, noise,
    random augmentation, and custom layers built the same way.

    Args:
        layer: A `keras.layers.Layer`.

    Returns:
        Bool.

    Example:

    >>> draws_random_numbers(keras.layers.GaussianNoise(0.1))
    True
    >>> draws_random_numbers(keras.layers.Dense(3))
    False
    """
    # Keras keeps a layer's seed generators in `_seed_generators` and has no
    # public accessor for them.
    return bool(layer._seed_generators)


def random_in_training(model):
    """The layers inside `model` that draw random numbers when it trains.

    Args:
        model: A `keras.layers.Layer` or `keras.Model`.

    Returns:
        List of layers (empty if none).

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dropout(0.5, name="drop"),
    ...      keras.layers.Dense(3)])
    >>> [layer.name for layer in random_in_training(model)]
    ['drop']
    """
    return [layer for layer in sublayers(model) if draws_random_numbers(layer)]
