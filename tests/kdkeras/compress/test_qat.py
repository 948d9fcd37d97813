import keras
import numpy as np
import pytest
import tf_keras

import models
from kdkeras import compress
from tests.kdkeras.compress.conftest import accuracy


@pytest.fixture(scope="module")
def qat_model(compress_student):
    return compress_student(compress.quantization_aware, seed=31, epochs=1)


def _kernels(flatbuffer):
    return {
        name: value
        for name, value in compress.tflite_weight_tensors(flatbuffer).items()
        if value.ndim == 2
    }


def test_qat_model_exports_to_int8_that_agrees_with_keras(
    qat_model, fashion, teacher_and_student, tmp_path
):
    _, (x_test, y_test) = fashion
    _, student = teacher_and_student
    assert isinstance(qat_model, tf_keras.Model)
    path = str(tmp_path / "qat.tflite")
    flatbuffer = compress.qat_to_tflite(qat_model, path)
    with open(path, "rb") as file:
        assert file.read() == flatbuffer

    kernels = _kernels(flatbuffer)
    assert len(kernels) == 2
    assert all(value.dtype == np.int8 for value in kernels.values())
    float_size = len(compress.convert_to_tflite(student))
    assert len(flatbuffer) < 0.35 * float_size

    tflite_logits = compress.tflite_predict(flatbuffer, x_test)
    keras_logits = qat_model.predict(x_test, verbose=0)
    agreement = np.mean(tflite_logits.argmax(1) == keras_logits.argmax(1))
    assert agreement >= 0.95
    dense_accuracy = accuracy(student.predict(x_test, verbose=0), y_test)
    assert accuracy(tflite_logits, y_test) > dense_accuracy - 0.05


def test_post_training_int8_agrees_with_the_float_student(
    fashion, teacher_and_student, tmp_path
):
    (x, _), (x_test, y_test) = fashion
    _, student = teacher_and_student
    flatbuffer = compress.post_training_int8(
        student, x[:128], str(tmp_path / "ptq.tflite")
    )
    assert all(value.dtype == np.int8 for value in _kernels(flatbuffer).values())
    tflite_logits = compress.tflite_predict(flatbuffer, x_test)
    keras_logits = student.predict(x_test, verbose=0)
    assert np.mean(tflite_logits.argmax(1) == keras_logits.argmax(1)) >= 0.95


def test_qat_to_tflite_wants_the_tf_keras_model(teacher_and_student):
    _, student = teacher_and_student
    with pytest.raises(TypeError, match="`qat_model` must be the tf_keras model"):
        compress.qat_to_tflite(student)


def test_conversion_arguments_are_checked(teacher_and_student):
    _, student = teacher_and_student
    with pytest.raises(ValueError, match="`quantize` must be one of"):
        compress.convert_to_tflite(student, quantize="int4")
    with pytest.raises(ValueError, match="`representative_data`"):
        compress.convert_to_tflite(student, quantize="int8")


def test_failed_save_leaves_nothing_behind(tmp_path):
    path = tmp_path / "broken.tflite"
    with pytest.raises(Exception):
        compress.save_tflite(b"not a flatbuffer", str(path))
    assert list(tmp_path.iterdir()) == []


def test_qat_cnn_with_rescaling_and_batch_norm_is_int8_throughout(fashion):
    (x, y), (x_test, _) = fashion
    x, y, x_test = x[:256], y[:256], x_test[:64]
    cnn = models.build_cnn_student(filters=(8, 16), seed=0)
    student = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Rescaling(2.0, offset=-1.0)]
        + cnn.layers[1:]
    )
    qat_model = compress.quantization_aware(
        student, None, x, y,
        teacher_logits=np.zeros((len(x), 10), "float32"),
        epochs=1, batch_size=64,
    )
    flatbuffer = compress.qat_to_tflite(qat_model)
    kernels = {
        name: value
        for name, value in compress.tflite_weight_tensors(flatbuffer, 8).items()
        if value.ndim >= 2
    }
    # conv_1 (after the Rescaling), depthwise_2, pointwise_2, logits; the
    # BatchNormalization layers are folded into them.
    assert len(kernels) == 4
    assert all(value.dtype == np.int8 for value in kernels.values())
    agreement = np.mean(
        compress.tflite_predict(flatbuffer, x_test).argmax(1)
        == qat_model.predict(x_test, verbose=0).argmax(1)
    )
    assert agreement >= 0.95
