"""export.to_tflite with quantize="qat": TFMOT quantization-aware models to int8 TFLite.

The quantization-aware model comes from `kdkeras.compress.quantization_aware` (a
`tf_keras` model with fake-quant wrappers); the exporter converts it, checks it
against that model on real inputs, and writes it with its sidecar like any export.
"""

import keras
import numpy as np
import pytest
import tf_keras

import models
from export import runtimes
from export import sidecar
from export import to_tflite
from kdkeras import compress
from models.data import load_fashion_mnist


def accuracy(logits, labels):
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


@pytest.fixture(scope="module")
def fashion():
    return load_fashion_mnist(limit_train=1024, limit_test=256)


@pytest.fixture(scope="module")
def student(fashion):
    (x, y), _ = fashion
    keras.utils.set_random_seed(7)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu", name="hidden"),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def qat_model(fashion, student):
    (x, y), _ = fashion
    keras.utils.set_random_seed(31)
    logits = student.predict(x, verbose=0)  # self-distillation: no teacher needed
    return compress.quantization_aware(
        student, None, x, y, teacher_logits=logits, epochs=1, batch_size=64
    )


def int8_kernels(path, min_size=64, ndim=2):
    return {
        name: value
        for name, value in runtimes.tflite_weight_tensors(path, min_size).items()
        if value.ndim >= ndim
    }


def test_qat_model_exports_to_int8_that_agrees_with_keras(
    qat_model, fashion, student, tmp_path
):
    _, (x_test, y_test) = fashion
    assert isinstance(qat_model, tf_keras.Model)
    result = to_tflite.export_tflite(
        qat_model,
        str(tmp_path / "qat.tflite"),
        quantize="qat",
        labelled_data=(x_test, y_test),
    )
    kernels = int8_kernels(result.path)
    assert len(kernels) == 2
    assert all(value.dtype == np.int8 for value in kernels.values())
    float_path = to_tflite.export_tflite(student, str(tmp_path / "float.tflite")).path
    assert (
        result.sidecar["size_bytes"]
        < 0.35 * sidecar.read_sidecar(float_path)["size_bytes"]
    )

    tflite_logits = runtimes.TFLiteRuntime(result.path).predict(x_test)
    keras_logits = qat_model.predict(x_test, verbose=0)
    assert np.mean(tflite_logits.argmax(1) == keras_logits.argmax(1)) >= 0.95
    dense_accuracy = accuracy(student.predict(x_test, verbose=0), y_test)
    assert accuracy(tflite_logits, y_test) > dense_accuracy - 0.05
    recorded = sidecar.read_sidecar(result.path)
    assert recorded["options"]["quantize"] == "qat"
    assert recorded["parity"]["top1_agreement"] >= 0.95
    assert recorded["accuracy"]["exported"] == pytest.approx(
        accuracy(tflite_logits, y_test)
    )


def test_qat_needs_the_quantization_aware_model_and_only_it(
    qat_model, student, tmp_path
):
    with pytest.raises(
        TypeError, match="`model` must be the quantization-aware"
    ) as error:
        to_tflite.export_tflite(student, str(tmp_path / "a.tflite"), quantize="qat")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="`quantize` must be 'qat'"):
        to_tflite.export_tflite(
            qat_model,
            str(tmp_path / "b.tflite"),
            quantize="int8",
            representative_data=np.ones((4, 28, 28, 1), np.float32),
        )
    assert list(tmp_path.iterdir()) == []


def test_qat_cnn_with_rescaling_and_batch_norm_is_int8_throughout(fashion, tmp_path):
    (x, y), (x_test, _) = fashion
    x, y, x_test = x[:256], y[:256], x_test[:64]
    cnn = models.build_cnn_student(filters=(8, 16), seed=0)
    student = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Rescaling(2.0, offset=-1.0)]
        + cnn.layers[1:]
    )
    logits = student.predict(x, verbose=0)  # self-distillation: no teacher needed
    qat_model = compress.quantization_aware(
        student, None, x, y, teacher_logits=logits, epochs=1, batch_size=64
    )
    path = to_tflite.export_tflite(
        qat_model, str(tmp_path / "cnn.tflite"), quantize="qat"
    ).path
    kernels = int8_kernels(path, min_size=8)
    # conv_1 (after the Rescaling), depthwise_2, pointwise_2, logits; the
    # BatchNormalization layers are folded into them.
    assert len(kernels) == 4
    assert all(value.dtype == np.int8 for value in kernels.values())
    agreement = np.mean(
        runtimes.TFLiteRuntime(path).predict(x_test).argmax(1)
        == qat_model.predict(x_test, verbose=0).argmax(1)
    )
    assert agreement >= 0.95
