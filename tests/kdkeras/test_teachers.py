"""Tests for kdkeras/teachers.py: Ensemble, outputs_probabilities, logits_model.

References are computed in float64 NumPy from the members' weights.
"""

import keras
import numpy as np
import pytest

from kdkeras import teachers

pytestmark = pytest.mark.usefixtures("deterministic")

FEATURES = 6
CLASSES = 5
HIDDEN = 7


def build_member(kind, seed, logit_scale=1.0):
    """A small MLP; `kind` says how its output is produced."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Dense(HIDDEN, activation="relu")(inputs)
    if kind == "dense_softmax":
        outputs = keras.layers.Dense(CLASSES, activation="softmax")(hidden)
    else:
        outputs = keras.layers.Dense(CLASSES)(hidden)
        if kind == "softmax_layer":
            outputs = keras.layers.Softmax()(outputs)
        elif kind == "activation_softmax":
            outputs = keras.layers.Activation("softmax")(outputs)
    model = keras.Model(inputs, outputs)
    if logit_scale != 1.0:
        last = [layer for layer in model.layers if layer.weights][-1]
        last.kernel.assign(last.kernel.numpy() * logit_scale)
        last.bias.assign(last.bias.numpy() * logit_scale)
    return model


def numpy_logits(model, x):
    """float64 pre-softmax logits of a `build_member` model."""
    dense = [layer for layer in model.layers if layer.weights]
    kernel_1, bias_1 = (w.numpy().astype(np.float64) for w in dense[0].weights)
    kernel_2, bias_2 = (w.numpy().astype(np.float64) for w in dense[1].weights)
    hidden = np.maximum(x.astype(np.float64) @ kernel_1 + bias_1, 0.0)
    return hidden @ kernel_2 + bias_2


def numpy_log_softmax(z, axis=-1):
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def numpy_logsumexp(z, axis):
    peak = z.max(axis=axis, keepdims=True)
    return np.squeeze(peak, axis) + np.log(np.exp(z - peak).sum(axis=axis))


def numpy_ensemble(member_logits, mean):
    log_probabilities = numpy_log_softmax(np.stack(member_logits), axis=-1)
    if mean == "arithmetic":
        count = len(member_logits)
        return numpy_logsumexp(log_probabilities, axis=0) - np.log(count)
    return numpy_log_softmax(log_probabilities.mean(axis=0))


def random_inputs(seed, batch=16, scale=2.0):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((batch, FEATURES))).astype("float32")


MEMBER_KINDS = [
    ("logits",),
    ("logits", "logits", "logits"),
    ("logits", "dense_softmax"),
    ("dense_softmax", "softmax_layer", "activation_softmax", "logits"),
]


@pytest.mark.parametrize("mean", ["arithmetic", "geometric"])
@pytest.mark.parametrize("kinds", MEMBER_KINDS, ids=lambda k: "-".join(k))
def test_ensemble_matches_float64_numpy(mean, kinds):
    members = [build_member(kind, 10 + i) for i, kind in enumerate(kinds)]
    x = random_inputs(seed=len(kinds))
    ensemble = teachers.Ensemble(members, mean=mean)

    logits = keras.ops.convert_to_numpy(ensemble(x))

    expected = numpy_ensemble([numpy_logits(m, x) for m in members], mean)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    # The output is normalised log-probabilities: valid logits.
    np.testing.assert_allclose(
        numpy_logsumexp(logits.astype(np.float64), axis=-1), 0.0, atol=1e-5
    )


@pytest.mark.parametrize("mean", ["arithmetic", "geometric"])
@pytest.mark.parametrize("kind", ["logits", "dense_softmax"])
def test_ensemble_large_logits_stay_finite(mean, kind):
    members = [build_member(kind, s, logit_scale=2000.0) for s in (1, 2, 3)]
    x = random_inputs(seed=5)
    member_logits = [numpy_logits(m, x) for m in members]
    assert max(np.abs(z).max() for z in member_logits) > 1000.0

    logits = keras.ops.convert_to_numpy(teachers.Ensemble(members, mean=mean)(x))

    assert np.all(np.isfinite(logits))
    expected = numpy_ensemble(member_logits, mean)
    # float32 resolution at |logits| ~ 1e4 is ~1e-3.
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=5e-2)


@pytest.mark.parametrize("mean", ["arithmetic", "geometric"])
def test_ensemble_of_identical_members_is_member_log_softmax(mean):
    member = build_member("logits", seed=3)
    x = random_inputs(seed=9)

    logits = teachers.Ensemble([member, member, member], mean=mean)(x)

    expected = numpy_log_softmax(numpy_logits(member, x))
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_arithmetic_and_geometric_differ_for_different_members():
    members = [build_member("logits", s, logit_scale=3.0) for s in (1, 2)]
    x = random_inputs(seed=2)
    arithmetic = teachers.Ensemble(members, mean="arithmetic")(x)
    geometric = teachers.Ensemble(members, mean="geometric")(x)
    assert np.abs(np.asarray(arithmetic) - np.asarray(geometric)).max() > 1e-2


@pytest.mark.parametrize("mean", ["arithmetic", "geometric"])
def test_ensemble_save_and_load_round_trip(tmp_path, mean):
    members = [build_member(k, s) for s, k in enumerate(["logits", "dense_softmax"])]
    ensemble = teachers.Ensemble(members, mean=mean, name="teacher")
    x = random_inputs(seed=4)
    path = str(tmp_path / "ensemble.keras")

    ensemble.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)

    assert isinstance(loaded, teachers.Ensemble)
    assert loaded.mean == mean and loaded.name == "teacher"
    assert len(loaded.members) == 2
    np.testing.assert_array_equal(loaded(x), ensemble(x))
    clone = teachers.Ensemble.from_config(ensemble.get_config())
    assert clone.get_config()["mean"] == mean


def test_ensemble_predict_and_output_shape():
    members = [build_member("logits", s) for s in (1, 2)]
    ensemble = teachers.Ensemble(members)
    x = random_inputs(seed=1, batch=37)
    assert ensemble.output_shape == (None, CLASSES)
    predicted = ensemble.predict(x, batch_size=8, verbose=0)
    np.testing.assert_allclose(predicted, ensemble(x), rtol=1e-6, atol=1e-6)


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(CLASSES, activation="softmax")

    def call(self, inputs):
        return self.dense(inputs)


def other_classes():
    return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(3)])


def other_input():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(CLASSES)])


@pytest.mark.parametrize(
    "make_models, mean, error, words",
    [
        (lambda: [], "arithmetic", ValueError, "`models`"),
        (lambda: None, "arithmetic", TypeError, "`models`"),
        (lambda: build_member("logits", 1), "arithmetic", TypeError, "`models`"),
        (
            lambda: [build_member("logits", 1), "x"],
            "arithmetic",
            TypeError,
            "`models[1]`",
        ),
        (
            lambda: [build_member("logits", 1), other_classes()],
            "arithmetic",
            ValueError,
            "`models[1]`",
        ),
        (
            lambda: [build_member("logits", 1), other_input()],
            "arithmetic",
            ValueError,
            "`models[1]`",
        ),
        (lambda: [Subclassed()], "arithmetic", ValueError, "`models[0]`"),
        (lambda: [build_member("logits", 1)], "harmonic", ValueError, "`mean`"),
    ],
    ids=[
        "empty",
        "none",
        "bare-model",
        "not-a-model",
        "classes",
        "input-shape",
        "subclassed",
        "mean",
    ],
)
def test_ensemble_bad_arguments(make_models, mean, error, words):
    with pytest.raises(error) as info:
        teachers.Ensemble(make_models(), mean=mean)
    message = str(info.value)
    assert words in message and "\n" not in message


def nested_softmax():
    inner = build_member("dense_softmax", 1)
    inputs = keras.Input((FEATURES,))
    return keras.Model(inputs, inner(inputs))


@pytest.mark.parametrize(
    "make_model, expected",
    [
        (lambda: build_member("dense_softmax", 1), True),
        (lambda: build_member("softmax_layer", 1), True),
        (lambda: build_member("activation_softmax", 1), True),
        (lambda: build_member("logits", 1), False),
        (
            lambda: keras.Sequential(
                [
                    keras.Input((FEATURES,)),
                    keras.layers.Dense(CLASSES, activation="softmax"),
                ]
            ),
            True,
        ),
        (
            lambda: keras.Sequential(
                [
                    keras.Input((FEATURES,)),
                    keras.layers.Dense(CLASSES, activation="log_softmax"),
                ]
            ),
            False,
        ),
        (
            lambda: keras.Sequential(
                [
                    keras.Input((FEATURES,)),
                    keras.layers.Dense(CLASSES, activation="sigmoid"),
                ]
            ),
            False,
        ),
        (nested_softmax, True),
        (
            lambda: keras.Sequential(
                [keras.layers.Dense(CLASSES, activation="softmax")]
            ),
            True,
        ),
        (Subclassed, False),
        (lambda: teachers.Ensemble([build_member("dense_softmax", 1)]), False),
    ],
    ids=[
        "dense-softmax",
        "softmax-layer",
        "activation-softmax",
        "logits",
        "sequential-softmax",
        "log-softmax",
        "sigmoid",
        "nested",
        "unbuilt-sequential",
        "subclassed",
        "ensemble",
    ],
)
def test_outputs_probabilities(make_model, expected):
    assert teachers.outputs_probabilities(make_model()) is expected


def test_outputs_probabilities_rejects_non_models():
    with pytest.raises(TypeError, match="`model`"):
        teachers.outputs_probabilities(keras.layers.Dense(3))


@pytest.mark.parametrize(
    "kind", ["dense_softmax", "softmax_layer", "activation_softmax"]
)
def test_logits_model_recovers_exact_logits(kind):
    model = build_member(kind, seed=7, logit_scale=30.0)
    x = random_inputs(seed=11)

    logits_model = teachers.logits_model(model)
    logits = keras.ops.convert_to_numpy(logits_model(x))

    assert not teachers.outputs_probabilities(logits_model)
    # Exact pre-activation values, even where the softmax saturates to 0/1.
    np.testing.assert_allclose(logits, numpy_logits(model, x), rtol=1e-5, atol=1e-4)
    assert np.asarray(model(x)).min() < 1e-30
    if kind == "dense_softmax":
        assert isinstance(logits_model.layers[-1], teachers.DenseLogits)


def test_logits_model_shares_weights_with_the_original():
    model = build_member("dense_softmax", seed=2)
    logits_model = teachers.logits_model(model)
    x = random_inputs(seed=3)
    before = np.asarray(logits_model(x))
    dense = model.layers[-1]
    dense.bias.assign(dense.bias.numpy() + 1.5)
    np.testing.assert_allclose(logits_model(x), before + 1.5, rtol=1e-6, atol=1e-5)
    assert len(logits_model.weights) == len(model.weights)


def test_logits_model_dense_path_saves_and_loads(tmp_path):
    model = build_member("dense_softmax", seed=4)
    logits_model = teachers.logits_model(model)
    path = str(tmp_path / "logits.keras")
    logits_model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = random_inputs(seed=6)
    np.testing.assert_array_equal(loaded(x), logits_model(x))


def test_logits_model_fallback_is_clipped_log_probabilities():
    # A softmax on a Conv1D output: no exact path, so log(clip(p)).
    keras.utils.set_random_seed(5)
    inputs = keras.Input((3, FEATURES))
    outputs = keras.layers.Conv1D(CLASSES, 1, activation="softmax")(
        keras.layers.Dense(HIDDEN, activation="relu")(inputs)
    )
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(1).normal(size=(4, 3, FEATURES)) * 400.0
    x = x.astype("float32")

    logits = keras.ops.convert_to_numpy(teachers.logits_model(model)(x))

    probabilities = keras.ops.convert_to_numpy(model(x)).astype(np.float64)
    assert probabilities.min() < teachers.DEFAULT_EPSILON  # clipping happens
    expected = np.log(np.clip(probabilities, teachers.DEFAULT_EPSILON, 1.0))
    np.testing.assert_allclose(logits, expected, rtol=1e-6, atol=1e-6)
    assert np.all(np.isfinite(logits))
    np.testing.assert_allclose(
        np.exp(numpy_log_softmax(logits.astype(np.float64))),
        probabilities,
        atol=1e-6,
    )


def test_logits_model_returns_logit_models_unchanged():
    model = build_member("logits", seed=1)
    assert teachers.logits_model(model) is model


def test_logits_model_of_unbuilt_softmax_model_raises():
    model = keras.Sequential([keras.layers.Dense(CLASSES, activation="softmax")])
    with pytest.raises(ValueError, match="`model`.*not built"):
        teachers.logits_model(model)


TAILS = {
    "identity": lambda t: keras.layers.Identity()(t),
    "clip": lambda t: keras.ops.clip(t, 1e-7, 1.0),
    "linear": lambda t: keras.layers.Activation("linear")(t),
    "dropout-then-identity": lambda t: keras.layers.Identity()(
        keras.layers.Dropout(0.2)(t)
    ),
    "clip-then-identity": lambda t: keras.layers.Identity()(
        keras.ops.clip(t, 0.0, 1.0)
    ),
}


@pytest.mark.parametrize("tail", sorted(TAILS))
@pytest.mark.parametrize(
    "kind", ["dense_softmax", "softmax_layer", "activation_softmax"]
)
def test_softmax_followed_by_value_preserving_layers_is_read_through(kind, tail):
    member = build_member(kind, seed=7, logit_scale=30.0)
    model = keras.Model(member.inputs, TAILS[tail](member.outputs[0]))
    x = random_inputs(seed=11)
    assert teachers.outputs_probabilities(model)
    logits = keras.ops.convert_to_numpy(teachers.logits_model(model)(x))
    # The exact pre-softmax values, not the (clipped) probabilities.
    np.testing.assert_allclose(logits, numpy_logits(member, x), rtol=1e-5, atol=1e-4)


def test_unbuilt_sequential_softmax_then_identity_outputs_probabilities():
    model = keras.Sequential(
        [keras.layers.Dense(CLASSES, activation="softmax"), keras.layers.Identity()]
    )
    assert teachers.outputs_probabilities(model)
