"""Compact students for deployment, each at least 10x smaller (parameters)
and 5x cheaper (FLOPs per example) than `models.build_cnn_teacher()`.

`build_compact_student`: the demo's student (`examples/demo.py`), an MLP
784-100-10, a plain chain of two matrix products, so every runtime runs it at
its BLAS floor. `build_compact_cnn_student`: two strided 3x3 convolutions and
the logits, the other compact size of RESULTS.md
(`python -m experiments.compact`).
"""

import keras

from models import checks
from models._classifier import DEFAULT_INPUT_SHAPE
from models._classifier import DEFAULT_NUM_CLASSES
from models._classifier import build_classifier


def build_compact_student(
    hidden_units=100,
    num_classes=DEFAULT_NUM_CLASSES,
    input_shape=DEFAULT_INPUT_SHAPE,
    name="compact_student",
):
    """A compact MLP student: 784-100-10, no regularisation.

    Layers: `flatten` → `hidden` (Dense, ReLU) → `logits`.
    Deterministic (no random layers), so it takes no seed.

    With the defaults: Parameters: 79,510. FLOPs per example: 158,800 (2 x
    multiply-accumulates of the Dense layers, see `models.flops`).

    Args:
        hidden_units: Int > 0, width of the ReLU hidden layer.
        num_classes: Int >= 2, number of output logits.
        input_shape: `(height, width, channels)` of the images.
        name: Model name.

    Returns:
        The student, a deterministic functional `keras.Model` from images
        to logits: two matrix products.

    Example:

    >>> from models.flops import count_flops
    >>> student = build_compact_student()
    >>> student.count_params(), count_flops(student)
    (79510, 158800)
    >>> student.get_layer("hidden").units
    100
    """
    hidden_units = checks.check_width("hidden_units", hidden_units)

    def features(images):
        x = keras.layers.Flatten(name="flatten")(images)
        return keras.layers.Dense(hidden_units, activation="relu", name="hidden")(x)

    return build_classifier(features, num_classes, input_shape, name)


def build_compact_cnn_student(
    filters=(16, 32),
    num_classes=DEFAULT_NUM_CLASSES,
    input_shape=DEFAULT_INPUT_SHAPE,
    name="compact_cnn_student",
):
    """A compact CNN student: strided 3x3 convolutions, then the logits.

    Layers: for each entry `i` of `filters`, `conv_i` (3x3, stride 2,
    same, ReLU); then `flatten` → `logits`. No pooling, normalisation or
    dropout: deterministic, so it takes no seed.

    With the defaults: Parameters: 20,490. FLOPs per example: 539,392
    (2 x multiply-accumulates of the Conv2D and Dense layers, see
    `models.flops`).

    Args:
        filters: Sequence of ints, filters of each strided convolution.
        num_classes: Int >= 2, number of output logits.
        input_shape: `(height, width, channels)` of the images.
        name: Model name.

    Returns:
        The student, a functional `keras.Model` from images to logits,
        the same in training and inference.

    Example:

    >>> student = build_compact_cnn_student()
    >>> student.count_params(), student.get_layer("conv_2").strides
    (20490, (2, 2))
    """
    filters = checks.check_units("filters", filters)

    def features(images):
        x = images
        for index, count in enumerate(filters, start=1):
            x = keras.layers.Conv2D(
                count,
                3,
                strides=2,
                padding="same",
                activation="relu",
                name=f"conv_{index}",
            )(x)
        return keras.layers.Flatten(name="flatten")(x)

    return build_classifier(features, num_classes, input_shape, name)
