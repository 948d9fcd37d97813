"""export.loading: safe loading of .keras files and SavedModel directories."""

import numpy as np
import pytest

from export import loading


@pytest.fixture(scope="module")
def lambda_model_path(tmp_path_factory):
    import keras

    path = tmp_path_factory.mktemp("loading") / "lambda.keras"
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda t: t * 3.0, output_shape=(4,))(inputs)
    keras.Model(inputs, outputs).save(path)
    return path


def test_lambda_refused_in_safe_mode(lambda_model_path):
    with pytest.raises(loading.ModelLoadError, match="Lambda.*--unsafe"):
        loading.load_model(lambda_model_path)


def test_lambda_allowed_with_unsafe_and_warns(lambda_model_path):
    with pytest.warns(loading.UnsafeLoadWarning, match="safe_mode=False"):
        model = loading.load_model(lambda_model_path, unsafe=True)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(model(x).numpy(), 3.0 * x)


def test_several_inputs_accepted_in_keras_order():
    import keras

    a, b = keras.Input((2,), name="a"), keras.Input((2,), name="b")
    model = keras.Model([a, b], keras.layers.Add()([a, b]))
    assert loading.resolve_model(model) is model
    spec = loading.input_spec(model)
    assert (spec.structure, spec.names) == ("list", ("a", "b"))


def test_unknown_dynamic_shape_of_a_float_input_rejected():
    import keras

    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(loading.ModelLoadError, match="unknown non-batch"):
        loading.input_spec(model)


@pytest.mark.parametrize(
    "make,error,message",
    [
        (lambda p: p / "missing.keras", FileNotFoundError, "does not exist"),
        (
            lambda p: (p / "w.h5").write_bytes(b"x") and p / "w.h5",
            loading.ModelLoadError,
            "not a .keras file",
        ),
        (lambda p: p, loading.ModelLoadError, "without saved_model.pb"),
        (lambda p: 42, TypeError, "keras.Model or a path"),
    ],
)
def test_bad_sources(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        loading.resolve_model(make(tmp_path))
