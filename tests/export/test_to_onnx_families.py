"""export.to_onnx on the keras.applications families tf2onnx alone cannot convert.

EfficientNet's `Normalization` layer holds its mean and variance as captured
tensors (left as unfed graph inputs by tf2onnx), and Keras compiles grouped
convolutions (ConvNeXt's depthwise convolutions) with XLA, a call tf2onnx does
not inline. Each family is built at its smallest width (`families`); a small
model with the same constructs runs in the default selection.
"""

import collections

import numpy as np
import pytest

from export import to_onnx
from export import verify
from tests.export import families


# Each family's conversion and verification takes ~1 min on 2 cores.
@pytest.fixture(
    scope="module",
    params=[pytest.param(name, marks=pytest.mark.slow) for name in families.BUILDERS],
)
def exported(request, tmp_path_factory):
    model = families.build(request.param)
    folder = tmp_path_factory.mktemp(f"onnx_{request.param}")
    result = to_onnx.export_onnx(model, folder / f"{request.param}.onnx")
    return model, result


def test_family_converts_and_matches_keras(exported):
    import onnxruntime

    model, result = exported
    assert result.sidecar["parity"]["max_relative_error"] < verify.RELATIVE_TOLERANCE
    session = onnxruntime.InferenceSession(
        result.path, providers=["CPUExecutionProvider"]
    )
    x = families.fresh_images(seed=41, batch_size=5)
    (actual,) = session.run(None, {"inputs": x})
    expected = model(x, training=False).numpy()
    assert verify.relative_error(actual, expected) < verify.RELATIVE_TOLERANCE


def test_family_graph_has_only_its_own_input_and_no_calls(exported):
    import onnx

    _, result = exported
    graph = onnx.load(result.path).graph
    assert [value.name for value in graph.input] == ["inputs"]
    assert [value.name for value in graph.output] == ["logits"]
    ops = collections.Counter(node.op_type for node in graph.node)
    assert not {"PartitionedCall", "StatefulPartitionedCall"} & set(ops)


def _normalised_grouped_model():
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.Normalization(mean=[0.1, 0.2, 0.3, 0.4], variance=[1, 2, 3, 4])(
        inputs
    )
    x = keras.layers.Conv2D(8, 3, groups=4)(x)  # XLA-compiled on CPU by Keras.
    x = keras.layers.LayerNormalization()(x)
    x = keras.layers.Activation("gelu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def test_frozen_graph_keeps_only_the_signature_input_and_no_barriers():
    from export import to_savedmodel

    model = _normalised_grouped_model()
    graph_def, input_names, output_names, renames = to_onnx.frozen_graph(
        to_savedmodel.serving_function(model)
    )
    placeholders = [node.name for node in graph_def.node if node.op == "Placeholder"]
    assert placeholders == ["inputs"]
    assert input_names == ["inputs:0"]
    assert renames == {"inputs:0": "inputs", output_names[0]: "logits"}
    attributes = [
        name
        for function in graph_def.library.function
        for node in list(function.node_def) + [function]
        for name in node.attr
    ] + [name for node in graph_def.node for name in node.attr]
    assert not set(to_onnx.NOINLINE_ATTRIBUTES) & set(attributes)


def test_normalised_grouped_model_exports(tmp_path):
    model = _normalised_grouped_model()
    result = to_onnx.export_onnx(model, tmp_path / "m.onnx")
    assert result.sidecar["parity"]["max_relative_error"] < verify.RELATIVE_TOLERANCE
    import onnxruntime

    session = onnxruntime.InferenceSession(
        result.path, providers=["CPUExecutionProvider"]
    )
    x = np.random.default_rng(8).normal(2.0, 3.0, (7, 6, 6, 4)).astype(np.float32)
    (actual,) = session.run(None, {"inputs": x})
    assert verify.relative_error(actual, model(x).numpy()) < verify.RELATIVE_TOLERANCE
