import keras
import numpy as np
import pytest

from kdkeras import compress
from tests.kdkeras.compress.conftest import accuracy
from tests.kdkeras.compress.conftest import tflite_kernels

CLUSTERS = 16


@pytest.fixture(scope="module")
def clustered(compress_student):
    return compress_student(
        compress.cluster, seed=21, number_of_clusters=CLUSTERS, epochs=1
    )


def test_each_kernel_holds_at_most_the_cluster_count(clustered, teacher_and_student):
    _, student = teacher_and_student
    counts = compress.unique_kernel_values(clustered)
    assert sorted(counts) == ["hidden", "logits"]
    for name, count in counts.items():
        assert 2 <= count <= CLUSTERS, (name, count)
    assert all(
        count > CLUSTERS for count in compress.unique_kernel_values(student).values()
    )


def test_clustered_student_keeps_its_accuracy(clustered, fashion, teacher_and_student):
    _, (x_test, y_test) = fashion
    _, student = teacher_and_student
    dense_accuracy = accuracy(student.predict(x_test, verbose=0), y_test)
    assert accuracy(clustered.predict(x_test, verbose=0), y_test) > dense_accuracy - 0.1


def test_clustering_survives_tflite_export(clustered, tmp_path):
    from export.to_tflite import export_tflite

    path = export_tflite(clustered, str(tmp_path / "clustered.tflite")).path
    kernels = tflite_kernels(path)
    assert len(kernels) == 2
    for name, value in kernels.items():
        assert np.unique(value).size <= CLUSTERS, name


def test_convolutions_are_clustered_too(fashion):
    (x, y), _ = fashion
    x, y = x[:128], y[:128]
    student = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
            keras.layers.BatchNormalization(),
            keras.layers.DepthwiseConv2D(3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    clustered = compress.cluster(
        student,
        None,
        x,
        y,
        teacher_logits=np.zeros((len(x), 10), "float32"),
        number_of_clusters=4,
        epochs=1,
        batch_size=64,
    )
    counts = compress.unique_kernel_values(clustered)
    assert set(counts) == {"conv", "logits"}
    assert all(count <= 4 for count in counts.values())


def test_bad_cluster_count(fashion, teacher_and_student):
    (x, y), _ = fashion
    teacher, student = teacher_and_student
    with pytest.raises(ValueError, match="`number_of_clusters` must be >= 2"):
        compress.cluster(student, teacher, x, y, number_of_clusters=1)
