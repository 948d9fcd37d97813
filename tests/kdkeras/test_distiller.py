import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdkeras
from tests import reference
from tests.kdkeras.distiller_setup import NUM_CLASSES
from tests.kdkeras.distiller_setup import assert_first_epoch
from tests.kdkeras.distiller_setup import assert_sgd_step
from tests.kdkeras.distiller_setup import compiled_distiller
from tests.kdkeras.distiller_setup import distiller_gradient
from tests.kdkeras.distiller_setup import linear
from tests.kdkeras.distiller_setup import mlp
from tests.kdkeras.distiller_setup import one_sgd_step
from tests.kdkeras.distiller_setup import random_data

# The history of a Distiller compiled with metrics=["accuracy"].
FIGURES = {"loss", "student_loss", "distillation_loss", "teacher_agreement", "accuracy"}


def _distiller(alpha=0.1, temperature=4.0, **compile_kwargs):
    return compiled_distiller(
        alpha, temperature, metrics=["accuracy"], **compile_kwargs
    )


# ------------------------------------------------------------- the numbers


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.7, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 4.0, 20.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_one_step_matches_float64_reference(alpha, temperature, weighted):
    """A linear student after one SGD step equals the float64 NumPy update."""
    x, y = random_data(24, seed=int(temperature))
    rng = np.random.default_rng(7)
    sample_weight = rng.uniform(0.2, 2.0, size=len(y)) if weighted else None
    student, teacher = linear(1), mlp(32, seed=2)
    teacher_logits = teacher.predict(x, verbose=0).astype(np.float64)
    kernel, bias, history = one_sgd_step(
        student, teacher, x, y, sample_weight, alpha=alpha, temperature=temperature
    )

    logits = x.astype(np.float64) @ kernel + bias
    weight = np.ones(len(y)) if sample_weight is None else sample_weight
    student_losses = reference.sparse_cross_entropy_per_example(y, logits)
    soft_losses = reference.kd_loss_per_example(teacher_logits, logits, temperature)
    per_example_grad = distiller_gradient(
        alpha,
        reference.sparse_cross_entropy_gradient(y, logits),
        len(y) * reference.kd_loss_gradient(teacher_logits, logits, temperature),
        weight,
    )
    assert_sgd_step(student, x, kernel, bias, per_example_grad)

    expected = {
        "student_loss": (student_losses * weight).mean(),
        "distillation_loss": (soft_losses * weight).mean(),
    }
    expected["loss"] = (
        alpha * expected["student_loss"] + (1 - alpha) * expected["distillation_loss"]
    )
    assert_first_epoch(history, expected)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_history_reports_loss_parts_and_student_metrics(jit_compile):
    x, y = random_data()
    distiller = _distiller(jit_compile=jit_compile)
    history = distiller.fit(
        x, y, epochs=2, batch_size=16, verbose=0, validation_data=(x, y)
    )
    assert set(history.history) == FIGURES | {f"val_{name}" for name in FIGURES}
    for prefix in ("", "val_"):
        for epoch in range(2):
            total = history.history[f"{prefix}loss"][epoch]
            parts = (
                0.1 * history.history[f"{prefix}student_loss"][epoch]
                + 0.9 * history.history[f"{prefix}distillation_loss"][epoch]
            )
            np.testing.assert_allclose(total, parts, rtol=1e-5)
    assert history.history["distillation_loss"][0] >= 0.0


def test_evaluate_reports_student_accuracy_against_labels():
    x, y = random_data()
    distiller = _distiller()
    distiller.fit(x, y, epochs=1, verbose=0)
    result = distiller.evaluate(x, y, verbose=0, return_dict=True)
    predictions = distiller.student.predict(x, verbose=0).argmax(axis=1)
    np.testing.assert_allclose(result["accuracy"], (predictions == y).mean(), rtol=1e-6)
    np.testing.assert_allclose(
        distiller.predict(x, verbose=0),
        distiller.student.predict(x, verbose=0),
        rtol=1e-5,
    )


