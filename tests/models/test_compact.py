"""Tests for `models.compact`: the demo's compact student."""

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


def test_compact_against_the_cnn_teacher():
    # The rule: >= 10x fewer parameters and >= 5x fewer FLOPs.
    teacher = models.build_cnn_teacher()
    assert teacher.count_params() == TEACHER_PARAMETERS
    assert models.count_flops(teacher) == TEACHER_FLOPS
    student = compact.build_compact_student()
    assert TEACHER_PARAMETERS / student.count_params() >= 10
    assert TEACHER_FLOPS / models.count_flops(student) >= 5


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
