"""The text path: a keras_hub BERT classifier (3 int32 inputs) through every exporter.

A tiny config built from scratch (no preset, no tokenizer download): its inputs
`{token_ids, segment_ids, padding_mask}` keep their names in the SavedModel
signature, the TFLite signature and the ONNX graph, and every artifact matches
Keras on fresh token sequences of several lengths, padding included.
"""

import numpy as np
import pytest

import models
from export import loading
from export import runtimes
from export import verify

keras_hub = pytest.importorskip("keras_hub")

VOCABULARY = 64
MAX_LENGTH = 16
NAMES = {"padding_mask", "segment_ids", "token_ids"}


def token_batch(count, length, seed):
    """Token ids after a [CLS]-like 1, padded to `length` with 0 and mask 0."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((count, length), np.int32)
    for row, used in enumerate(rng.integers(2, length + 1, count)):
        mask[row, :used] = 1
    token_ids = rng.integers(2, VOCABULARY, (count, length)).astype(np.int32)
    token_ids[:, 0] = 1
    segment_ids = (np.arange(length) >= length // 2).astype(np.int32) * mask
    return {
        "token_ids": token_ids * mask,
        "segment_ids": segment_ids,
        "padding_mask": mask,
    }


@pytest.fixture(scope="module")
def model():
    return models.build_bert_classifier(
        num_layers=1,
        num_classes=3,
        vocabulary_size=VOCABULARY,
        max_sequence_length=MAX_LENGTH,
    )


@pytest.fixture(scope="module")
def labelled(model, tmp_path_factory):
    x = token_batch(96, 12, seed=1)
    y = np.asarray(model(x, training=False)).argmax(axis=1)
    path = tmp_path_factory.mktemp("bert") / "labelled.npz"
    np.savez(path, **{f"x_{k}": v for k, v in x.items()}, y=y)
    return str(path)


def test_spec_reads_the_vocabularies_through_the_backbone(model):
    spec = loading.input_spec(model)
    assert set(spec.names) == NAMES and spec.structure == "dict"
    assert set(spec.dtypes) == {"int32"}
    ranges = dict(zip(spec.names, spec.ranges, strict=True))
    assert ranges == {
        "token_ids": (0, VOCABULARY),
        "segment_ids": (0, 2),
        "padding_mask": None,
    }


@pytest.fixture(scope="module")
def exported(model, labelled, tmp_path_factory):
    """The artifacts, exported lazily (one per format) and kept for the module."""
    folder = tmp_path_factory.mktemp("bert_exports")
    cache = {}

    def get(name):
        if name not in cache:
            from export.to_onnx import export_onnx
            from export.to_savedmodel import export_savedmodel
            from export.to_tflite import export_tflite

            cache[name] = {
                "savedmodel": lambda: export_savedmodel(model, str(folder / "sm")),
                "onnx": lambda: export_onnx(model, str(folder / "bert.onnx")),
                "tflite": lambda: export_tflite(model, str(folder / "bert.tflite")),
                "tflite_dynamic": lambda: export_tflite(
                    model,
                    str(folder / "bert_dynamic.tflite"),
                    quantize="dynamic",
                    labelled_data=labelled,
                ),
            }[name]()
        return cache[name]

    return get


@pytest.mark.parametrize("fmt", ["savedmodel", "tflite", "onnx"])
def test_float_formats_match_keras_on_padded_sequences(model, exported, fmt):
    result = exported(fmt)
    assert result.sidecar["parity"]["max_relative_error"] < verify.RELATIVE_TOLERANCE
    runtime = runtimes.load(result.path, fmt)
    for length, seed in ((5, 10), (MAX_LENGTH, 11)):
        x = token_batch(9, length, seed)
        expected = np.asarray(model(x, training=False))
        assert verify.relative_error(runtime.predict(x), expected) < 1e-5


def test_dynamic_int8_agrees_with_keras(exported):
    result = exported("tflite_dynamic")
    parity = result.sidecar["parity"]
    assert parity["top1_agreement"] >= verify.MIN_TOP1_AGREEMENT["dynamic"]
    assert result.sidecar["options"]["tensor_types"]["kernels"].get("int8", 0) > 0
    assert result.sidecar["accuracy"]["count"] == 96


def test_every_artifact_keeps_the_keras_input_names(exported):
    import onnx
    import tensorflow as tf

    signature = tf.saved_model.load(exported("savedmodel").path).signatures[
        "serving_default"
    ]
    assert set(signature.structured_input_signature[1]) == NAMES
    assert set(runtimes.load(exported("tflite").path, "tflite").inputs) == NAMES
    graph = onnx.load(exported("onnx").path).graph
    assert {i.name for i in graph.input} == NAMES


def test_a_bool_padding_mask_as_the_preprocessor_gives_it_is_labelled_data(
    model, tmp_path
):
    """keras_hub's preprocessors give `padding_mask` as bool; Keras casts it to
    the backbone's int32, and so does the exporters' labelled data."""
    from export.to_tflite import export_tflite

    x = token_batch(40, 12, seed=4)
    as_bool = dict(x, padding_mask=x["padding_mask"].astype(bool))
    expected = np.asarray(model(x, training=False))
    np.testing.assert_array_equal(np.asarray(model(as_bool, training=False)), expected)
    y = expected.argmax(axis=1)
    path = tmp_path / "labelled.npz"
    np.savez(path, **{f"x_{k}": v for k, v in as_bool.items()}, y=y)
    result = export_tflite(
        model, str(tmp_path / "bert.tflite"), labelled_data=str(path)
    )
    assert result.sidecar["accuracy"]["keras"] == 1.0
    assert result.sidecar["accuracy"]["exported"] == 1.0
    assert result.sidecar["accuracy"]["count"] == 40