def test_teacher_is_frozen_and_runs_in_inference_mode():
    x, y = random_data()
    teacher = mlp(32, seed=2, dropout=0.5, batch_norm=True)
    teacher.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,  # set-up only: no XLA compilation for it
    )
    teacher.fit(x, y, epochs=1, verbose=0)  # BN statistics away from init
    before = [w.copy() for w in teacher.get_weights()]
    distiller = kdkeras.Distiller(student=mlp(8, seed=1), teacher=teacher)
    distiller.compile(optimizer="adam", alpha=0.0, temperature=2.0)
    history = distiller.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for old, new in zip(before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert not any(
        v is w for v in distiller.trainable_variables for w in teacher.variables
    )
    # Dropout off, BN frozen: the reported soft-target loss equals the
    # inference-mode teacher's loss against the final student.
    evaluated = distiller.evaluate(x, y, verbose=0, return_dict=True)
    expected = reference.kd_loss_per_example(
        teacher.predict(x, verbose=0), distiller.student.predict(x, verbose=0), 2.0
    ).mean()
    np.testing.assert_allclose(evaluated["distillation_loss"], expected, rtol=1e-4)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_distillation_moves_student_towards_teacher():
    x, y = random_data(256)
    teacher = mlp(32, seed=2)
    distiller = kdkeras.Distiller(student=mlp(16, seed=1), teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(0.01), alpha=0.0, temperature=2.0)
    teacher_classes = teacher.predict(x, verbose=0).argmax(1)

    def agreement():
        return (
            distiller.student.predict(x, verbose=0).argmax(1) == teacher_classes
        ).mean()

    before = distiller.evaluate(x, y, verbose=0, return_dict=True)
    agreement_before = agreement()
    distiller.fit(x, y, epochs=15, batch_size=32, verbose=0)
    after = distiller.evaluate(x, y, verbose=0, return_dict=True)
    assert after["distillation_loss"] < 0.3 * before["distillation_loss"]
    assert agreement() > max(0.65, agreement_before + 0.3)


@pytest.fixture(scope="module")
def default_loss_evaluation():
    """The default loss' `evaluate()` on `random_data()`, once for the module.

    A reference only (plain floats), so without XLA: the same float32 numbers
    without an XLA compilation.
    """
    x, y = random_data()
    keras.mixed_precision.set_global_policy("float32")
    default = _distiller(jit_compile=False)
    return default.evaluate(x, y, verbose=0, return_dict=True)


@pytest.mark.parametrize(
    "custom_loss",
    [keras.losses.KLDivergence(), keras.losses.kl_divergence, "kl_divergence"],
)
def test_custom_distillation_loss_is_called_on_soft_targets_as_keras_io(
    custom_loss, default_loss_evaluation
):
    """keras.io semantics: loss_fn(softmax(t/T), softmax(s/T)) · T²."""
    x, y = random_data()
    custom = _distiller(distillation_loss_fn=custom_loss)
    expected = default_loss_evaluation
    result = custom.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(
        result["distillation_loss"], expected["distillation_loss"], rtol=1e-4
    )


def test_tf_data_and_sample_weights():
    x, y = random_data()
    weights = np.where(y == 0, 0.0, 1.0).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(16)
    distiller = _distiller()
    history = distiller.fit(dataset, epochs=1, verbose=0)
    evaluated = distiller.evaluate(dataset, verbose=0, return_dict=True)
    unweighted = distiller.evaluate(x, y, verbose=0, return_dict=True)
    assert np.isfinite(history.history["loss"][0])
    assert evaluated["student_loss"] != pytest.approx(unweighted["student_loss"])


def test_cached_teacher_logits_skip_the_teacher_and_equal_online():
    x, y = random_data()
    online = _distiller(jit_compile=False)
    teacher_logits = online.teacher.predict(x, verbose=0)
    cached = _distiller(jit_compile=False)

    def broken_teacher(*args, **kwargs):
        raise AssertionError("the teacher ran although logits were cached")

    cached.teacher.call = broken_teacher
    online.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices(
        (x, {"labels": y, "teacher_logits": teacher_logits})
    ).batch(16)
    cached.fit(dataset, epochs=2, verbose=0)
    for a, b in zip(
        online.student.get_weights(), cached.student.get_weights(), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------- softmax outputs


def test_softmax_teacher_is_distilled_from_its_logits():
    x, y = random_data()
    logits_teacher = mlp(32, seed=2)
    softmax_teacher = mlp(32, seed=2, activation="softmax")
    results = []
    for teacher in (logits_teacher, softmax_teacher):
        distiller = kdkeras.Distiller(student=mlp(8, seed=1), teacher=teacher)
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.1), temperature=4.0, jit_compile=False
        )
        results.append(
            distiller.fit(x, y, epochs=1, shuffle=False, verbose=0).history[
                "distillation_loss"
            ][0]
        )
    np.testing.assert_allclose(results[1], results[0], rtol=1e-4)


