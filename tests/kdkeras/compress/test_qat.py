import pytest
import tf_keras

from kdkeras import compress
from tests.kdkeras.compress.conftest import accuracy


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
    dense_accuracy = accuracy(student.predict(x_test, verbose=0), y_test)
    assert (
        accuracy(qat_model.predict(x_test, verbose=0), y_test) > dense_accuracy - 0.05
    )
