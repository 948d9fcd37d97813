import re

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from kdkeras import compress
from tests.kdkeras.compress.conftest import accuracy
from tests.kdkeras.compress.conftest import self_distil
from tests.kdkeras.compress.conftest import synthetic_images


@pytest.fixture(scope="module")
def qat_model(compress_student):
    return compress_student(compress.quantization_aware, seed=31, epochs=1)


def test_qat_model_is_fake_quantized_and_keeps_the_students_accuracy(
    qat_model, fashion, teacher_and_student
):
    # Its int8 TFLite conversion is tested in tests/export/test_to_tflite_qat.py.
    _, (x_test, y_test) = fashion
    _, student = teacher_and_student
    assert isinstance(qat_model, tf_keras.Model)
    wrapped_dense = [
        layer
        for layer in qat_model.layers
        if type(layer).__name__ == "QuantizeWrapperV2"
        and type(layer.layer).__name__ == "Dense"
    ]
    assert len(wrapped_dense) == 2
    assert qat_model.compression_report.left_as_is == {}
    dense_accuracy = accuracy(student.predict(x_test, verbose=0), y_test)
    assert (
        accuracy(qat_model.predict(x_test, verbose=0), y_test) > dense_accuracy - 0.05
    )


def _int8_file(qat_model, folder, x, **options):
    """The model's int8 TFLite file (export's own checks passed), loaded."""
    from export import runtimes
    from export.to_tflite import export_tflite

    path = str(folder / "qat_int8.tflite")
    export_tflite(qat_model, path, quantize="qat", representative_data=x, **options)
    return runtimes.TFLiteRuntime(path)


