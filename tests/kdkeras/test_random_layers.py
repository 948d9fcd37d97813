"""Tests of kdkeras/_random_layers.py: random in training, identity at inference."""

import keras
import numpy as np
import pytest

from kdkeras import _random_layers as random_layers
from kdkeras._step import xla

ARGUMENTS = {
    "AlphaDropout": {"rate": 0.5},
    "Dropout": {"rate": 0.5},
    "GaussianDropout": {"rate": 0.5},
    "GaussianNoise": {"stddev": 0.5},
    "RandomBrightness": {"factor": 0.5, "value_range": (0.0, 1.0)},
    "RandomContrast": {"factor": 0.5},
    "RandomFlip": {},
    "RandomRotation": {"factor": 0.2},
    "RandomTranslation": {"height_factor": 0.2, "width_factor": 0.2},
    "RandomZoom": {"height_factor": 0.2},
    "SpatialDropout2D": {"rate": 0.5},
}


def test_every_named_layer_has_arguments_here():
    assert set(ARGUMENTS) == random_layers.INFERENCE_IDENTITY_LAYERS


@pytest.mark.parametrize("name", sorted(ARGUMENTS))
def test_named_layers_are_random_in_training_and_identity_at_inference(name):
    layer = getattr(keras.layers, name)(**ARGUMENTS[name], seed=3)
    x = np.random.default_rng(0).uniform(0.05, 0.95, (8, 12, 12, 3))
    x = x.astype("float32")
    np.testing.assert_array_equal(layer(x, training=False), x)
    assert not np.array_equal(layer(x, training=True), x)
    assert random_layers.is_inference_identity(layer)
    assert random_layers.draws_random_numbers(layer)


@pytest.mark.parametrize(
    "layer",
    [keras.layers.RandomCrop(4, 4), keras.layers.Dense(3), keras.layers.ReLU()],
    ids=["RandomCrop", "Dense", "ReLU"],
)
def test_other_layers_are_not_inference_identity(layer):
    assert not random_layers.is_inference_identity(layer)


def test_subclasses_are_not_trusted_to_be_the_identity():
    class Custom(keras.layers.Dropout):
        pass

    assert not random_layers.is_inference_identity(Custom(0.5))
    assert random_layers.draws_random_numbers(Custom(0.5))


def test_random_in_training_finds_nested_layers_and_drives_xla():
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.GaussianNoise(0.1, name="noise")],
        name="inner",
    )
    model = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2)])
    assert [layer.name for layer in random_layers.random_in_training(model)] == [
        "noise"
    ]
    assert not xla.xla_helps_on_cpu(trained=[model])
    assert xla.xla_helps_on_cpu(inference=[model])
