"""Tiny synthetic data and models shared by the Distiller tests."""

import keras
import numpy as np

import kdkeras

NUM_CLASSES = 5
FEATURES = 12


def random_data(examples=64, seed=0, features=FEATURES, classes=NUM_CLASSES):
    """`(x, y)`: standard-normal features and uniform integer labels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(examples, features)).astype("float32")
    y = rng.integers(0, classes, size=examples).astype("int32")
    return x, y


def mlp(
    width=16,
    seed=0,
    *,
    classes=NUM_CLASSES,
    features=FEATURES,
    dropout=0.0,
    batch_norm=False,
    activation=None,
):
    """A seeded one-hidden-layer MLP whose last layer is named `"logits"`.

    Its hidden layer (`"hidden"`, ReLU) may be followed by `BatchNormalization`
    and `Dropout(dropout)`; `activation` is the last layer's.
    """
    keras.utils.set_random_seed(seed)
    layers = [
        keras.Input((features,)),
        keras.layers.Dense(width, activation="relu", name="hidden"),
    ]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(classes, activation=activation, name="logits"))
    return keras.Sequential(layers)


def linear(seed, classes=NUM_CLASSES, features=FEATURES):
    """A seeded linear classifier (one `Dense` named `"logits"`)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((features,)), keras.layers.Dense(classes, name="logits")]
    )


def compiled_distiller(alpha, temperature=4.0, **compile_kwargs):
    """An 8-unit student and a 32-unit teacher, compiled with SGD(0.05)."""
    distiller = kdkeras.Distiller(student=mlp(8, seed=1), teacher=mlp(32, seed=2))
    compile_kwargs.setdefault("optimizer", keras.optimizers.SGD(0.05))
    distiller.compile(alpha=alpha, temperature=temperature, **compile_kwargs)
    return distiller


def one_sgd_step(
    student,
    teacher,
    x,
    targets,
    sample_weight=None,
    learning_rate=0.5,
    **compile_kwargs,
):
    """Distils `student` from `teacher` for one full-batch SGD step.

    Args:
        student, teacher: the models; `student` is trained in place.
        x, targets, sample_weight: what `Distiller.fit` takes.
        learning_rate: the SGD learning rate.
        **compile_kwargs: the rest of `Distiller.compile` (`alpha`,
            `temperature`, ...); without XLA unless `jit_compile` says so.

    Returns:
        `(kernel, bias, history)`: the student's float64 weights before the
        step (a linear student's kernel and bias) and the step's history dict.
    """
    kernel, bias = [w.astype(np.float64) for w in student.get_weights()]
    compile_kwargs.setdefault("jit_compile", False)
    distiller = kdkeras.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(learning_rate), **compile_kwargs)
    history = distiller.fit(
        x, targets, sample_weight=sample_weight, batch_size=len(x), epochs=1, verbose=0
    )
    return kernel, bias, history.history


def distiller_gradient(alpha, hard_gradient, soft_gradient, sample_weight):
    """d loss / d logits of each example for `Distiller`'s loss, float64.

    Args:
        alpha: the weight of the hard (student) loss.
        hard_gradient, soft_gradient: the gradients of each example's hard and
            soft loss with respect to its logits.
        sample_weight: the examples' weights.

    Returns:
        `alpha * hard + (1 - alpha) * soft`, weighted, averaged over the batch.
    """
    combined = alpha * hard_gradient + (1 - alpha) * soft_gradient
    return combined * np.asarray(sample_weight)[:, None] / len(sample_weight)


def assert_sgd_step(student, x, kernel, bias, gradient, learning_rate=0.5):
    """A linear `student` stands one float64 SGD step from `kernel` and `bias`.

    Args:
        student: the linear student after the step.
        x: the batch of the step.
        kernel, bias: the float64 weights before the step.
        gradient: d loss / d logits of each example, float64, with the sample
            weights and the batch's reduction applied.
        learning_rate: the SGD learning rate.
    """
    new_kernel, new_bias = student.get_weights()
    expected_kernel = kernel - learning_rate * x.T.astype(np.float64) @ gradient
    expected_bias = bias - learning_rate * gradient.sum(axis=0)
    np.testing.assert_allclose(new_kernel, expected_kernel, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(new_bias, expected_bias, rtol=1e-4, atol=1e-5)


def assert_first_epoch(history, expected):
    """Each figure of `history`'s first epoch equals its float64 `expected` value."""
    for name, value in expected.items():
        assert np.isfinite(history[name][0]), name
        np.testing.assert_allclose(
            history[name][0], value, rtol=1e-4, atol=1e-6, err_msg=name
        )