def _mixed_graph():
    """Squeeze-and-excite, hard-swish, Keras ops and a LayerNormalization."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("hard_silu", name="hard_swish")(x)
    squeeze = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    squeeze = keras.layers.Conv2D(8, 1, activation="sigmoid", name="excite")(squeeze)
    x = keras.layers.Multiply(name="se")([x, squeeze])
    branch = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    branch = keras.layers.ReLU(6.0, name="relu6")(branch + 3.0) * (1 / 6)
    x = keras.layers.Add(name="residual")([x, branch])
    x = keras.layers.LayerNormalization(name="norm")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x))


def test_what_tfmot_cannot_quantize_is_left_in_float_and_listed(tmp_path):
    keras.utils.set_random_seed(32)
    student = _mixed_graph()
    x, y = synthetic_images(256, seed=33)
    x = x[:, :16, :16]
    # Trained a little: margins between the logits that int8 can keep.
    student.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    student.fit(x, y, epochs=4, batch_size=32, verbose=0)
    qat_model = self_distil(
        compress.quantization_aware, student, x, y, seed=34, epochs=1
    )
    report = qat_model.compression_report
    # Keras numbers its op layers per process (`tf.math.add_2` after other tests).
    left = sorted(re.sub(r"_\d+$", "", name) for name in report.left_as_is)
    assert left == ["norm", "tf.math.add", "tf.math.multiply"]
    assert all(
        "not supported by TFMOT" in reason for reason in report.left_as_is.values()
    )
    for name in ("scale", "stem", "stem_bn", "hard_swish", "excite", "se", "logits"):
        assert name in report.wrapped, name
    wrapped = {
        layer.layer.name
        for layer in qat_model.layers
        if type(layer).__name__ == "QuantizeWrapperV2"
    }
    assert not wrapped & set(report.left_as_is)

    # The float islands (the Keras ops, the LayerNormalization) run in float
    # in TFLite too, between int8 ops.
    int8 = _int8_file(qat_model, tmp_path, x, min_agreement=0.85).predict(x)
    agreement = np.mean(int8.argmax(1) == qat_model.predict(x, verbose=0).argmax(1))
    assert agreement >= 0.85


@pytest.mark.slow
@pytest.mark.timeout(1800)  # Minutes on a loaded 2-core machine.
def test_mobilenet_v2_quantization_aware_exports_to_int8(mobilenet_v2, tmp_path):
    x, y = synthetic_images(128, seed=34)
    qat_model = self_distil(
        compress.quantization_aware, mobilenet_v2, x, y, seed=35, epochs=1
    )
    report = qat_model.compression_report
    assert report.left_as_is == {}  # Every MobileNetV2 layer is quantized.
    x_test, y_test = synthetic_images(64, seed=36)
    int8 = _int8_file(qat_model, tmp_path, x).predict(x_test)
    fp32 = mobilenet_v2.predict(x_test, verbose=0)
    assert accuracy(int8, y_test) >= accuracy(fp32, y_test) - 0.1


def test_depthwise_kernels_are_fake_quantized_per_channel():
    from kdkeras.compress import bridge
    from kdkeras.compress import qat

    inputs = keras.Input((8, 8, 4))
    x = keras.layers.DepthwiseConv2D(3, use_bias=False, name="depthwise")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.ReLU()(x)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    student = keras.Model(inputs, outputs)
    # Channels of very different magnitudes, as a folded normalization makes.
    layer = student.get_layer("depthwise")
    scales = np.array([1e-3, 1e-2, 1.0, 10.0], "float32")
    layer.set_weights([layer.get_weights()[0] * scales[None, None, :, None]])
    kernel = layer.get_weights()[0]

    quantized, _ = qat.quantize(bridge.to_tf_keras(student))
    wrapper = quantized.get_layer("quant_depthwise")
    x = np.random.default_rng(45).normal(size=(4, 8, 8, 4)).astype("float32")
    quantized(x, training=True)
    ranges = {
        weight.name.split("/")[-1].split(":")[0]: weight.numpy()
        for weight in wrapper.weights
        if "kernel_m" in weight.name
    }
    largest = np.abs(kernel).reshape(-1, 4).max(axis=0)
    np.testing.assert_allclose(ranges["depthwise_kernel_max"], largest, rtol=1e-6)
    np.testing.assert_allclose(ranges["depthwise_kernel_min"], -largest, rtol=1e-6)
    # Each channel keeps its 255 levels: the smallest is not rounded to zero.
    fake = qat.DepthwiseKernelQuantizer()(
        tf.constant(kernel),
        False,
        {
            "min_var": tf.constant(ranges["depthwise_kernel_min"]),
            "max_var": tf.constant(ranges["depthwise_kernel_max"]),
        },
    ).numpy()
    # Half a step of the channel's own grid (2 * largest / 254) at most.
    error = np.abs(fake - kernel).reshape(-1, 4).max(axis=0)
    assert np.all(error <= 1.01 * largest / 254), (error, largest)
    assert np.all(np.abs(fake).reshape(-1, 4).max(axis=0) > 0)


@pytest.mark.e2e  # About 2 minutes on a shared 2-core machine: CI's 2nd stage.
def test_efficientnet_b0_quantization_aware_lists_the_layers_left_in_float():
    from tests.kdkeras.compress.conftest import build_application

    keras.utils.set_random_seed(46)
    student = build_application("EfficientNetB0", classes=4)
    x, y = synthetic_images(32, seed=47, classes=4)
    qat_model = self_distil(
        compress.quantization_aware, student, x, y, seed=48, batch_size=16, epochs=1
    )
    report = qat_model.compression_report
    assert report.method == "quantization_aware"
    wrapped = {
        layer.layer.name
        for layer in qat_model.layers
        if type(layer).__name__ == "QuantizeWrapperV2"
    }
    assert wrapped == set(report.wrapped)
    convolutions = {
        layer.name
        for layer in student.layers
        if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D", "Dense")
    }
    assert convolutions <= wrapped
    # Nothing is left in float silently: every layer is wrapped or listed.
    computing = {
        layer.name
        for layer in qat_model.layers
        if type(layer).__name__ not in ("InputLayer", "QuantizeLayer")
        and not type(layer).__name__.startswith("QuantizeWrapper")
    }
    assert computing <= set(report.left_as_is)
    assert report.left_as_is and all(report.left_as_is.values())
    outputs = qat_model.predict(x, verbose=0)
    assert outputs.shape == (32, 4) and np.isfinite(outputs).all()
