"""A small CNN student trained once per test process, shared by the export tests.

Conv2D, DepthwiseConv2D, BatchNormalization (momentum 0.9 so a few steps move
the moving statistics far from their 0/1 start), max and average pooling,
Dropout, Flatten, Dense and relu / relu6 / swish / gelu activations, trained
for a few epochs on a Fashion-MNIST slice: BN statistics are non-trivial and
the logits are confident enough for top-1 agreement to mean something.
"""

import atexit
import functools
import os
import shutil
import tempfile

import numpy as np

TRAIN_EXAMPLES = 1024
TEST_EXAMPLES = 500


def build_cnn(seed=0):
    import keras

    layers = keras.layers
    inputs = keras.Input((28, 28, 1), name="images")
    x = layers.Conv2D(12, 3, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.Activation("relu6")(x)
    x = layers.Conv2D(24, 1, activation="swish")(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3, seed=seed)(x)
    x = layers.Dense(48, activation="gelu")(x)
    outputs = layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="test_cnn")


@functools.cache
def trained_cnn():
    """`(model, keras_path, (x_test, y_test))`, built and trained once."""
    import keras
    import tensorflow as tf

    from models.data import load_fashion_mnist

    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(
        limit_train=TRAIN_EXAMPLES, limit_test=TEST_EXAMPLES
    )
    model = build_cnn()
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=4, batch_size=32, verbose=0)
    folder = tempfile.mkdtemp(prefix="kdkeras-export-tests-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = os.path.join(folder, "student.keras")
    model.save(path)
    return model, path, (x_test, y_test)


def fresh_inputs(seed, batch_size):
    """Uniform [0, 1) images from a seed the exporters' own check does not use."""
    rng = np.random.default_rng(seed)
    return rng.random((batch_size, 28, 28, 1), dtype=np.float64).astype(np.float32)


def bn_statistics_moved(model):
    """Largest |moving_mean| over the BatchNormalization layers (0 at init)."""
    import keras

    return max(
        float(np.max(np.abs(layer.moving_mean.numpy())))
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
