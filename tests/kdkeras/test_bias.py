"""Tests for kdkeras/bias.py: output-bias adjustment for an omitted class."""

import doctest

import keras
import numpy as np
import pytest

from kdkeras import bias


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(0)


def _mlp(final_activation=None, softmax_layer=False):
    inputs = keras.Input((6,))
    x = keras.layers.Dense(5, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(4, activation=final_activation, name="logits")(x)
    if softmax_layer:
        outputs = keras.layers.Softmax()(outputs)
    return keras.Model(inputs, outputs)


def _identity_model(classes):
    """Logits equal the inputs: Dense with identity kernel, zero bias."""
    model = keras.Sequential([keras.Input((classes,)), keras.layers.Dense(classes)])
    model.layers[-1].set_weights(
        [np.eye(classes, dtype="float32"), np.zeros(classes, "float32")]
    )
    return model


@pytest.mark.parametrize("class_index, amount", [(0, 1.5), (3, 3.5), (2, -0.75)])
def test_adjust_changes_exactly_one_bias_entry(class_index, amount):
    model = _mlp()
    x = np.random.default_rng(1).normal(size=(16, 6)).astype("float32")
    before_logits = np.asarray(model(x), "float64")
    before = [w.copy() for w in model.get_weights()]
    layer = bias.adjust_class_bias(model, class_index, amount)
    after = model.get_weights()
    assert layer.name == "logits"
    # Everything equal except the logits' bias, which moved by `amount` at
    # exactly `class_index`.
    for index, (old, new) in enumerate(zip(before, after, strict=True)):
        if index == len(before) - 1:
            expected = old.astype("float64")
            expected[class_index] += amount
            np.testing.assert_allclose(new, expected, rtol=0, atol=1e-6)
        else:
            np.testing.assert_array_equal(old, new)
    expected_logits = before_logits.copy()
    expected_logits[:, class_index] += amount
    np.testing.assert_allclose(np.asarray(model(x)), expected_logits, atol=1e-5)


@pytest.mark.parametrize("model_kind", ["dense_softmax", "softmax_layer"])
def test_adjust_reaches_through_a_final_softmax(model_kind):
    model = _mlp(
        final_activation="softmax" if model_kind == "dense_softmax" else None,
        softmax_layer=model_kind == "softmax_layer",
    )
    layer = bias.adjust_class_bias(model, 1, 2.0)
    assert layer.name == "logits"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer.bias), [0.0, 2.0, 0.0, 0.0]
    )


def test_choose_picks_the_shift_that_maximises_holdout_accuracy():
    # Class 2 examples need a shift > 0.5 to win; class 0 examples are lost
    # once the shift exceeds 1.0. Best: any shift in (0.5, 1.0].
    model = _identity_model(3)
    x = np.array(
        [[1.0, 0.0, 0.5]] * 4 + [[1.0, 0.0, 0.0]] * 3 + [[0.0, 2.0, 0.0]] * 2,
        "float32",
    )
    y = np.array([2] * 4 + [0] * 3 + [1] * 2)
    candidates = [0.0, 0.25, 0.75, 1.5, 2.5]
    np.testing.assert_allclose(
        bias.shift_accuracies(x, y, 2, candidates),
        [5 / 9, 5 / 9, 1.0, 6 / 9, 4 / 9],
    )
    assert bias.choose_bias_shift(model, x, y, 2, candidates) == 0.75
    # Without a shift in (0.5, 1.0], the best remaining trade-off is 1.5.
    assert bias.choose_bias_shift(model, x, y, 2, [0.0, 1.5, 2.5]) == 1.5


def test_choose_prefers_the_smallest_change_on_ties():
    model = _identity_model(2)
    x = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    y = np.array([0, 1])
    assert bias.choose_bias_shift(model, x, y, 1, [-0.5, 0.5, 0.0, 0.25]) == 0.0


def test_choose_then_adjust_recovers_an_under_predicted_class():
    # A model whose class-1 logit is 2 too low on every input: choosing on
    # a holdout and adjusting restores accuracy on fresh data.
    rng = np.random.default_rng(3)
    model = _identity_model(3)
    model.layers[-1].bias.assign(np.array([0.0, -2.0, 0.0], "float32"))

    def sample(count):
        y = rng.integers(0, 3, size=count)
        x = rng.normal(size=(count, 3)).astype("float32") * 0.3
        x[np.arange(count), y] += 1.0
        return x, y

    x_holdout, y_holdout = sample(300)
    x_fresh, y_fresh = sample(300)

    def accuracy():
        return np.mean(np.argmax(model.predict(x_fresh, verbose=0), 1) == y_fresh)

    before = accuracy()
    shift = bias.choose_bias_shift(
        model, x_holdout, y_holdout, 1, np.arange(0.0, 4.01, 0.25)
    )
    assert 1.5 <= shift <= 2.5
    bias.adjust_class_bias(model, 1, shift)
    assert accuracy() > before + 0.2


@pytest.mark.parametrize(
    "call, error, argument",
    [
        (lambda m: bias.adjust_class_bias(m, 4, 1.0), ValueError, "class_index"),
        (lambda m: bias.adjust_class_bias(m, -1, 1.0), ValueError, "class_index"),
        (lambda m: bias.adjust_class_bias(m, 1, "big"), TypeError, "amount"),
        (lambda m: bias.adjust_class_bias("model", 1, 1.0), TypeError, "student"),
        (
            lambda m: bias.choose_bias_shift(m, np.zeros((2, 6)), [0, 1], 1, []),
            ValueError,
            "candidates",
        ),
        (
            lambda m: bias.choose_bias_shift(m, np.zeros((2, 6)), [0, 1], 9, [1.0]),
            ValueError,
            "class_index",
        ),
    ],
)
def test_bad_arguments_raise_one_line_errors(call, error, argument):
    with pytest.raises(error, match=f"`{argument}`") as info:
        call(_mlp())
    assert "\n" not in str(info.value)


def test_models_not_ending_in_a_biased_dense_are_rejected():
    inputs = keras.Input((6,))
    no_bias = keras.Model(inputs, keras.layers.Dense(3, use_bias=False)(inputs))
    with pytest.raises(ValueError, match="no bias"):
        bias.adjust_class_bias(no_bias, 0, 1.0)
    pooled = keras.Model(inputs, keras.layers.Reshape((3, 2))(inputs))
    with pytest.raises(ValueError, match="must end in a Dense"):
        bias.adjust_class_bias(pooled, 0, 1.0)


def test_docstring_examples():
    result = doctest.testmod(bias)
    assert result.attempted > 0 and result.failed == 0
