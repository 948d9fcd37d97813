"""The ends every model builder shares: an `images` input and `logits`."""

import keras

from models import checks

DEFAULT_INPUT_SHAPE = (28, 28, 1)
DEFAULT_NUM_CLASSES = 10


def build_classifier(features, num_classes, input_shape, name):
    """Checks the arguments every builder takes, then builds the model.

    `features` maps the `images` input tensor to the tensor the `logits`
    Dense layer (no activation) reads; the builder's own layers are created
    inside it, after all arguments were checked, so a bad argument raises
    before any layer is made.
    """
    num_classes = checks.check_width("num_classes", num_classes, 2)
    input_shape = checks.check_input_shape(input_shape)
    inputs = keras.Input(shape=input_shape, name="images")
    # The builder's layers first: each layer draws its initializers' seeds
    # when it is made, so the order of creation fixes the weights.
    x = features(inputs)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
