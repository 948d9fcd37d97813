"""Tests for `models.compact`: the compact students (the demo's MLP, a CNN)."""

import re

import keras
import numpy as np
import pytest

import models
from models import compact

TEACHER_PARAMETERS = 824_458
TEACHER_FLOPS = 9_287_680


def _documented(label):
    text = " ".join(compact.build_compact_student.__doc__.split())
    match = re.search(label + r": ([\d,]+)", text)
    assert match, f"docstring lacks '{label}: N'"
    return int(match.group(1).replace(",", ""))


def test_documented_parameters_and_flops_match():
    student = compact.build_compact_student()
    assert student.count_params() == _documented("Parameters")
    assert models.count_flops(student) == _documented("FLOPs per example")


def test_the_cnn_teacher_is_the_one_compared_against():
    teacher = models.build_cnn_teacher()
    assert teacher.count_params() == TEACHER_PARAMETERS
    assert models.count_flops(teacher) == TEACHER_FLOPS


def test_outputs_logits_and_computes_relu_mlp():
    student = compact.build_compact_student(hidden_units=7)
    images = np.random.default_rng(0).random((5, 28, 28, 1), "float32")
    logits = np.asarray(student(images, training=False))
    assert logits.shape == (5, 10)
    hidden, output = student.get_layer("hidden"), student.get_layer("logits")
    w1, b1 = (np.asarray(v, "float64") for v in hidden.weights)
    w2, b2 = (np.asarray(v, "float64") for v in output.weights)
    flat = images.reshape(5, -1).astype("float64")
    expected = np.maximum(flat @ w1 + b1, 0.0) @ w2 + b2
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    assert output.activation is keras.activations.linear
    np.testing.assert_array_equal(np.asarray(student(images, training=True)), logits)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"hidden_units": 0}, "hidden_units"),
        ({"hidden_units": 2.5}, "hidden_units"),
        ({"hidden_units": True}, "hidden_units"),
        ({"num_classes": 1}, "num_classes"),
        ({"input_shape": (28, 28)}, "input_shape"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, argument):
    with pytest.raises((TypeError, ValueError), match=f"`{argument}`"):
        compact.build_compact_student(**kwargs)


def _strided_conv_relu(images, kernel, bias):
    # 3x3, stride 2, "same": TensorFlow pads the extra row/column at the end.
    batch, height, width, _ = images.shape
    out_h, out_w = -(-height // 2), -(-width // 2)
    pad_h = max((out_h - 1) * 2 + 3 - height, 0)
    pad_w = max((out_w - 1) * 2 + 3 - width, 0)
    padded = np.pad(
        images,
        (
            (0, 0),
            (pad_h // 2, pad_h - pad_h // 2),
            (pad_w // 2, pad_w - pad_w // 2),
            (0, 0),
        ),
    )
    out = np.zeros((batch, out_h, out_w, kernel.shape[-1]))
    for i in range(out_h):
        for j in range(out_w):
            patch = padded[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]
            out[:, i, j, :] = np.tensordot(patch, kernel, axes=([1, 2, 3], [0, 1, 2]))
    return np.maximum(out + bias, 0.0)


def test_compact_cnn_matches_a_float64_numpy_reference():
    keras.utils.set_random_seed(3)
    student = compact.build_compact_cnn_student(filters=(4, 6))
    images = np.random.default_rng(1).random((3, 28, 28, 1), "float32")
    x = images.astype("float64")
    for name in ("conv_1", "conv_2"):
        kernel, bias = (
            np.asarray(v, "float64") for v in student.get_layer(name).weights
        )
        x = _strided_conv_relu(x, kernel, bias)
    assert x.shape == (3, 7, 7, 6)
    weights, bias = (
        np.asarray(v, "float64") for v in student.get_layer("logits").weights
    )
    expected = x.reshape(3, -1) @ weights + bias
    logits = np.asarray(student(images, training=False))
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "builder", [compact.build_compact_student, compact.build_compact_cnn_student]
)
def test_compact_students_against_the_cnn_teacher(builder):
    # The rule: >= 10x fewer parameters and >= 5x fewer FLOPs.
    student = builder()
    assert TEACHER_PARAMETERS / student.count_params() >= 10
    assert TEACHER_FLOPS / models.count_flops(student) >= 5


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"filters": ()}, "filters"),
        ({"filters": (8, 0)}, "filters"),
        ({"num_classes": 1}, "num_classes"),
        ({"input_shape": (28, 28)}, "input_shape"),
    ],
)
def test_compact_cnn_bad_arguments_name_the_argument(kwargs, argument):
    with pytest.raises((TypeError, ValueError), match=f"`{argument}`"):
        compact.build_compact_cnn_student(**kwargs)
