"""Multilayer perceptrons from Hinton, Vinyals & Dean (2015), §3 (MNIST).

Teacher: 784-1200-1200-10 with dropout and ±2-pixel input jitter. Student:
784-800-800-10 without regularisation. Both output logits (no softmax); the
compact MLP students are in `models.compact`.
"""

import keras

from models import checks
from models._classifier import DEFAULT_INPUT_SHAPE
from models._classifier import DEFAULT_NUM_CLASSES
from models._classifier import build_classifier


def _jitter(images, pixels, seed):
    # A translation of up to `pixels` in each direction, only in training;
    # nearest-neighbour so the shifts are whole pixels.
    height, width = images.shape[1:3]
    return keras.layers.RandomTranslation(
        height_factor=pixels / height,
        width_factor=pixels / width,
        fill_mode="constant",
        interpolation="nearest",
        seed=checks.layer_seed(seed, 0),
        name="jitter",
    )(images)


def _hidden_layers(x, hidden_units, dropout=0.0, seed=None):
    # `hidden_i` (ReLU), each followed by `dropout_i` when `dropout` > 0;
    # dropout seeds continue after the jitter's (0) and the input's (1).
    for index, units in enumerate(hidden_units, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{index}")(x)
        if dropout:
            x = keras.layers.Dropout(
                dropout,
                seed=checks.layer_seed(seed, 1 + index),
                name=f"dropout_{index}",
            )(x)
    return x


def build_mlp_teacher(
    hidden_units=(1200, 1200),
    input_dropout=0.2,
    hidden_dropout=0.5,
    jitter_pixels=2,
    num_classes=DEFAULT_NUM_CLASSES,
    input_shape=DEFAULT_INPUT_SHAPE,
    seed=None,
    name="mlp_teacher",
):
    """The paper's MNIST teacher: 784-1200-1200-10, dropout, input jitter.

    Layers: `jitter` (RandomTranslation by up to `jitter_pixels` pixels,
    training only) → `flatten` → `input_dropout` → `hidden_1` (ReLU) →
    `dropout_1` → `hidden_2` (ReLU) → `dropout_2` → `logits`.
    Dropout and jitter are active only when called with `training=True`.

    With the defaults: Parameters: 2,395,210. FLOPs per example: 4,785,600
    (2 × multiply-accumulates of the Dense layers, see `models.flops`).

    Note: on Fashion-MNIST this recipe is a weak teacher (it does not beat
    `build_mlp_student()` trained alone); use `build_cnn_teacher()` there.

    Args:
        hidden_units: Sequence of ints, width of each ReLU hidden layer.
        input_dropout: Float in [0, 1), dropout rate on the flattened pixels.
        hidden_dropout: Float in [0, 1), dropout rate after each hidden layer.
        jitter_pixels: Int >= 0, maximum random translation in pixels; 0
            disables the jitter layer.
        num_classes: Int >= 2, number of output logits.
        input_shape: `(height, width, channels)` of the images.
        seed: Optional int seeding the dropout and jitter layers.
        name: Model name.

    Returns:
        The teacher, a functional `keras.Model` from images to logits.

    Example:

    >>> teacher = build_mlp_teacher(hidden_units=(64,), seed=0)
    >>> [layer.name for layer in teacher.layers[1:]]
    ['jitter', 'flatten', 'input_dropout', 'hidden_1', 'dropout_1', 'logits']
    """
    hidden_units = checks.check_units("hidden_units", hidden_units)
    input_dropout = checks.check_rate("input_dropout", input_dropout)
    hidden_dropout = checks.check_rate("hidden_dropout", hidden_dropout)
    jitter_pixels = checks.check_width("jitter_pixels", jitter_pixels, minimum=0)
    seed = checks.check_seed(seed)

    def features(images):
        x = _jitter(images, jitter_pixels, seed) if jitter_pixels else images
        x = keras.layers.Flatten(name="flatten")(x)
        if input_dropout:
            x = keras.layers.Dropout(
                input_dropout, seed=checks.layer_seed(seed, 1), name="input_dropout"
            )(x)
        return _hidden_layers(x, hidden_units, hidden_dropout, seed)

    return build_classifier(features, num_classes, input_shape, name)


def build_mlp_student(
    hidden_units=(800, 800),
    num_classes=DEFAULT_NUM_CLASSES,
    input_shape=DEFAULT_INPUT_SHAPE,
    name="mlp_student",
):
    """The paper's MNIST student: 784-800-800-10, no regularisation.

    Layers: `flatten` → `hidden_1` (ReLU) → `hidden_2` (ReLU) → `logits`.
    Deterministic (no random layers), so it takes no seed.

    With the defaults: Parameters: 1,276,810. FLOPs per example: 2,550,400
    (2 × multiply-accumulates of the Dense layers, see `models.flops`).

    Args:
        hidden_units: Sequence of ints, width of each ReLU hidden layer.
        num_classes: Int >= 2, number of output logits.
        input_shape: `(height, width, channels)` of the images.
        name: Model name.

    Returns:
        The student, a deterministic functional `keras.Model` from images
        to logits.

    Example:

    >>> student = build_mlp_student(num_classes=3, input_shape=(8, 8, 1))
    >>> student.output.shape, student.get_layer("hidden_2").units
    ((None, 3), 800)
    """
    hidden_units = checks.check_units("hidden_units", hidden_units)

    def features(images):
        x = keras.layers.Flatten(name="flatten")(images)
        return _hidden_layers(x, hidden_units)

    return build_classifier(features, num_classes, input_shape, name)