def test_softmax_student_is_trained_through_its_logits():
    x, y = random_data()
    distiller = kdkeras.Distiller(
        student=mlp(8, seed=1, activation="softmax"), teacher=mlp(32, seed=2)
    )
    distiller.compile(optimizer="adam", temperature=4.0)
    history = distiller.fit(x, y, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    probabilities = distiller.student.predict(x, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    reference_logits = mlp(8, seed=1)
    reference_logits.set_weights(distiller.student.get_weights())
    expected = reference.kd_loss_per_example(
        distiller.teacher.predict(x, verbose=0),
        reference_logits.predict(x, verbose=0),
        4.0,
    ).mean()
    result = distiller.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["distillation_loss"], expected, rtol=1e-4)


# ------------------------------------------------ callbacks, saving, resume


def test_keras_callbacks_work(tmp_path):
    x, y = random_data()
    distiller = _distiller(jit_compile=False)  # the callbacks are the point
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            str(tmp_path / "best.keras"), monitor="val_loss", save_best_only=True
        ),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, min_delta=10.0),
        keras.callbacks.TensorBoard(log_dir=str(tmp_path / "logs")),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
        keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
    ]
    history = distiller.fit(
        x,
        y,
        epochs=10,
        batch_size=16,
        verbose=0,
        validation_data=(x, y),
        callbacks=callbacks,
    )
    assert len(history.history["loss"]) == 2  # EarlyStopping stopped it
    assert (tmp_path / "best.keras").exists()
    assert any((tmp_path / "logs").rglob("*tfevents*"))
    header = (tmp_path / "log.csv").read_text().splitlines()[0]
    assert "distillation_loss" in header and "val_accuracy" in header
    restored = keras.saving.load_model(str(tmp_path / "best.keras"))
    assert isinstance(restored, kdkeras.Distiller)


def test_student_saves_alone(tmp_path):
    x, y = random_data()
    distiller = _distiller(jit_compile=False)  # saving is the point, not XLA
    distiller.fit(x, y, epochs=1, verbose=0)
    distiller.student.save(tmp_path / "student.keras")
    student = keras.saving.load_model(tmp_path / "student.keras")
    np.testing.assert_allclose(
        student.predict(x, verbose=0),
        distiller.student.predict(x, verbose=0),
        rtol=1e-6,
    )


def test_distiller_saves_loads_and_resumes_exactly(tmp_path):
    x, y = random_data()
    uninterrupted, first = (
        _distiller(0.3, 5.0, optimizer=keras.optimizers.Adam(0.01), jit_compile=False)
        for _ in range(2)
    )
    uninterrupted.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    first.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    first.save(tmp_path / "distiller.keras")

    resumed = keras.saving.load_model(tmp_path / "distiller.keras")
    assert isinstance(resumed, kdkeras.Distiller)
    assert (resumed.alpha, resumed.temperature) == (0.3, 5.0)
    assert int(resumed.optimizer.iterations) == 4
    history = resumed.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert set(history.history) == FIGURES
    for a, b in zip(
        uninterrupted.student.get_weights(), resumed.student.get_weights(), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------- distributed


@pytest.mark.e2e
def test_two_replicas_equal_one_replica_in_weights_and_every_metric():
    script = os.path.join(os.path.dirname(__file__), "distributed_equality.py")
    completed = subprocess.run(
        [sys.executable, script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout)
    one, two = results["one"], results["two"]
    assert set(one["history"]) == set(two["history"])
    assert "val_distillation_loss" in one["history"]
    for name in one["history"]:
        np.testing.assert_allclose(
            two["history"][name],
            one["history"][name],
            rtol=1e-5,
            atol=1e-7,
            err_msg=name,
        )
    for a, b in zip(one["weights"], two["weights"], strict=True):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: kdkeras.Distiller(student=None, teacher=mlp()), ValueError, "student"),
        (lambda: kdkeras.Distiller(student=mlp(), teacher=None), ValueError, "teacher"),
        (
            lambda: kdkeras.Distiller(student="model", teacher=mlp()),
            TypeError,
            "student",
        ),
        (
            lambda: kdkeras.Distiller(student=mlp(classes=3), teacher=mlp()),
            ValueError,
            "classes",
        ),
        (
            lambda: kdkeras.Distiller(student=mlp(features=7), teacher=mlp()),
            ValueError,
            "input shape",
        ),
    ],
)
def test_bad_models_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"temperature": -2}, ValueError, "temperature"),
        ({"temperature": "hot"}, TypeError, "temperature"),
        ({"alpha": 1.5}, ValueError, "alpha"),
        ({"alpha": -0.1}, ValueError, "alpha"),
        ({"alpha": "half"}, TypeError, "alpha"),
        ({"student_loss_fn": 42}, TypeError, "student_loss_fn"),
        ({"student_loss_fn": "not_a_loss"}, TypeError, "student_loss_fn"),
        ({"distillation_loss_fn": 3.0}, TypeError, "distillation_loss_fn"),
        ({"loss": "mse"}, ValueError, "student_loss_fn"),
    ],
)
def test_bad_compile_arguments_name_the_argument(kwargs, error, match):
    distiller = kdkeras.Distiller(student=mlp(8), teacher=mlp(32))
    with pytest.raises(error, match=match):
        distiller.compile(optimizer="adam", **kwargs)


