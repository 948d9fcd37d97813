"""Hostile arguments to the compact builders and `count_flops`: one-line,
named errors (never a silently truncated shape or an out-of-memory error),
and FLOPs that are either right or refused."""

import keras
import numpy as np
import pytest

import models
from models.flops import count_flops

BUILDERS = {
    "cnn": models.build_compact_cnn_student,
    "mlp": models.build_compact_student,
}


@pytest.mark.parametrize(
    "builder, kwargs, argument",
    [
        ("cnn", {"filters": ()}, "filters"),
        ("cnn", {"filters": (16, 0)}, "filters"),
        ("cnn", {"filters": (-4,)}, "filters"),
        ("cnn", {"filters": (16.0, 32)}, "filters"),
        ("cnn", {"filters": 16.5}, "filters"),
        ("cnn", {"filters": True}, "filters"),
        ("cnn", {"filters": (True, 8)}, "filters"),
        ("cnn", {"filters": "16"}, "filters"),
        ("cnn", {"filters": {16, 32}}, "filters"),
        ("cnn", {"filters": (2**40,)}, "filters"),
        ("cnn", {"num_classes": 2**40}, "num_classes"),
        ("mlp", {"hidden_units": 2**40}, "hidden_units"),
        ("mlp", {"hidden_units": 0}, "hidden_units"),
        ("mlp", {"hidden_units": 12.0}, "hidden_units"),
        ("cnn", {"input_shape": (28.7, 28, 1)}, "input_shape"),
        ("cnn", {"input_shape": (True, 28, 1)}, "input_shape"),
        ("cnn", {"input_shape": "281"}, "input_shape"),
        ("cnn", {"input_shape": (28, 28)}, "input_shape"),
        ("mlp", {"input_shape": (28, 28, 1, 1)}, "input_shape"),
        ("mlp", {"input_shape": None}, "input_shape"),
        ("mlp", {"input_shape": (28, 28, 2**40)}, "input_shape"),
    ],
)
def test_bad_arguments_are_one_line_errors(builder, kwargs, argument):
    with pytest.raises((TypeError, ValueError)) as raised:
        BUILDERS[builder](**kwargs)
    message = str(raised.value)
    assert message.startswith(f"`{argument}` must be")
    assert f"Received: {argument}=" in message and "\n" not in message


def test_numpy_shapes_and_widths_are_accepted():
    model = models.build_compact_cnn_student(
        filters=np.array([4, 8]), input_shape=np.array([12, 12, 1])
    )
    assert model.input_shape == (None, 12, 12, 1)
    assert model.get_layer("conv_2").filters == 8


def test_flops_of_a_two_convolution_model_by_hand():
    # 10x10x3 -> conv 3x3 valid, 4 filters: 8x8x4, 8*8 * (3*3*3) * 4 MACs
    #         -> conv 3x3 stride 2 same, 6 filters: 4x4x6, 4*4 * (3*3*4) * 6
    #         -> flatten 96 -> Dense 5: 96 * 5.
    model = keras.Sequential(
        [
            keras.Input((10, 10, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.Conv2D(6, 3, strides=2, padding="same"),
            keras.layers.Flatten(),
            keras.layers.Dense(5),
        ]
    )
    macs = 8 * 8 * 27 * 4 + 4 * 4 * 36 * 6 + 96 * 5
    assert count_flops(model) == 2 * macs == 2 * (6912 + 3456 + 480)


def test_flops_of_the_compact_cnn_by_hand():
    model = models.build_compact_cnn_student(filters=(8, 12), input_shape=(9, 9, 2))
    # 9x9x2 -> 5x5x8 -> 3x3x12 -> 108 -> 10
    macs = 5 * 5 * (9 * 2) * 8 + 3 * 3 * (9 * 8) * 12 + 108 * 10
    assert count_flops(model) == 2 * macs


@pytest.mark.parametrize(
    "layers, input_shape, match",
    [
        ([keras.layers.Conv2D(4, 3)], (None, None, 3), "known input dimensions"),
        ([keras.layers.Dense(4)], (None, 3), "known input dimensions"),
        ([keras.layers.Conv2DTranspose(4, 3)], (8, 8, 3), "Conv2DTranspose"),
        ([keras.layers.LSTM(4)], (5, 3), "LSTM"),
    ],
)
def test_flops_it_cannot_count_are_refused_in_one_line(layers, input_shape, match):
    model = keras.Sequential([keras.Input(input_shape), *layers])
    with pytest.raises(ValueError, match=match) as raised:
        count_flops(model)
    assert "\n" not in str(raised.value) and "Received:" in str(raised.value)
