"""`experiments.paired.PairedStudents`: one step, the same updates as two fits."""

import keras
import numpy as np
import pytest

import kdkeras
from experiments import paired
from kdkeras import targets as soft_targets

EXAMPLES = 48
BATCH = 8


def _cnn():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(5)(x))


def _mlp():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(6, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(5)(x))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(EXAMPLES, 8, 8, 1)).astype("float32")
    labels = np.eye(5, dtype="float32")[rng.integers(0, 5, EXAMPLES)]
    logits = rng.normal(scale=2.0, size=(EXAMPLES, 5)).astype("float32")
    return x, labels, logits


def _adam():
    schedule = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=20)
    return keras.optimizers.Adam(schedule)


def _models(initial_weights, jit_compile, build=_cnn):
    student, alone = build(), build()
    student.set_weights(initial_weights)
    alone.set_weights(initial_weights)
    distiller = kdkeras.Distiller(student=student, teacher=build())
    distiller.compile(
        optimizer=_adam(),
        student_loss_fn=keras.losses.CategoricalCrossentropy(from_logits=True),
        alpha=0.5,
        distillation_loss_fn=kdkeras.DIST(temperature=1.0),
        jit_compile=jit_compile,
        steps_per_execution=3,
    )
    alone.compile(
        optimizer=_adam(),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
        steps_per_execution=3,
    )
    return distiller, alone


def _batches(data):
    return soft_targets.soft_target_dataset(*data, batch_size=BATCH, seed=7)


@pytest.mark.parametrize("build, jit_compile", [(_cnn, False), (_mlp, True)])
def test_paired_step_ends_where_two_separate_fits_end(data, build, jit_compile):
    keras.utils.set_random_seed(0)
    initial = build().get_weights()
    distiller, alone = _models(initial, jit_compile, build)
    distiller.fit(_batches(data), epochs=1, verbose=0)
    alone.fit(
        _batches(data).map(lambda x, targets: (x, targets["labels"])),
        epochs=1,
        verbose=0,
    )

    paired_distiller, paired_alone = _models(initial, jit_compile, build)
    model = paired.PairedStudents(paired_distiller, paired_alone)
    model.compile(steps_per_execution=3)
    history = model.fit(_batches(data), epochs=1, verbose=0)

    for separate, together in (
        (distiller.student, paired_distiller.student),
        (alone, paired_alone),
    ):
        for expected, got in zip(
            separate.get_weights(), together.get_weights(), strict=True
        ):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # The two students did move, and apart: distillation changed the updates.
    assert not np.allclose(paired_alone.get_weights()[0], initial[0])
    assert not np.allclose(
        paired_alone.get_weights()[0], paired_distiller.student.get_weights()[0]
    )
    assert paired_distiller.optimizer.iterations.numpy() == EXAMPLES // BATCH
    assert paired_alone.optimizer.iterations.numpy() == EXAMPLES // BATCH
    # Each model's own losses are logged: the baseline's under `alone_`.
    logs = history.history
    assert {"loss", "distillation_loss", "alone_loss"} <= set(logs)
    assert logs["alone_loss"][-1] != pytest.approx(logs["loss"][-1])


def test_refuses_an_uncompiled_model_and_batches_without_labels(data):
    distiller, alone = _models(_cnn().get_weights(), False)
    with pytest.raises(ValueError, match="`alone` must be a compiled keras.Model"):
        paired.PairedStudents(distiller, _cnn())
    model = paired.PairedStudents(distiller, alone)
    model.compile()
    x, _, logits = data
    with pytest.raises(ValueError, match="trains the baseline on labels"):
        model.fit(x, {"teacher_logits": logits}, batch_size=BATCH, verbose=0)