# ---------------------------------------------------------- mixed precision


def test_mixed_float16_student_trains_with_loss_scaling_and_float32_losses():
    """The GPU recipe (mixed_float16) on CPU: same losses as float32."""
    x, y = random_data()
    float32 = _distiller(jit_compile=False)
    expected = float32.evaluate(x, y, verbose=0, return_dict=True)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        distiller = _distiller(jit_compile=False)  # built under mixed_float16
        assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)
        assert distiller.student.compute_dtype == "float16"
        result = distiller.evaluate(x, y, verbose=0, return_dict=True)
        history = distiller.fit(x, y, epochs=2, batch_size=16, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for name in ("student_loss", "distillation_loss", "loss"):
        np.testing.assert_allclose(result[name], expected[name], rtol=2e-2)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][1] < history.history["loss"][0]


# ---------------------------------------------------------------------- XLA


def _paper_like_teacher():
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.RandomTranslation(0.1, 0.1),  # supports_jit=False
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(NUM_CLASSES),
        ]
    )


def _image_student(*extra_layers):
    keras.utils.set_random_seed(4)
    return keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            *extra_layers,
            keras.layers.Flatten(),
            keras.layers.Dense(NUM_CLASSES),
        ]
    )


def test_teacher_augmentation_does_not_turn_xla_off():
    """Inactive in inference, the teacher's jitter must not veto XLA."""
    distiller = kdkeras.Distiller(
        student=_image_student(), teacher=_paper_like_teacher()
    )
    distiller.compile(optimizer="adam")
    assert distiller.jit_compile is True
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(32, 6, 6, 1)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=32)
    history = distiller.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_student_layer_without_xla_support_turns_xla_off_with_a_warning():
    distiller = kdkeras.Distiller(
        student=_image_student(keras.layers.RandomRotation(0.1)),
        teacher=_paper_like_teacher(),
    )
    with pytest.warns(UserWarning, match="jit_compile=False"):
        distiller.compile(optimizer="adam", jit_compile=True)
    assert distiller.jit_compile is False


def test_cached_targets_with_an_augmenting_student_are_refused():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(16, 6, 6, 1)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=16)
    distiller = kdkeras.Distiller(
        student=_image_student(keras.layers.RandomFlip()), teacher=_paper_like_teacher()
    )
    distiller.compile(optimizer="adam")
    logits = distiller.teacher.predict(x, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices(
        (x, {"labels": y, "teacher_logits": logits})
    ).batch(8)
    with pytest.raises(ValueError, match="augment"):
        distiller.fit(dataset, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "student_layers, teacher_layers, expected",
    [
        ([], [], True),  # dense networks: XLA is faster on CPU
        ([keras.layers.Dropout(0.5)], [], False),  # XLA's random draws are slow on CPU
        ([], [keras.layers.Dropout(0.5)], True),  # a teacher's dropout never runs
        ([keras.layers.Conv2D(2, 3, padding="same")], [], False),  # slower convolutions
        # The teacher is not asked: from cached soft targets it never runs.
        ([], [keras.layers.MaxPooling2D()], True),
    ],
)
def test_auto_jit_on_cpu_uses_xla_only_where_it_is_faster(
    student_layers, teacher_layers, expected
):
    from kdkeras._step import xla

    assert xla.cpu_only()  # these machines have no GPU; the rule is CPU-only
    teacher = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            *teacher_layers,
            keras.layers.Flatten(),
            keras.layers.Dense(NUM_CLASSES),
        ]
    )
    distiller = kdkeras.Distiller(
        student=_image_student(*student_layers), teacher=teacher
    )
    distiller.compile(optimizer="adam")
    assert distiller.jit_compile is expected
    # An explicit request is honoured: the rule only shapes "auto".
    distiller.compile(optimizer="adam", jit_compile=True)
    assert distiller.jit_compile is True
