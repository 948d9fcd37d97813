"""Convolutional nets for 28×28 images: a CNN teacher and a small CNN student.

Both output logits (no softmax) and are functional models, so intermediate
layers can be looked up by name (e.g. for hint losses).
"""

import keras

from models import checks
from models._classifier import DEFAULT_INPUT_SHAPE
from models._classifier import DEFAULT_NUM_CLASSES
from models._classifier import build_classifier


def build_cnn_teacher(
    filters=(32, 64),
    dense_units=256,
    dropout=0.4,
    num_classes=DEFAULT_NUM_CLASSES,
    input_shape=DEFAULT_INPUT_SHAPE,
    seed=None,
    name="cnn_teacher",
):
    """A plain CNN teacher: conv32-pool-conv64-pool, dense 256, dropout 0.4.

    Layers: for each entry of `filters`, `conv_i` (3×3, same, ReLU) →
    `pool_i` (2×2 max); then `flatten` → `dropout_1` → `hidden` (ReLU) →
    `dropout_2` → `logits`. Dropout is active only with `training=True`.
    Its test errors on Fashion-MNIST, against `build_mlp_student()` alone,
    are in RESULTS.md (`python -m experiments.table`).

    With the defaults: Parameters: 824,458. FLOPs per example: 9,287,680
    (2 × multiply-accumulates of the Conv2D and Dense layers, see
    `models.flops`).

    Args:
        filters: Sequence of ints, filters of each conv block.
        dense_units: Int, width of the ReLU dense layer.
        dropout: Float in [0, 1), dropout rate before and after the dense
            layer.
        num_classes: Int >= 2, number of output logits.
        input_shape: `(height, width, channels)` of the images.
        seed: Optional int seeding the dropout layers.
        name: Model name.

    Returns:
        The teacher, a functional `keras.Model` from images to logits, its
        `conv_i` and `hidden` layers at hand for hint losses.

    Example:

    >>> teacher = build_cnn_teacher(seed=0)
    >>> teacher.get_layer("conv_2").filters, teacher.get_layer("hidden").units
    (64, 256)
    """
    filters = checks.check_units("filters", filters)
    dense_units = checks.check_width("dense_units", dense_units)
    dropout = checks.check_rate("dropout", dropout)
    seed = checks.check_seed(seed)

    def features(images):
        x = images
        for index, count in enumerate(filters, start=1):
            x = keras.layers.Conv2D(
                count, 3, padding="same", activation="relu", name=f"conv_{index}"
            )(x)
            x = keras.layers.MaxPooling2D(2, name=f"pool_{index}")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dropout(
            dropout, seed=checks.layer_seed(seed, 0), name="dropout_1"
        )(x)
        x = keras.layers.Dense(dense_units, activation="relu", name="hidden")(x)
        return keras.layers.Dropout(
            dropout, seed=checks.layer_seed(seed, 1), name="dropout_2"
        )(x)

    return build_classifier(features, num_classes, input_shape, name)


def build_cnn_student(
    filters=(32, 64, 128),
    dropout=0.2,
    num_classes=DEFAULT_NUM_CLASSES,
    input_shape=DEFAULT_INPUT_SHAPE,
    seed=None,
    name="cnn_student",
):
    """A small CNN student built from depthwise-separable blocks.

    Layers: `conv_1` (3×3, same, no bias) → `bn_1` → `relu_1`; then for each
    further entry `i` of `filters`: `pool_i` (2×2 max) → `depthwise_i`
    (3×3 DepthwiseConv2D, same, no bias) → `depthwise_bn_i` →
    `depthwise_relu_i` → `pointwise_i` (1×1 Conv2D, no bias) → `bn_i` →
    `relu_i`; then `global_pool` (GlobalAveragePooling2D) → `dropout` →
    `logits`. BatchNormalization uses batch statistics only in training.

    With the defaults: Parameters: 13,962 (13,322 trainable; the 640
    others are BatchNormalization moving statistics). FLOPs per example:
    2,229,120 (2 × multiply-accumulates of the Conv2D, DepthwiseConv2D and
    Dense layers, see `models.flops`).

    Args:
        filters: Sequence of ints; the first is the plain 3×3 convolution,
            each further one the output width of a separable block.
        dropout: Float in [0, 1), dropout rate before the logits.
        num_classes: Int >= 2, number of output logits.
        input_shape: `(height, width, channels)` of the images.
        seed: Optional int seeding the dropout layer.
        name: Model name.

    Returns:
        The student, a functional `keras.Model` from images to logits.

    Example:

    >>> student = build_cnn_student(num_classes=5, input_shape=(32, 32, 3))
    >>> student.get_layer("depthwise_2").kernel_size, student.output.shape
    ((3, 3), (None, 5))
    """
    filters = checks.check_units("filters", filters)
    dropout = checks.check_rate("dropout", dropout)
    seed = checks.check_seed(seed)

    def features(images):
        x = keras.layers.Conv2D(
            filters[0], 3, padding="same", use_bias=False, name="conv_1"
        )(images)
        x = keras.layers.BatchNormalization(name="bn_1")(x)
        x = keras.layers.ReLU(name="relu_1")(x)
        for index, count in enumerate(filters[1:], start=2):
            x = keras.layers.MaxPooling2D(2, name=f"pool_{index}")(x)
            x = keras.layers.DepthwiseConv2D(
                3, padding="same", use_bias=False, name=f"depthwise_{index}"
            )(x)
            x = keras.layers.BatchNormalization(name=f"depthwise_bn_{index}")(x)
            x = keras.layers.ReLU(name=f"depthwise_relu_{index}")(x)
            x = keras.layers.Conv2D(
                count, 1, use_bias=False, name=f"pointwise_{index}"
            )(x)
            x = keras.layers.BatchNormalization(name=f"bn_{index}")(x)
            x = keras.layers.ReLU(name=f"relu_{index}")(x)
        x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
        if dropout:
            x = keras.layers.Dropout(
                dropout, seed=checks.layer_seed(seed, 0), name="dropout"
            )(x)
        return x

    return build_classifier(features, num_classes, input_shape, name)
