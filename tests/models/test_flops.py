"""Tests for `models.flops.count_flops` and `count_training_flops` against
hand-derived counts."""

import keras
import pytest

from models.flops import count_flops
from models.flops import count_training_flops


def _functional(*layers, input_shape=(28, 28, 1)):
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize(
    "layers, input_shape, expected_macs",
    [
        # Dense on a flat input: in × out.
        ([keras.layers.Dense(7)], (5,), 5 * 7),
        # Dense on (4, 5): applied at each of 4 positions.
        ([keras.layers.Dense(7)], (4, 5), 4 * 5 * 7),
        # Conv2D 3×3, stride 2, valid: output 13×13, 3×3×1×8 per position.
        ([keras.layers.Conv2D(8, 3, strides=2)], (28, 28, 1), 13 * 13 * 9 * 8),
        # Depthwise 3×3 same on 10×10×4, multiplier 2.
        (
            [keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)],
            (10, 10, 4),
            10 * 10 * 9 * 4 * 2,
        ),
        # Separable: depthwise 3×3 on 6×6×4 then pointwise 4 -> 5 (valid: 4×4).
        ([keras.layers.SeparableConv2D(5, 3)], (6, 6, 4), 4 * 4 * (9 * 4 + 4 * 5)),
        # Pooling, BN, activations, dropout, flatten: not counted.
        (
            [
                keras.layers.BatchNormalization(),
                keras.layers.ReLU(),
                keras.layers.MaxPooling2D(2),
                keras.layers.Dropout(0.5),
                keras.layers.Flatten(),
            ],
            (8, 8, 3),
            0,
        ),
    ],
)
def test_counts_two_flops_per_multiply_accumulate(layers, input_shape, expected_macs):
    model = _functional(*layers, input_shape=input_shape)
    assert count_flops(model) == 2 * expected_macs


def test_nested_models_are_counted():
    inner = _functional(keras.layers.Dense(3), input_shape=(6,))
    outer = _functional(keras.layers.Dense(6), inner, input_shape=(4,))
    assert count_flops(outer) == 2 * (4 * 6 + 6 * 3)


def test_rejects_non_models_and_unbuilt_models():
    with pytest.raises(TypeError, match="`model`"):
        count_flops(keras.layers.Dense(3))
    with pytest.raises(TypeError, match="`model`"):
        count_flops(keras.Sequential([keras.layers.Dense(3)]))


def test_training_flops_skip_the_first_layers_input_gradient():
    # conv 3x3/2 same on 28x28x1 -> 14x14x4, flatten, dense 784 -> 10.
    model = _functional(
        keras.layers.Conv2D(4, 3, strides=2, padding="same"),
        keras.layers.ReLU(),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    )
    conv, dense = 14 * 14 * 9 * 4, 14 * 14 * 4 * 10
    # forward + weight gradients of both + input gradient of the dense only.
    assert count_training_flops(model) == 2 * (2 * (conv + dense) + dense)
    assert count_training_flops(model) < 3 * count_flops(model)


def test_training_flops_of_a_model_without_counted_layers_is_zero():
    model = _functional(keras.layers.Flatten(), input_shape=(4, 4, 1))
    assert count_training_flops(model) == 0


def test_training_flops_reject_unbuilt_models():
    with pytest.raises(TypeError, match="`model` must be built"):
        count_training_flops(keras.Sequential([keras.layers.Dense(2)]))
