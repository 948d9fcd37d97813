"""A compact student for deployment: a one-hidden-layer MLP, 784-100-10.

The demo's student (`examples/demo.py`): at least 10x fewer parameters and
5x fewer FLOPs per example than `models.build_cnn_teacher()`, and a plain
chain of two matrix products, so every runtime runs it at its BLAS floor.
"""

import keras

from models import checks

DEFAULT_INPUT_SHAPE = (28, 28, 1)
DEFAULT_NUM_CLASSES = 10


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
        A functional `keras.Model` mapping images to logits
        `(batch, num_classes)`.

    Example:

    >>> from models.flops import count_flops
    >>> student = build_compact_student()
    >>> student.count_params(), count_flops(student)
    (79510, 158800)
    >>> student.get_layer("hidden").units
    100
    """
    hidden_units = checks.check_positive_int("hidden_units", hidden_units)
    num_classes = checks.check_positive_int("num_classes", num_classes, 2)
    input_shape = checks.check_input_shape(input_shape)

    inputs = keras.Input(shape=input_shape, name="images")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(hidden_units, activation="relu", name="hidden")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
