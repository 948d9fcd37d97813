"""Every exporter on a model with several inputs (dict: float, token ids, mask) and outputs.

The SavedModel signature, the TFLite signature and the ONNX graph keep the Keras
input and output names; parity feeds every input and compares every output;
labelled and calibration data come as `x_<input name>` arrays or a dataset.
"""

import numpy as np
import pytest

from export import inputs
from export import loading
from export import runtimes
from export import verify

VOCABULARY = 11
LENGTH = 5


def build_model(seed=0):
    """`{image, token_ids, mask}` -> `{aux, logits}`; the mask zeroes token embeddings."""
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input((4,), name="image")
    token_ids = keras.Input((LENGTH,), dtype="int32", name="token_ids")
    mask = keras.Input((LENGTH,), dtype="int32", name="mask")
    embedded = keras.layers.Embedding(VOCABULARY, 3)(token_ids)
    embedded = embedded * keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    hidden = keras.layers.Concatenate()([image, keras.layers.Flatten()(embedded)])
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
    return keras.Model(
        {"image": image, "token_ids": token_ids, "mask": mask},
        {"aux": keras.layers.Dense(3)(hidden), "logits": keras.layers.Dense(2)(hidden)},
    )


def fresh(count, seed):
    rng = np.random.default_rng(seed)
    mask = (rng.random((count, LENGTH)) < 0.7).astype(np.int32)
    mask[:, 0] = 1
    return {
        "image": rng.normal(size=(count, 4)).astype(np.float32),
        "token_ids": rng.integers(0, VOCABULARY, (count, LENGTH)).astype(np.int32),
        "mask": mask,
    }


@pytest.fixture(scope="module")
def model():
    return build_model()


def keras_outputs(model, x):
    outputs = model(x, training=False)
    return {name: np.asarray(value) for name, value in outputs.items()}


def test_spec_reads_names_dtypes_shapes_and_vocabulary(model):
    spec = loading.input_spec(model)
    assert spec.structure == "dict"
    assert spec.names == ("image", "mask", "token_ids")
    assert spec.dtypes == ("float32", "int32", "int32")
    assert spec.shapes == ((None, 4), (None, LENGTH), (None, LENGTH))
    assert spec.ranges == (None, None, (0, VOCABULARY))
    assert spec.output_names == ("aux", "logits")
    assert inputs.InputSpec.from_json(spec.to_json()).to_json() == spec.to_json()


def test_random_inputs_are_valid_per_dtype(model):
    spec = loading.input_spec(model)
    x = spec.random(400, np.random.default_rng(0))
    assert x["token_ids"].dtype == np.int32
    assert x["token_ids"].min() >= 0 and x["token_ids"].max() == VOCABULARY - 1
    assert set(np.unique(x["mask"])) == {0, 1}
    assert np.all(x["mask"][:, 0] == 1)  # No example masked out entirely.
    assert 0 <= x["image"].min() and x["image"].max() < 1
    assert len(np.unique(x["image"])) > 100


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    from export.to_onnx import export_onnx
    from export.to_savedmodel import export_savedmodel
    from export.to_tflite import export_tflite

    folder = tmp_path_factory.mktemp("several")
    return {
        "savedmodel": export_savedmodel(model, str(folder / "model")),
        "onnx": export_onnx(model, str(folder / "model.onnx")),
        "tflite": export_tflite(model, str(folder / "model.tflite")),
    }


@pytest.mark.parametrize("fmt", ["savedmodel", "onnx", "tflite"])
def test_every_output_matches_keras_on_fresh_inputs(model, exported, fmt):
    result = exported[fmt]
    parity = result.sidecar["parity"]
    assert set(parity["output_relative_errors"]) == {"aux", "logits"}
    assert parity["max_relative_error"] < verify.RELATIVE_TOLERANCE
    x = fresh(23, seed=7)
    actual = runtimes.load(result.path, fmt).predict_all(x)
    expected = keras_outputs(model, x)
    for name in ("aux", "logits"):
        assert verify.relative_error(actual[name], expected[name]) < 1e-5


def test_artifacts_keep_the_keras_names(exported):
    import onnx
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    names = {"image", "mask", "token_ids"}
    signature = tf.saved_model.load(exported["savedmodel"].path).signatures[
        "serving_default"
    ]
    assert set(signature.structured_input_signature[1]) == names
    assert set(signature.structured_outputs) == {"aux", "logits"}
    graph = onnx.load(exported["onnx"].path).graph
    assert {i.name for i in graph.input} == names
    assert {o.name for o in graph.output} == {"aux", "logits"}
    runner = Interpreter(model_path=exported["tflite"].path).get_signature_runner()
    details = runner.get_input_details()
    assert set(details) == names
    assert np.dtype(details["token_ids"]["dtype"]) == np.int32
    assert set(runner.get_output_details()) == {"aux", "logits"}


