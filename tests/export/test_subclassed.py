"""Subclassed Keras models export like functional ones.

A `keras.Model` subclass built by `fit` has no `inputs`; the exporters take
it (in memory, or saved as `.keras` with its class registered) on the input
shapes its build config records: one input, a dict, or a functional backbone
nested inside. Every artifact is compared with the subclassed model itself on
fresh random inputs.
"""

import numpy as np
import pytest

from export import loading
from export import runtimes
from export import verify
from tests.export import subclassed_models

KINDS = tuple(subclassed_models.MODELS)
SUFFIX = {"savedmodel": "", "onnx": ".onnx", "tflite": ".tflite"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """`{kind: (trained model, .keras path)}`."""
    folder = tmp_path_factory.mktemp("subclassed")
    models = {}
    for kind in KINDS:
        model = subclassed_models.train(kind)
        path = str(folder / f"{kind}.keras")
        model.save(path)
        models[kind] = model, path
    return models


def fresh(kind, count=37, seed=11):
    """Fresh random inputs (not the training data), uniform and normal."""
    x, _ = subclassed_models.data(kind, count, seed)
    rng = np.random.default_rng(seed + 1)
    if isinstance(x, dict):
        return {k: rng.normal(size=v.shape).astype(np.float32) for k, v in x.items()}
    return rng.normal(size=x.shape).astype(np.float32)


def keras_logits(model, x):
    return np.asarray(model(x, training=False), dtype=np.float64)


def export(fmt, model, output, **keywords):
    from export.to_onnx import export_onnx
    from export.to_savedmodel import export_savedmodel
    from export.to_tflite import export_tflite

    exporter = {
        "savedmodel": export_savedmodel,
        "onnx": export_onnx,
        "tflite": export_tflite,
    }[fmt]
    return exporter(model, str(output), **keywords)


@pytest.mark.parametrize(
    "kind, names, structure",
    [
        ("single", ("inputs",), "single"),
        ("dict", ("image", "meta"), "dict"),
        ("nested", ("inputs",), "single"),
    ],
)
def test_loaded_subclassed_model_has_the_spec_it_was_built_on(
    saved, kind, names, structure
):
    model, path = saved[kind]
    loaded = loading.load_model(path)
    spec = loading.input_spec(loaded)
    assert spec.names == names and spec.structure == structure
    assert spec.shapes[0] == (None,) + subclassed_models.IMAGE_SHAPE
    assert set(spec.dtypes) == {"float32"}
    x = fresh(kind)
    np.testing.assert_allclose(
        keras_logits(loaded, x), keras_logits(model, x), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("fmt", ["savedmodel", "onnx", "tflite"])
@pytest.mark.parametrize("kind", KINDS)
def test_saved_subclassed_model_exports_and_matches_keras(saved, kind, fmt, tmp_path):
    model, path = saved[kind]
    result = export(fmt, path, tmp_path / f"model{SUFFIX[fmt]}")
    assert result.sidecar["parity"]["max_relative_error"] < verify.RELATIVE_TOLERANCE
    x = fresh(kind)
    actual = runtimes.load(result.path, fmt).predict(x)
    expected = keras_logits(model, x)
    assert np.std(expected) > 0.01  # Logits that tell the inputs apart.
    assert verify.relative_error(actual, expected) < 1e-5


@pytest.mark.parametrize("quantize", ["float16", "dynamic", "int8"])
def test_subclassed_model_quantises_and_agrees_with_keras(saved, quantize, tmp_path):
    model, path = saved["single"]
    calibration, _ = subclassed_models.data("single", 64, seed=5)
    result = export(
        "tflite",
        path,
        tmp_path / f"{quantize}.tflite",
        quantize=quantize,
        representative_data=calibration,  # Held-out inputs of the agreement check.
    )
    x, y = subclassed_models.data("single", 200, seed=21)
    actual = runtimes.load(result.path, "tflite").predict(x)
    expected = keras_logits(model, x)
    agreement = np.mean(np.argmax(actual, 1) == np.argmax(expected, 1))
    assert agreement >= 0.95
    assert np.mean(np.argmax(expected, 1) == y) > 0.5  # The model learned.


def test_in_memory_subclassed_model_exports(saved, tmp_path):
    model, _ = saved["dict"]
    result = export("onnx", model, tmp_path / "memory.onnx")
    x = fresh("dict")
    actual = runtimes.load(result.path, "onnx").predict(x)
    assert verify.relative_error(actual, keras_logits(model, x)) < 1e-5


def test_keras_runtime_measures_a_saved_subclassed_model(saved):
    model, path = saved["nested"]
    runtime = runtimes.load(path, "keras")
    x = fresh("nested")
    assert verify.relative_error(runtime.predict(x), keras_logits(model, x)) < 1e-5


def test_unbuilt_subclassed_model_is_refused_in_one_line(tmp_path):
    model = subclassed_models.SubclassedCNN()
    with pytest.raises(loading.ModelLoadError) as caught:
        export("onnx", model, tmp_path / "never.onnx")
    message = str(caught.value)
    assert "\n" not in message
    assert "SubclassedCNN" in message and "call it on a batch" in message
    assert "never built" in message
    assert not (tmp_path / "never.onnx").exists()


def test_model_called_on_two_arguments_exports_one_input_each(tmp_path):
    import keras

    keras.utils.set_random_seed(3)
    model = subclassed_models.TwoArguments()
    rng = np.random.default_rng(4)
    image = rng.normal(size=(5,) + subclassed_models.IMAGE_SHAPE).astype(np.float32)
    meta = rng.normal(size=(5, subclassed_models.META_WIDTH)).astype(np.float32)
    model(image, meta)
    spec = loading.input_spec(loading.functional_model(model))
    assert spec.names == ("image", "meta") and spec.structure == "list"
    result = export("onnx", model, tmp_path / "two.onnx")
    image, meta = image * 2 + 1, meta - 3  # Fresh inputs.
    actual = runtimes.load(result.path, "onnx").predict({"image": image, "meta": meta})
    expected = np.asarray(model(image, meta), dtype=np.float64)
    assert verify.relative_error(actual, expected) < 1e-5
