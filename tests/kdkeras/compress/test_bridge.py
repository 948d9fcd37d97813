import keras
import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
import tf_keras

import models
from kdkeras.compress import bridge


def _randomise_batch_norm(model, seed):
    """Non-trivial moving statistics, so BatchNormalization does something."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights(
                [
                    rng.uniform(0.5, 2.0, w.shape).astype("float32")
                    if index in (0, 3)  # gamma, moving variance
                    else rng.normal(size=w.shape).astype("float32")
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


BUILDERS = {
    "mlp": _mlp,
    "cnn_with_batch_norm": _cnn,
    "models.build_cnn_student": lambda: models.build_cnn_student(
        filters=(8, 16), seed=0
    ),
    "models.build_mlp_teacher_with_jitter": lambda: models.build_mlp_teacher(
        hidden_units=(32, 32), seed=0
    ),
}


def _inputs(seed, count=16):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, size=(count, 28, 28, 1)).astype("float32")


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_round_trip_reproduces_outputs_exactly(name):
    student = _randomise_batch_norm(BUILDERS[name](), seed=1)
    x = _inputs(seed=2)
    expected = student(x, training=False).numpy()

    legacy = bridge.to_tf_keras(student)
    assert isinstance(legacy, tf_keras.Model)
    np.testing.assert_array_equal(legacy(x, training=False).numpy(), expected)

    back = bridge.from_tf_keras(legacy)
    assert isinstance(back, keras.Model)
    np.testing.assert_array_equal(back(x, training=False).numpy(), expected)
    carried = [
        layer.name
        for layer in student.layers
        if type(layer).__name__ not in bridge.DROPPED_LAYERS
        and not isinstance(layer, keras.layers.InputLayer)
    ]
    assert [layer.name for layer in back.layers] == carried


@pytest.mark.parametrize(
    "activation",
    [
        "relu",
        "gelu",
        "swish",
        "elu",
        "selu",
        "softplus",
        "tanh",
        "sigmoid",
        "softmax",
        "exponential",
    ],
)
def test_builtin_activations_match_exactly(activation):
    student = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5, activation=activation)]
    )
    x = np.random.default_rng(3).normal(size=(32, 6)).astype("float32")
    legacy = bridge.to_tf_keras(student)
    np.testing.assert_array_equal(legacy(x).numpy(), student(x).numpy())


def test_regularizer_is_carried_both_ways():
    student = _cnn()
    legacy = bridge.to_tf_keras(student)
    back = bridge.from_tf_keras(legacy)
    for model, module in ((legacy, tf_keras), (back, keras)):
        regularizer = model.layers[-1].kernel_regularizer
        assert isinstance(regularizer, module.regularizers.L2)
        assert regularizer.get_config()["l2"] == pytest.approx(1e-4)


def _lambda_student():
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3),
            keras.layers.Lambda(lambda t: t * 2.0, name="lambda_3"),
        ]
    )


def _branching_model():
    inputs = keras.Input((4,))
    first = keras.layers.Dense(3, name="first")(inputs)
    second = keras.layers.Dense(3, name="second")(inputs)
    return keras.Model(inputs, keras.layers.Add(name="merge")([first, second]))


def _shared_layer_model():
    inputs = keras.Input((4,))
    shared = keras.layers.Dense(4, name="shared")
    return keras.Model(inputs, shared(shared(inputs)))


@pytest.mark.parametrize(
    "build,message",
    [
        (_lambda_student, r"cannot carry layer 'lambda_3' \(Lambda\)"),
        (_branching_model, r"'merge' \(Add\)"),
        (_shared_layer_model, "single-chain.*'shared'"),
    ],
    ids=["unsupported_layer_is_named", "branching_model", "shared_layer"],
)
def test_models_that_are_not_a_chain_of_known_layers_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        bridge.to_tf_keras(build())


@pytest.mark.parametrize(
    "layer, message",
    [
        (keras.layers.Dense(3, activation="hard_sigmoid"), "activation"),
        (keras.layers.Dense(3, dtype="mixed_float16"), "dtype policy"),
        (keras.layers.Dense(3, kernel_constraint="max_norm"), "kernel_constraint"),
        (keras.layers.RandomCrop(2, 2), r"\(RandomCrop\)"),
    ],
)
def test_layer_settings_that_cannot_be_carried(layer, message):
    student = keras.Sequential([keras.Input((4, 4, 1)), layer])
    with pytest.raises(ValueError, match=message):
        bridge.to_tf_keras(student)


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
    with pytest.raises(ValueError, match="Strip TFMOT wrappers first"):
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
    x = _inputs(seed=4, count=4)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
