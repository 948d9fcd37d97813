"""export.to_savedmodel: named serving signature, dynamic batch, parity."""

import json
import os

import numpy as np
import pytest

from export import staging
from export import to_savedmodel
from export import verify
from tests.export import trained_cnn


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model, keras_path, (x_test, y_test) = trained_cnn.trained_cnn()
    folder = tmp_path_factory.mktemp("savedmodel")
    labelled = folder / "labelled.npz"
    np.savez(labelled, x=x_test, y=y_test)
    result = to_savedmodel.export_savedmodel(
        keras_path, folder / "student_savedmodel", labelled_data=labelled
    )
    return model, result, (x_test, y_test)


def test_training_moved_batchnorm_statistics(exported):
    model, _, _ = exported
    assert trained_cnn.bn_statistics_moved(model) > 0.05


def test_serving_signature_has_named_input_output_and_dynamic_batch(exported):
    import tensorflow as tf

    _, result, _ = exported
    function = tf.saved_model.load(result.path).signatures["serving_default"]
    _, inputs = function.structured_input_signature
    assert list(inputs) == ["inputs"]
    assert inputs["inputs"].shape.as_list() == [None, 28, 28, 1]
    assert inputs["inputs"].dtype == tf.float32
    assert list(function.structured_outputs) == ["logits"]
    assert function.structured_outputs["logits"].shape.as_list() == [None, 10]


@pytest.mark.parametrize("batch_size", [1, 3, 37])
def test_outputs_match_keras_on_fresh_inputs(exported, batch_size):
    import tensorflow as tf

    model, result, _ = exported
    function = tf.saved_model.load(result.path).signatures["serving_default"]
    x = trained_cnn.fresh_inputs(seed=100 + batch_size, batch_size=batch_size)
    expected = model(x, training=False).numpy()
    actual = function(inputs=tf.constant(x))["logits"].numpy()
    assert verify.relative_error(actual, expected) < 1e-5


def test_sidecar_records_size_parity_accuracy_and_versions(exported):
    _, result, (x_test, _) = exported
    assert result.sidecar_path == str(result.path) + ".json"
    with open(result.sidecar_path) as handle:
        content = json.load(handle)
    assert content == result.sidecar
    assert content["format"] == "savedmodel"
    assert content["size_bytes"] == staging.artifact_size_bytes(result.path)
    assert content["parity"]["max_relative_error"] < 1e-5
    assert content["parity"]["random_inputs"]["batch_sizes"] == [1, 16]
    assert content["accuracy"]["count"] == len(x_test)
    # A trained model: well above chance, and the export loses nothing.
    assert content["accuracy"]["keras"] > 0.6
    assert content["accuracy"]["exported"] == pytest.approx(
        content["accuracy"]["keras"], abs=2 / len(x_test)
    )
    for package in ("tensorflow", "keras", "tf2onnx", "onnxruntime", "litert"):
        assert content["versions"][package]
    assert content["options"]["input_name"] == "inputs"


def test_summary_is_one_line_naming_path_and_error(exported):
    _, result, _ = exported
    assert "\n" not in result.summary
    assert os.fspath(result.path) in result.summary
    assert "max rel. error" in result.summary


def test_no_temporary_leftovers_beside_output(exported):
    _, result, _ = exported
    folder = os.path.dirname(result.path)
    assert sorted(os.listdir(folder)) == [
        "labelled.npz",
        "student_savedmodel",
        "student_savedmodel.json",
    ]


def test_savedmodel_dir_round_trips_as_model_input(exported, tmp_path):
    import tensorflow as tf

    model, result, _ = exported
    again = to_savedmodel.export_savedmodel(result.path, tmp_path / "again")
    function = tf.saved_model.load(again.path).signatures["serving_default"]
    x = trained_cnn.fresh_inputs(seed=7, batch_size=5)
    actual = function(inputs=tf.constant(x))["logits"].numpy()
    assert verify.relative_error(actual, model(x, training=False).numpy()) < 1e-5


def test_existing_directory_refused_then_replaced_with_overwrite(exported, tmp_path):
    model, _, _ = exported
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(staging.OutputExistsError, match="--overwrite"):
        to_savedmodel.export_savedmodel(model, target)
    assert (target / "keep.txt").read_text() == "old"
    to_savedmodel.export_savedmodel(model, target, overwrite=True)
    assert (target / "saved_model.pb").exists()
    assert not (target / "keep.txt").exists()
    assert sorted(os.listdir(tmp_path)) == ["out", "out.json"]


@pytest.mark.parametrize("name", ["", "1x", "with space", None])
def test_bad_signature_names_rejected(name, tmp_path):
    model, _, _ = trained_cnn.trained_cnn()
    with pytest.raises(ValueError, match="input_name"):
        to_savedmodel.export_savedmodel(model, tmp_path / "x", input_name=name)
    assert not (tmp_path / "x").exists()
