import keras
import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
import tf_keras

import models
from kdkeras.compress import _layers
from kdkeras.compress import bridge
from tests.kdkeras.compress.conftest import APPLICATIONS
from tests.kdkeras.compress.conftest import build_application
from tests.kdkeras.compress.conftest import to_rgb32


def _randomise_batch_norm(model, seed):
    """Non-trivial moving statistics, so BatchNormalization does something."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights(
                [
                    rng.uniform(0.5, 2.0, w.shape).astype("float32")
                    if index in (0, 3)  # gamma, moving variance
                    else rng.normal(scale=0.3, size=w.shape).astype("float32")
                    for index, w in enumerate(layer.get_weights())
                ]
            )
    return model


def _mlp():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(10),
        ],
        name="mlp",
    )


def _cnn():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Rescaling(2.0, offset=-1.0),
            keras.layers.RandomFlip(),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.DepthwiseConv2D(3, use_bias=False),
            keras.layers.BatchNormalization(epsilon=1e-5),
            keras.layers.ReLU(max_value=6.0),
            keras.layers.MaxPooling2D(),
            keras.layers.AveragePooling2D(2, padding="same"),
            keras.layers.Activation("swish"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Reshape((2, 4)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, kernel_regularizer=keras.regularizers.L2(1e-4)),
        ],
        name="cnn",
    )


def _branches_and_merges():
    """Shared input, residual Add, squeeze-and-excite Multiply, Concatenate."""
    inputs = keras.Input((12, 12, 3), name="image")
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)))(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, name="stem")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("hard_silu")(x)
    squeeze = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    squeeze = keras.layers.Conv2D(8, 1, activation="hard_sigmoid")(squeeze)
    x = keras.layers.Multiply()([x, squeeze])
    left = keras.layers.SeparableConv2D(8, 3, padding="same")(x)
    right = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = keras.layers.Add()([x, left, right])
    x = keras.layers.Concatenate()([x, keras.layers.LeakyReLU(0.1)(x)])
    x = keras.layers.LayerNormalization(epsilon=1e-6)(x)
    x = (x + 3.0) * (1.0 / 6.0) - x  # Keras operations in the graph.
    x = keras.layers.GlobalMaxPooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5, activation="gelu")(x))


def _nested():
    """A functional backbone and a Sequential head inside a functional model."""
    backbone_inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(
        backbone_inputs
    )
    backbone = keras.Model(backbone_inputs, features, name="backbone")
    head = keras.Sequential(
        [keras.layers.Flatten(), keras.layers.Dense(3, name="dense")], name="head"
    )
    inputs = keras.Input((8, 8, 3))
    scaled = keras.layers.Normalization(mean=0.5, variance=4.0)(inputs)
    shared = keras.layers.Dense(3, name="shared")
    x = head(backbone(scaled))
    return keras.Model(inputs, shared(keras.layers.Dense(3)(shared(x))))


BUILDERS = {
    "mlp": _mlp,
    "cnn_with_batch_norm": _cnn,
    "branches_and_merges": _branches_and_merges,
    "nested_models_and_shared_layer": _nested,
    "models.build_cnn_student": lambda: models.build_cnn_student(
        filters=(8, 16), seed=0
    ),
    "models.build_mlp_teacher_with_jitter": lambda: models.build_mlp_teacher(
        hidden_units=(32, 32), seed=0
    ),
}


def _inputs(model, seed, count=16):
    rng = np.random.default_rng(seed)
    shape = (count,) + tuple(model.inputs[0].shape)[1:]
    return rng.uniform(-1.0, 2.0, size=shape).astype("float32")


def _assert_same_outputs(model, other, x):
    expected = np.asarray(model(x, training=False))
    actual = np.asarray(other(x, training=False))
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_round_trip_reproduces_outputs(name):
    student = _randomise_batch_norm(BUILDERS[name](), seed=1)
    x = _inputs(student, seed=2)

    legacy = bridge.to_tf_keras(student)
    assert isinstance(legacy, tf_keras.Model)
    _assert_same_outputs(student, legacy, x)

    back = bridge.from_tf_keras(legacy)
    assert isinstance(back, keras.Model)
    _assert_same_outputs(student, back, x)
    assert len(back.weights) == len(legacy.weights)


def test_chain_of_builtin_layers_is_bit_identical():
    student = _randomise_batch_norm(_cnn(), seed=1)
    x = _inputs(student, seed=2)
    back = bridge.from_tf_keras(bridge.to_tf_keras(student))
    np.testing.assert_array_equal(
        back(x, training=False).numpy(), student(x, training=False).numpy()
    )
    kept = [
        layer.name
        for layer in student.layers
        if type(layer).__name__ not in bridge.DROPPED_LAYERS
    ]
    assert [layer.name for layer in back.layers][1:] == kept


def test_a_cloned_tf_keras_model_comes_back():
    # TFMOT clones the model it wraps; the clone records the Keras ops'
    # operands as keywords.
    student = _randomise_batch_norm(_branches_and_merges(), seed=1)
    legacy = bridge.to_tf_keras(student)
    cloned = tf_keras.models.clone_model(legacy)
    cloned.set_weights(legacy.get_weights())
    _assert_same_outputs(student, bridge.from_tf_keras(cloned), _inputs(student, 3))


def test_shared_layer_stays_one_layer_called_twice():
    legacy = bridge.to_tf_keras(_nested())
    shared = legacy.get_layer("shared")
    assert len(shared._inbound_nodes) == 2
    assert len(legacy.get_layer("conv").weights) == 2  # Flattened backbone.


@pytest.mark.parametrize(
    "activation",
    [
        "relu",
        "relu6",
        "gelu",
        "swish",
        "silu",
        "elu",
        "selu",
        "softplus",
        "softsign",
        "tanh",
        "sigmoid",
        "softmax",
        "exponential",
        "mish",
        "hard_sigmoid",
        "hard_silu",
        "hard_swish",
    ],
)
def test_activations_keep_their_keras3_definition(activation):
    student = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5, activation=activation)]
    )
    # Wide range: hard_sigmoid is 0.2 x + 0.5 in tf_keras, relu6(x+3)/6 here.
    x = np.random.default_rng(3).normal(scale=4.0, size=(64, 6)).astype("float32")
    legacy = bridge.to_tf_keras(student)
    np.testing.assert_allclose(legacy(x).numpy(), student(x).numpy(), rtol=1e-6)
    back = bridge.from_tf_keras(legacy)
    np.testing.assert_array_equal(back(x).numpy(), student(x).numpy())
    aliases = {"swish": "silu", "hard_swish": "hard_silu"}
    assert back.layers[-1].get_config()["activation"] in (
        activation,
        aliases.get(activation),
    )


def test_regularizer_is_carried_both_ways():
    student = _cnn()
    legacy = bridge.to_tf_keras(student)
    back = bridge.from_tf_keras(legacy)
    for model, module in ((legacy, tf_keras), (back, keras)):
        regularizer = model.layers[-1].kernel_regularizer
        assert isinstance(regularizer, module.regularizers.L2)
        assert regularizer.get_config()["l2"] == pytest.approx(1e-4)


@keras.saving.register_keras_serializable("kdkeras_tests")
class _Twice(keras.layers.Layer):
    def call(self, inputs):
        return 2.0 * inputs


def _with_layer(layer, input_shape=(4, 4, 1)):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(2, 1, name="before")(inputs)
    return keras.Model(inputs, layer(x))


@pytest.mark.parametrize(
    "layer, message",
    [
        (_Twice(name="twice"), r"layer 'twice' \(_Twice\): .*custom layer"),
        (
            keras.layers.Lambda(lambda t: t * 2.0, name="lambda_3"),
            r"layer 'lambda_3' \(Lambda\)",
        ),
        (
            keras.layers.Dense(3, activation="leaky_relu", name="d"),
            r"'d' \(Dense\): its activation 'leaky_relu'",
        ),
        (keras.layers.Dense(3, dtype="mixed_float16"), "dtype policy"),
        (
            keras.layers.LayerNormalization(rms_scaling=True, name="rms"),
            r"'rms' \(LayerNormalization\): its rms_scaling=True",
        ),
        (
            keras.layers.BatchNormalization(synchronized=True),
            "synchronized=True",
        ),
        (
            keras.layers.Dense(
                3, kernel_regularizer=keras.regularizers.OrthogonalRegularizer()
            ),
            "kernel_regularizer is not one of",
        ),
        (keras.layers.RandomCrop(2, 2), r"\(RandomCrop\)"),
    ],
    ids=[
        "custom_layer",
        "lambda",
        "activation_only_keras3_has",
        "mixed_precision",
        "rms_layer_normalization",
        "synchronized_batch_norm",
        "custom_regularizer",
        "random_crop",
    ],
)
def test_what_cannot_be_carried_is_refused_in_one_line(layer, message):
    with pytest.raises(ValueError, match=message) as caught:
        bridge.to_tf_keras(_with_layer(layer))
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("kdkeras.compress cannot carry layer")


def test_operation_without_equivalent_is_refused():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.ops.cumsum(keras.layers.Dense(3)(inputs)))
    with pytest.raises(ValueError, match=r"\(Cumsum\): the Keras operation"):
        bridge.to_tf_keras(model)


def test_a_definition_difference_is_caught_by_the_output_check(monkeypatch):
    # As if hard_sigmoid were carried by name: tf_keras' 0.2 x + 0.5.
    monkeypatch.setitem(
        _layers._TO_TF_KERAS_ACTIVATIONS, "hard_sigmoid", "hard_sigmoid"
    )
    student = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(4),
            keras.layers.Activation("hard_sigmoid", name="gate"),
        ]
    )
    with pytest.raises(ValueError, match="does not give its outputs") as caught:
        bridge.to_tf_keras(student)
    assert "\n" not in str(caught.value)


def test_bad_model_arguments():
    with pytest.raises(TypeError, match="`model` must be a keras Model"):
        bridge.to_tf_keras("student.keras")
    with pytest.raises(TypeError, match="`model` must be a tf_keras Model"):
        bridge.from_tf_keras(_mlp())
    with pytest.raises(ValueError, match="known input shape"):
        bridge.to_tf_keras(keras.Sequential([keras.layers.Dense(3)]))


def test_unstripped_wrappers_are_refused():
    legacy = bridge.to_tf_keras(_mlp())
    pruned = tfmot.sparsity.keras.prune_low_magnitude(legacy)
    with pytest.raises(ValueError, match="strip TFMOT wrappers first"):
        bridge.from_tf_keras(pruned)


@pytest.mark.parametrize("name", sorted(bridge.DROPPED_LAYERS))
def test_dropped_layers_are_identity_at_inference(name):
    arguments = {
        "RandomFlip": {},
        "RandomTranslation": {"height_factor": 0.2, "width_factor": 0.2},
        "RandomRotation": {"factor": 0.2},
        "RandomZoom": {"height_factor": 0.2},
        "RandomContrast": {"factor": 0.5},
        "RandomBrightness": {"factor": 0.5, "value_range": (0.0, 1.0)},
        "GaussianNoise": {"stddev": 0.5},
        "GaussianDropout": {"rate": 0.5},
        "SpatialDropout2D": {"rate": 0.5},
        "AlphaDropout": {"rate": 0.5},
    }[name]
    layer = getattr(keras.layers, name)(**arguments)
    x = np.random.default_rng(4).uniform(size=(4, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)


# Over ~20 s to build, carry both ways and compare on this 2-core machine.
SLOW_APPLICATIONS = (
    "ConvNeXtTiny",
    "DenseNet121",
    "EfficientNetB0",
    "EfficientNetV2B0",
    "MobileNetV3Small",
    "ResNet50",
)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.slow)
        if name in SLOW_APPLICATIONS
        else name
        for name in sorted(APPLICATIONS)
    ],
)
def test_applications_carry_both_ways_with_the_same_outputs(name, fashion):
    keras.utils.set_random_seed(5)
    student = _randomise_batch_norm(build_application(name), seed=6)
    _, (x_test, _) = fashion
    real = to_rgb32(x_test[:8])
    random = np.random.default_rng().uniform(0, 255, size=(8, 32, 32, 3))

    legacy = bridge.to_tf_keras(student)
    back = bridge.from_tf_keras(legacy)
    for x in (real, random.astype("float32")):
        _assert_same_outputs(student, legacy, x)
        _assert_same_outputs(student, back, x)
    assert len(back.weights) == len(student.weights)
