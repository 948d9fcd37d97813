"""Tests for the model builders in `models/`."""

import doctest
import re

import keras
import numpy as np
import pytest

import models
from models import cnn
from models import mlp

BUILDERS = [
    models.build_mlp_teacher,
    models.build_mlp_student,
    models.build_compact_student,
    models.build_compact_cnn_student,
    models.build_cnn_teacher,
    models.build_cnn_student,
]
# Builders with layers that behave differently in training (dropout,
# jitter, batch statistics).
STOCHASTIC = [
    models.build_mlp_teacher,
    models.build_cnn_teacher,
    models.build_cnn_student,
]


def _documented(builder, label):
    match = re.search(label + r": ([\d,]+)", " ".join(builder.__doc__.split()))
    assert match, f"{builder.__name__} docstring lacks '{label}: N'"
    return int(match.group(1).replace(",", ""))


def _images(batch, seed=0):
    return np.random.default_rng(seed).random((batch, 28, 28, 1), "float32")


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)
def test_outputs_logits_of_shape_batch_by_10(builder):
    model = builder()
    outputs = np.asarray(model(_images(5), training=False))
    assert outputs.shape == (5, 10)
    assert model.output.shape == (None, 10)
    # Logits, not probabilities: not all in [0, 1] and rows do not sum to 1.
    assert not np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3)
    assert outputs.min() < 0.0 or outputs.max() > 1.0
    assert model.layers[-1].name == "logits"
    assert model.get_layer("logits").activation is keras.activations.linear


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)
def test_documented_parameters_and_flops_match(builder):
    model = builder()
    assert model.count_params() == _documented(builder, "Parameters")
    assert models.count_flops(model) == _documented(builder, "FLOPs per example")


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)
def test_inference_is_deterministic(builder):
    model = builder()
    images = _images(8)
    first = np.asarray(model(images, training=False))
    second = np.asarray(model(images, training=False))
    # Not bit-exact: a CPU's convolution kernels (oneDNN, AVX-512 or not) may
    # sum in another order from one call to the next. Dropout would differ by
    # far more than this.
    np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(model.predict(images, verbose=0)), first, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("builder", STOCHASTIC, ids=lambda b: b.__name__)
def test_regularisation_is_active_in_training(builder):
    model = builder(seed=0)
    images = _images(8)
    inference = np.asarray(model(images, training=False))
    first = np.asarray(model(images, training=True))
    second = np.asarray(model(images, training=True))
    assert not np.allclose(first, inference, atol=1e-4)
    if builder is not models.build_cnn_student:
        # Dropout/jitter draw new masks per call (the CNN student's BN alone
        # would be deterministic for a fixed batch, its dropout is not).
        assert not np.allclose(first, second, atol=1e-4)
    else:
        assert not np.allclose(first, second, atol=1e-6)


@pytest.mark.parametrize(
    "builder",
    [
        models.build_mlp_student,
        models.build_compact_student,
        models.build_compact_cnn_student,
    ],
)
def test_unregularised_students_ignore_training_flag(builder):
    model = builder()
    images = _images(4)
    np.testing.assert_allclose(  # not bit-exact: see the test above
        np.asarray(model(images, training=True)),
        np.asarray(model(images, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_teacher_jitter_shifts_whole_pixels_by_at_most_two():
    teacher = models.build_mlp_teacher(seed=3)
    jitter = teacher.get_layer("jitter")
    image = np.zeros((64, 28, 28, 1), "float32")
    image[:, 14, 14, 0] = 1.0
    moved = np.asarray(jitter(image, training=True))
    shifts = set()
    for example in moved:
        rows, cols = np.nonzero(example[..., 0])
        assert len(rows) == 1 and example[rows[0], cols[0], 0] == 1.0
        assert abs(rows[0] - 14) <= 2 and abs(cols[0] - 14) <= 2
        shifts.add((rows[0] - 14, cols[0] - 14))
    assert len(shifts) > 3  # it really jitters
    np.testing.assert_array_equal(np.asarray(jitter(image, training=False)), image)


def test_layers_can_be_looked_up_by_name_for_hints():
    assert models.build_mlp_teacher().get_layer("hidden_2").units == 1200
    assert models.build_mlp_student().get_layer("hidden_2").units == 800
    assert models.build_cnn_teacher().get_layer("hidden").units == 256
    student = models.build_cnn_student()
    layer_types = {type(layer).__name__ for layer in student.layers}
    assert {
        "Conv2D",
        "DepthwiseConv2D",
        "BatchNormalization",
        "MaxPooling2D",
        "GlobalAveragePooling2D",
        "Dropout",
        "Dense",
    } <= layer_types


def test_same_seed_gives_same_training_outputs():
    images = _images(4)
    keras.utils.set_random_seed(7)
    first = models.build_mlp_teacher(seed=5)
    keras.utils.set_random_seed(7)
    second = models.build_mlp_teacher(seed=5)
    np.testing.assert_array_equal(
        np.asarray(first(images, training=True)),
        np.asarray(second(images, training=True)),
    )


@pytest.mark.parametrize(
    "builder, kwargs, error, argument",
    [
        (models.build_mlp_teacher, {"hidden_units": ()}, ValueError, "hidden_units"),
        (
            models.build_mlp_teacher,
            {"hidden_dropout": 1.0},
            ValueError,
            "hidden_dropout",
        ),
        (models.build_mlp_teacher, {"jitter_pixels": -1}, ValueError, "jitter_pixels"),
        (
            models.build_mlp_student,
            {"hidden_units": (800, 0)},
            ValueError,
            "hidden_units",
        ),
        (models.build_mlp_student, {"num_classes": 1}, ValueError, "num_classes"),
        (models.build_cnn_teacher, {"dropout": "high"}, TypeError, "dropout"),
        (models.build_cnn_teacher, {"seed": 1.5}, TypeError, "seed"),
        (
            models.build_cnn_student,
            {"input_shape": (28, 28)},
            ValueError,
            "input_shape",
        ),
    ],
)
def test_bad_arguments_raise_one_line_errors(builder, kwargs, error, argument):
    with pytest.raises(error, match=f"`{argument}`") as info:
        builder(**kwargs)
    assert "\n" not in str(info.value)


def test_other_shapes_and_class_counts():
    model = models.build_cnn_student(num_classes=3, input_shape=(32, 32, 3))
    images = np.random.default_rng(0).random((2, 32, 32, 3), "float32")
    assert model(images).shape == (2, 3)
    assert models.build_mlp_student(num_classes=4).output.shape == (None, 4)


@pytest.mark.parametrize("module", [mlp, cnn, models.flops], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, verbose=False)
    assert result.attempted > 0 and result.failed == 0
