"""Small trained models and a Fashion-MNIST slice shared by the compression tests."""

import keras
import numpy as np
import pytest

from models.data import load_fashion_mnist

NUM_TRAIN = 1024
NUM_TEST = 256


@pytest.fixture(scope="session")
def fashion():
    """`(x_train, y_train), (x_test, y_test)`, a small Fashion-MNIST slice."""
    return load_fashion_mnist(limit_train=NUM_TRAIN, limit_test=NUM_TEST)


def to_rgb32(images):
    """Fashion-MNIST `(N, 28, 28, 1)` in [0, 1] as `(N, 32, 32, 3)` in [0, 255].

    Zero-padded by 2 pixels, the channel repeated: the input the
    `keras.applications` students take at their smallest size.
    """
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    return np.repeat(255.0 * padded, 3, axis=-1).astype("float32")


def build_mlp(hidden_units=64, name="mlp"):
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden_units, activation="relu", name="hidden"),
            keras.layers.Dense(10, name="logits"),
        ],
        name=name,
    )


def _fit(model, x, y, epochs):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="session")
def teacher_and_student(fashion):
    """A 784-128-10 teacher and a 784-64-10 student, each briefly trained."""
    (x, y), _ = fashion
    keras.utils.set_random_seed(7)
    teacher = _fit(build_mlp(128, name="teacher"), x, y, epochs=4)
    student = _fit(build_mlp(64, name="student"), x, y, epochs=2)
    return teacher, student


def accuracy(logits, labels):
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def tflite_kernels(path):
    """The 2-D weight tensors (the `Dense` kernels) of a `.tflite` file."""
    from export import runtimes

    return {
        name: value
        for name, value in runtimes.tflite_weight_tensors(path).items()
        if value.ndim == 2
    }


@pytest.fixture(scope="session")
def compress_student(fashion, teacher_and_student):
    """Calls `method(student, teacher, x, y, batch_size=64, ...)`, seeded."""

    def run(method, seed, **arguments):
        (x, y), _ = fashion
        teacher, student = teacher_and_student
        keras.utils.set_random_seed(seed)
        return method(student, teacher, x, y, batch_size=64, **arguments)

    return run


def synthetic_images(count, seed, classes=4):
    """A learnable task: each class a fixed random 32x32x3 pattern plus noise.

    Returns `(x, y)`: float32 images in [0, 255] and int32 labels.
    """
    patterns = np.random.default_rng(1234).uniform(0, 255, size=(classes, 32, 32, 3))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=count).astype("int32")
    noise = rng.uniform(0, 255, size=(count, 32, 32, 3))
    return (0.6 * patterns[y] + 0.4 * noise).astype("float32"), y


# keras.applications students at their smallest input size (32x32x3) and
# width, with logits (no softmax), as distillation students are built: the
# constructor's own arguments by architecture.
APPLICATIONS = {
    "MobileNet": {"alpha": 0.25},
    "MobileNetV2": {"alpha": 0.35},
    "MobileNetV3Small": {"alpha": 0.75},
    "EfficientNetB0": {},
    "EfficientNetV2B0": {},
    "ResNet50": {},
    "DenseNet121": {},
    "ConvNeXtTiny": {},
}


def build_application(name, classes=10):
    """The `keras.applications` model `name`, 32x32x3, untrained, logits."""
    return getattr(keras.applications, name)(
        input_shape=(32, 32, 3),
        weights=None,
        classes=classes,
        classifier_activation=None,
        **APPLICATIONS[name],
    )


def self_distil(method, model, x, y, seed, batch_size=32, **arguments):
    """`method(model, None, x, y, ...)` distilling from `model`'s own logits."""
    keras.utils.set_random_seed(seed)
    return method(
        model,
        None,
        x,
        y,
        teacher_logits=model.predict(x, verbose=0),
        batch_size=batch_size,
        **arguments,
    )


@pytest.fixture(scope="session")
def mobilenet_v2():
    """MobileNetV2 (alpha 0.35, 32x32, logits) briefly trained on `synthetic_images`."""
    keras.utils.set_random_seed(21)
    student = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 127.5, offset=-1.0),
            build_application("MobileNetV2", classes=4),
        ],
        name="mobilenet_v2_student",
    )
    x, y = synthetic_images(256, seed=22)
    return _fit(student, x, y, epochs=2)
