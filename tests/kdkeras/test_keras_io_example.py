"""The keras.io "Knowledge Distillation" example's calling code, unchanged.

keras-team/keras-io, examples/vision/knowledge_distillation.py (Keras 3
version): its `Distiller(student=..., teacher=...)`, `compile(...)`, `fit`
and `evaluate` calls run here verbatim on `kdkeras.Distiller`, on tiny
random MNIST-shaped data, with its models scaled down.
"""

import keras
import numpy as np
import pytest
from keras import layers

from kdkeras import Distiller


def _conv_net(filters, name):
    """The keras.io example's architecture, narrower."""
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(filters, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
            layers.Conv2D(filters, (3, 3), strides=(2, 2), padding="same"),
            layers.Flatten(),
            layers.Dense(10),
        ],
        name=name,
    )


def _models():
    keras.utils.set_random_seed(0)
    return _conv_net(8, "teacher"), _conv_net(4, "student")


def _mnist_shaped(examples, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(examples, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, size=examples).astype("uint8")  # as mnist.load_data
    return x, y


@pytest.mark.parametrize(
    "metric",
    [
        lambda: keras.metrics.SparseCategoricalAccuracy(),  # the example's
        lambda: "sparse_categorical_accuracy",
        lambda: "accuracy",
    ],
)
def test_keras_io_calling_code_runs_unchanged(metric):
    teacher, student = _models()
    x_train, y_train = _mnist_shaped(64, seed=1)
    x_test, y_test = _mnist_shaped(48, seed=2)

    # --- the example's calling code, verbatim from here ---
    # Initialize and compile distiller
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(),
        metrics=[metric()],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=keras.losses.KLDivergence(),
        alpha=0.1,
        temperature=10,
    )

    # Distill teacher to student
    distiller.fit(x_train, y_train, epochs=3, verbose=0)

    # Evaluate student on test dataset
    loss, accuracy = distiller.evaluate(x_test, y_test, verbose=0)
    # --- end of the example's code ---

    predictions = distiller.student.predict(x_test, verbose=0).argmax(axis=1)
    np.testing.assert_allclose(accuracy, (predictions == y_test).mean(), rtol=1e-6)
    parts = distiller.evaluate(x_test, y_test, verbose=0, return_dict=True)
    assert loss == pytest.approx(parts["loss"], rel=1e-6)
    assert loss == pytest.approx(
        0.1 * parts["student_loss"] + 0.9 * parts["distillation_loss"], rel=1e-5
    )
    assert {"student_loss", "distillation_loss", "teacher_agreement"} <= set(parts)
    history = distiller.fit(x_train, y_train, epochs=1, verbose=0)
    assert {"loss", "student_loss", "distillation_loss"} <= set(history.history)


def test_evaluate_without_metrics_returns_the_loss_like_keras():
    teacher, student = _models()
    x, y = _mnist_shaped(32, seed=3)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", alpha=0.1, temperature=10)
    loss = distiller.evaluate(x, y, verbose=0)
    assert isinstance(loss, float)
    assert loss == pytest.approx(
        distiller.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    )


@pytest.mark.parametrize("method", ["test_on_batch", "train_on_batch"])
def test_on_batch_results_are_loss_then_metrics_like_evaluate(method):
    teacher, student = _models()
    x, y = _mnist_shaped(32, seed=4)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer="adam",
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        alpha=0.1,
        temperature=10,
    )
    accuracy = (distiller.student.predict(x, verbose=0).argmax(axis=1) == y).mean()
    loss, batch_accuracy = getattr(distiller, method)(x, y)
    assert batch_accuracy == pytest.approx(accuracy, rel=1e-6)
    parts = getattr(distiller, method)(x, y, return_dict=True)
    assert {"student_loss", "distillation_loss", "sparse_categorical_accuracy"} <= set(
        parts
    )