def test_labelled_npz_by_input_name_gives_accuracy(model, tmp_path):
    from export.to_tflite import export_tflite

    x = fresh(120, seed=3)
    y = np.argmax(keras_outputs(model, x)["aux"], axis=1)  # The first output.
    y[:12] = (y[:12] + 1) % 3  # Ten per cent wrong.
    path = tmp_path / "labelled.npz"
    np.savez(path, **{f"x_{k}": v for k, v in x.items()}, y=y)
    result = export_tflite(
        model, str(tmp_path / "d.tflite"), quantize="dynamic", labelled_data=str(path)
    )
    accuracy = result.sidecar["accuracy"]
    assert accuracy["keras"] == pytest.approx(0.9)
    assert accuracy["count"] == 120
    assert result.sidecar["parity"]["real_inputs"] == "labelled data"


def test_a_bool_mask_is_taken_as_keras_takes_it(model, tmp_path):
    """keras_hub's preprocessors give `padding_mask` as bool: labelled and
    calibration data with a bool mask give what the int mask gives."""
    from export.to_tflite import export_tflite

    x = fresh(60, seed=11)
    y = np.argmax(keras_outputs(model, x)["aux"], axis=1)
    y[:6] = (y[:6] + 1) % 3
    as_bool = dict(x, mask=x["mask"].astype(bool))
    expected = keras_outputs(model, x)
    for name, value in keras_outputs(model, as_bool).items():
        np.testing.assert_array_equal(value, expected[name])  # Keras' own cast.
    path = tmp_path / "labelled.npz"
    np.savez(path, **{f"x_{k}": v for k, v in as_bool.items()}, y=y)
    result = export_tflite(
        model,
        str(tmp_path / "dynamic.tflite"),
        quantize="dynamic",
        labelled_data=str(path),
    )
    assert result.sidecar["accuracy"]["keras"] == pytest.approx(0.9)
    assert result.sidecar["parity"]["real_inputs"] == "labelled data"
    calibration = inputs.load_representative(as_bool, loading.input_spec(model))
    np.testing.assert_array_equal(calibration["mask"], x["mask"])
    assert calibration["mask"].dtype == np.int32


def test_dataset_of_labelled_batches_is_accepted(model, tmp_path):
    import tensorflow as tf

    from export.to_savedmodel import export_savedmodel

    x = fresh(40, seed=4)
    y = np.argmax(keras_outputs(model, x)["aux"], axis=1)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    result = export_savedmodel(model, str(tmp_path / "sm"), labelled_data=dataset)
    assert result.sidecar["accuracy"]["keras"] == 1.0
    assert result.sidecar["accuracy"]["count"] == 40


def test_int8_calibrates_on_every_input_and_keeps_token_ids_int32(model, tmp_path):
    from export.to_tflite import export_tflite

    calibration = fresh(64, seed=5)
    result = export_tflite(
        model,
        str(tmp_path / "int8.tflite"),
        quantize="int8",
        representative_data=calibration,
        min_agreement=0.8,
    )
    parity = result.sidecar["parity"]
    assert parity["top1_agreement"] >= 0.8
    assert "scaled like the representative data" in parity["real_inputs"]
    runtime = runtimes.load(result.path, "tflite")
    assert np.dtype(runtime.inputs["token_ids"]["dtype"]) == np.int32


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x: x.pop("mask"), r"\[mask\]|without mask"),
        (lambda x: x.update(token_ids=x["token_ids"] + VOCABULARY), r"\[0, 11\)"),
        (lambda x: x.update(mask=x["mask"] + 0.5), "integers"),
        (lambda x: x.update(image=x["image"][:10]), "as many rows"),
    ],
)
def test_bad_data_is_one_line_naming_the_argument(model, change, message):
    x = fresh(20, seed=6)
    change(x)
    spec = loading.input_spec(model)
    with pytest.raises(ValueError, match=message) as caught:
        inputs.load_inputs(x, spec, flag="--representative-data")
    assert "\n" not in str(caught.value)
    assert "--representative-data" in str(caught.value)


def test_npz_without_an_input_names_what_is_expected(model, tmp_path):
    x = fresh(20, seed=8)
    path = tmp_path / "partial.npz"
    np.savez(path, x_image=x["image"], x_mask=x["mask"], y=np.zeros(20, int))
    spec = loading.input_spec(model)
    with pytest.raises(ValueError, match="x_image, x_mask, x_token_ids and y"):
        inputs.load_labelled(str(path), spec)


def test_list_inputs_keep_their_order_and_names(tmp_path):
    import keras

    from export.to_onnx import export_onnx

    keras.utils.set_random_seed(1)
    a, b = keras.Input((3,), name="left"), keras.Input((2,), name="right")
    hidden = keras.layers.Concatenate()([keras.layers.Dense(4)(b), a])
    model = keras.Model([a, b], keras.layers.Dense(5)(hidden))
    result = export_onnx(model, str(tmp_path / "list.onnx"))
    assert result.sidecar["options"]["input_names"] == ["left", "right"]
    rng = np.random.default_rng(2)
    x = {"left": rng.normal(size=(9, 3)), "right": rng.normal(size=(9, 2))}
    x = {k: v.astype(np.float32) for k, v in x.items()}
    actual = runtimes.load(result.path, "onnx").predict(x)
    expected = np.asarray(model([x["left"], x["right"]]))
    assert verify.relative_error(actual, expected) < 1e-5
