"""Short prune runs on the residual, dense and ConvNeXt families.

Each architecture is built by its `keras.applications` builder (the
functions behind `ResNet50`, `DenseNet121` and `ConvNeXtTiny`, with their own
blocks) at its smallest depth and width at 32x32, so that a run of a few
steps goes through TFMOT and back within seconds.
"""

import functools

import keras
import numpy as np
import pytest
from keras.src.applications import convnext
from keras.src.applications import densenet
from keras.src.applications import resnet

from kdkeras import compress
from tests.kdkeras.compress.conftest import self_distil
from tests.kdkeras.compress.conftest import synthetic_images
from tests.kdkeras.compress.conftest import to_rgb32

TARGET_SPARSITY = 0.5
COMMON = {
    "include_top": True,
    "weights": None,
    "input_shape": (32, 32, 3),
    "classes": 4,
    "classifier_activation": None,
}


def _resnet_stacks(x):
    # ResNet50's stacks (bottleneck blocks, projection shortcuts), one block each.
    x = resnet.stack_residual_blocks_v1(x, 8, 1, stride1=1, name="conv2")
    x = resnet.stack_residual_blocks_v1(x, 16, 1, name="conv3")
    return resnet.stack_residual_blocks_v1(x, 32, 1, name="conv4")


# Architecture -> builder of its smallest configuration.
BUILDERS = {
    "ResNet": functools.partial(
        resnet.ResNet, _resnet_stacks, False, True, name="resnet_small", **COMMON
    ),
    "DenseNet": functools.partial(
        densenet.DenseNet, [1, 1, 1, 1], name="densenet_small", **COMMON
    ),
    "ConvNeXt": functools.partial(
        convnext.ConvNeXt,
        depths=[1, 1, 1, 1],
        projection_dims=[8, 16, 24, 32],
        default_size=32,
        name="convnext_small",
        **COMMON,
    ),
}


def _leaf_layers(model):
    """The layers of `model`, nested models (ConvNeXt's stem) flattened."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def _kernel_layers(model):
    return sorted(
        layer.name
        for layer in _leaf_layers(model)
        if type(layer).__name__ in ("Conv2D", "Dense")
    )


# A whole keras.applications network carried, pruned and carried back per
# fixture: a long set-up, so CI's end-to-end stage.
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def pruned_application(request):
    """`(name, student, pruned)`: a few steps of 50% pruning while distilling."""
    keras.utils.set_random_seed(41)
    student = BUILDERS[request.param]()
    x, y = synthetic_images(96, seed=42, classes=4)
    pruned = self_distil(
        compress.prune,
        student,
        x,
        y,
        seed=43,
        batch_size=16,
        target_sparsity=TARGET_SPARSITY,
        epochs=1,
    )
    return request.param, student, pruned


def test_every_kernel_reaches_the_scheduled_sparsity(pruned_application):
    name, student, pruned = pruned_application
    assert isinstance(pruned, keras.Model)  # Carried back to Keras 3.
    report = pruned.compression_report
    assert report.method == "prune"
    assert sorted(report.wrapped) == _kernel_layers(student), name
    sparsity = compress.kernel_sparsity(pruned)
    assert sorted(sparsity) == sorted(report.wrapped)
    for layer, fraction in sparsity.items():
        assert fraction == pytest.approx(TARGET_SPARSITY, abs=0.01), (layer, fraction)
    # Every layer with weights that was not pruned is listed, with a reason.
    weighted = {layer.name for layer in _leaf_layers(pruned) if layer.weights}
    assert weighted - set(report.wrapped) == set(report.left_as_is)
    assert all(report.left_as_is.values())


def test_pruned_model_is_the_architecture_with_the_pruned_weights(
    pruned_application, fashion
):
    # The model that came back computes what the Keras 3 architecture
    # computes with its (sparse) weights, on real and random images.
    name, _, pruned = pruned_application
    keras.utils.set_random_seed(44)
    fresh = BUILDERS[name]()
    copied = 0
    for layer in _leaf_layers(fresh):
        if layer.weights:
            layer.set_weights(pruned.get_layer(layer.name).get_weights())
            copied += 1
    assert copied == sum(1 for layer in _leaf_layers(pruned) if layer.weights)
    _, (x_test, _) = fashion
    random = np.random.default_rng(45).uniform(0, 255, size=(8, 32, 32, 3))
    for x in (to_rgb32(x_test[:8]), random.astype("float32")):
        expected = fresh.predict(x, verbose=0)
        actual = pruned.predict(x, verbose=0)
        assert np.isfinite(actual).all()
        scale = np.abs(expected).max()
        np.testing.assert_allclose(actual, expected, atol=1e-5 * scale, rtol=0)
