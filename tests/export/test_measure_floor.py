"""Tests for export.measure.floor: the NumPy floor reproduces Keras, or refuses."""

import keras
import numpy as np
import pytest

from export import measure

ACTIVATIONS = ["relu", "tanh", "sigmoid", "linear", "softmax", "relu6"]


@pytest.mark.parametrize("transposed_gemv", [False, True])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_numpy_forward_equals_keras(activation, transposed_gemv):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation=activation),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(16),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dense(10),
        ]
    )
    batch_norm = model.layers[4]
    rng = np.random.default_rng(4)
    batch_norm.moving_mean.assign(rng.normal(0, 1, 16))
    batch_norm.moving_variance.assign(rng.uniform(0.5, 2, 16))
    batch_norm.gamma.assign(rng.normal(1, 0.3, 16))
    forward = measure.numpy_forward(model, transposed_gemv=transposed_gemv)
    for batch in (1, 7):  # with transposed_gemv, batch 1 takes the matrix-vector path
        x = np.random.default_rng(5).random((batch, 28, 28, 1), dtype=np.float32)
        expected = np.asarray(model(x, training=False), dtype=np.float64)
        np.testing.assert_allclose(forward(x), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(forward.bind(x)(), expected, rtol=1e-5, atol=1e-5)
    # gamma, beta, moving mean and variance fold into the preceding kernel and bias.
    assert forward.parameters() == model.count_params() - 4 * 16


def _convolutional():
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )


def _branching_functional():
    inputs = keras.Input((5,))
    left = keras.layers.Dense(4, name="left")(inputs)
    right = keras.layers.Dense(4, name="right")(inputs)
    return keras.Model(inputs, keras.layers.Add()([left, right]))


@pytest.mark.parametrize(
    "build,message",
    [
        (_convolutional, r"not a dense network.*'conv' \(Conv2D\)"),
        (_branching_functional, "not a"),
    ],
    ids=["convolutions", "branching_functional_model"],
)
def test_numpy_floor_refuses_what_is_not_a_dense_chain(build, message):
    with pytest.raises(ValueError, match=message):
        measure.dense_layers(build())
