"""The Distiller without labels, with partial labels, and with hostile inputs.

Unlabelled and partly labelled transfer sets, out-of-range labels
under every XLA setting, empty data, and the compile arguments' ranges.
"""

import io
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdkeras
from kdkeras.targets import TEACHER_LOGITS_KEY
from kdkeras.targets import UNLABELLED
from tests import reference
from tests.kdkeras.distiller_setup import NUM_CLASSES
from tests.kdkeras.distiller_setup import assert_first_epoch
from tests.kdkeras.distiller_setup import assert_sgd_step
from tests.kdkeras.distiller_setup import compiled_distiller
from tests.kdkeras.distiller_setup import linear
from tests.kdkeras.distiller_setup import mlp
from tests.kdkeras.distiller_setup import one_sgd_step
from tests.kdkeras.distiller_setup import random_data


def _distiller(alpha=0.0, temperature=4.0, **compile_kwargs):
    return compiled_distiller(alpha, temperature, **compile_kwargs)


# ------------------------------------------------- one step against float64


def _expected_step(
    x, weights, teacher_logits, labels, mask, weight, alpha, temperature
):
    """The float64 gradient (d loss / d logits) and losses of a linear student.

    `weights` are its kernel and bias; `mask` is 1 where an example is labelled.
    """
    kernel, bias = weights
    logits = x.astype(np.float64) @ kernel + bias
    examples, labelled = len(x), mask.sum()
    safe_labels = np.where(mask > 0, labels, 0)
    hard = reference.sparse_cross_entropy_per_example(safe_labels, logits) * mask
    soft = reference.kd_loss_per_example(teacher_logits, logits, temperature)
    hard_grad = reference.sparse_cross_entropy_gradient(safe_labels, logits)
    hard_grad *= (mask * weight)[:, None] / (labelled if labelled else 1.0)
    soft_grad = (
        examples
        * reference.kd_loss_gradient(teacher_logits, logits, temperature)
        * weight[:, None]
        / examples
    )
    student_loss = (weight * hard).sum() / labelled if labelled else 0.0
    distillation_loss = (weight * soft).mean()
    losses = {
        "student_loss": student_loss,
        "distillation_loss": distillation_loss,
        "loss": alpha * student_loss + (1 - alpha) * distillation_loss,
    }
    return alpha * hard_grad + (1 - alpha) * soft_grad, losses


@pytest.mark.parametrize("labelled_fraction", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("one_hot", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_partly_labelled_step_matches_float64_reference(
    labelled_fraction, one_hot, weighted
):
    """Hard loss over the labelled examples / their count; soft over all."""
    x, y = random_data(24, seed=3)
    rng = np.random.default_rng(11)
    mask = (rng.uniform(size=len(y)) < labelled_fraction).astype(np.float64)
    if 0.0 < labelled_fraction < 1.0:
        mask[:2] = [1.0, 0.0]  # at least one of each
    sparse = np.where(mask > 0, y, UNLABELLED).astype("int32")
    labels = (
        np.eye(NUM_CLASSES, dtype="float32")[y] * mask[:, None].astype("float32")
        if one_hot
        else sparse
    )
    weight = rng.uniform(0.2, 2.0, size=len(y)) if weighted else np.ones(len(y))
    student, teacher = linear(1), mlp(32, seed=2)
    teacher_logits = teacher.predict(x, verbose=0).astype(np.float64)
    alpha, temperature = 0.4, 3.0
    loss_fn = (
        keras.losses.CategoricalCrossentropy(from_logits=True) if one_hot else None
    )
    kernel, bias, history = one_sgd_step(
        student,
        teacher,
        x,
        labels,
        weight if weighted else None,
        student_loss_fn=loss_fn,
        alpha=alpha,
        temperature=temperature,
    )

    gradient, losses = _expected_step(
        x, (kernel, bias), teacher_logits, y, mask, weight, alpha, temperature
    )
    assert_sgd_step(student, x, kernel, bias, gradient)
    assert_first_epoch(history, losses)


def _unlabelled_inputs(x, teacher_logits):
    return {
        "fit(x)": ((x,), {}),
        "fit(x, None)": ((x, None), {}),
        "dataset of x": ((tf.data.Dataset.from_tensor_slices(x).batch(len(x)),), {}),
        "dataset of (x,)": (
            (tf.data.Dataset.from_tensor_slices((x,)).batch(len(x)),),
            {},
        ),
        "dataset of teacher logits": (
            (
                tf.data.Dataset.from_tensor_slices(
                    (x, {TEACHER_LOGITS_KEY: teacher_logits})
                ).batch(len(x)),
            ),
            {},
        ),
    }


@pytest.mark.parametrize("form", list(_unlabelled_inputs(np.zeros((1, 1)), None)))
def test_without_labels_trains_on_soft_targets_alone(form):
    x, _ = random_data(24, seed=5)
    student, teacher = linear(1), mlp(32, seed=2)
    kernel, bias = [w.astype(np.float64) for w in student.get_weights()]
    teacher_logits = teacher.predict(x, verbose=0)
    distiller = kdkeras.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.5),
        alpha=0.0,
        temperature=2.0,
        metrics=["accuracy"],
        jit_compile=False,
    )
    args, kwargs = _unlabelled_inputs(x, teacher_logits)[form]
    if not isinstance(args[0], tf.data.Dataset):
        kwargs["batch_size"] = len(x)
    history = distiller.fit(*args, epochs=1, verbose=0, **kwargs)
    gradient, losses = _expected_step(
        x,
        (kernel, bias),
        teacher_logits.astype(np.float64),
        np.zeros(len(x), int),
        np.zeros(len(x)),
        np.ones(len(x)),
        0.0,
        2.0,
    )
    assert_sgd_step(student, x, kernel, bias, gradient)
    np.testing.assert_allclose(
        history.history["distillation_loss"][0], losses["distillation_loss"], rtol=1e-4
    )
    np.testing.assert_allclose(
        history.history["loss"][0], losses["distillation_loss"], rtol=1e-4
    )
    assert "accuracy" not in history.history  # no labels: nothing to compare


@pytest.mark.parametrize("form", list(_unlabelled_inputs(np.zeros((1, 1)), None)))
def test_alpha_above_zero_without_labels_fails_before_any_step(form):
    x, _ = random_data(24)
    distiller = _distiller(alpha=0.1)
    before = [w.copy() for w in distiller.student.get_weights()]
    args, kwargs = _unlabelled_inputs(x, distiller.teacher.predict(x, verbose=0))[form]
    with pytest.raises(ValueError) as error:
        distiller.fit(*args, epochs=1, verbose=0, **kwargs)
    message = str(error.value)
    assert message.startswith("`alpha` must be 0 when training without labels")
    assert message.endswith("Received: alpha=0.1") and "\n" not in message
    assert int(distiller.optimizer.iterations) == 0
    for old, new in zip(before, distiller.student.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_alpha_check_also_guards_a_generator():
    x, _ = random_data(24)

    def batches():
        for start in range(0, len(x), 8):
            yield (x[start : start + 8],)

    distiller = _distiller(alpha=0.5)
    with pytest.raises(ValueError, match="Received: alpha=0.5"):
        distiller.fit(batches(), epochs=1, verbose=0)
    assert int(distiller.optimizer.iterations) == 0


def test_evaluate_on_unlabelled_data_reports_distillation_loss_and_agreement():
    x, y = random_data(40)
    distiller = _distiller(alpha=0.3, metrics=["accuracy"])
    teacher_logits = distiller.teacher.predict(x, verbose=0)
    student_logits = distiller.student.predict(x, verbose=0)
    expected = reference.kd_loss_per_example(teacher_logits, student_logits, 4.0).mean()
    agreement = (teacher_logits.argmax(1) == student_logits.argmax(1)).mean()
    result = distiller.evaluate(x, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["distillation_loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(result["loss"], 0.7 * expected, rtol=1e-5)
    np.testing.assert_allclose(result["teacher_agreement"], agreement, rtol=1e-6)
    assert result["student_loss"] == 0.0  # no labelled example
    assert distiller.evaluate(x, verbose=0) == pytest.approx(0.7 * expected, rel=1e-5)
    # Labelled data afterwards: the compiled metrics appear (traced anew).
    loss, accuracy = distiller.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(
        accuracy, (student_logits.argmax(1) == y).mean(), rtol=1e-6
    )


def test_teacher_agreement_is_sample_weighted_top1_agreement():
    x, y = random_data(40)
    weight = np.random.default_rng(2).uniform(0, 2, size=len(y)).astype("float32")
    distiller = _distiller(alpha=0.3)
    agree = distiller.teacher.predict(x, verbose=0).argmax(
        1
    ) == distiller.student.predict(x, verbose=0).argmax(1)
    result = distiller.evaluate(
        x, y, sample_weight=weight, batch_size=16, verbose=0, return_dict=True
    )
    np.testing.assert_allclose(
        result["teacher_agreement"], (weight * agree).sum() / weight.sum(), rtol=1e-6
    )


def test_unlabelled_distiller_saves_loads_and_resumes(tmp_path):
    x, _ = random_data(48)
    uninterrupted = _distiller(jit_compile=False)
    first = _distiller(jit_compile=False)
    uninterrupted.fit(x, epochs=2, batch_size=16, shuffle=False, verbose=0)
    first.fit(x, epochs=1, batch_size=16, shuffle=False, verbose=0)
    first.save(tmp_path / "distiller.keras")
    resumed = keras.saving.load_model(tmp_path / "distiller.keras", safe_mode=True)
    history = resumed.fit(x, epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert np.isfinite(history.history["distillation_loss"][0])
    for a, b in zip(
        uninterrupted.student.get_weights(), resumed.student.get_weights(), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_unlabelled_data_through_the_resumable_loop(tmp_path):
    """BackupAndRestore(save_freq=N) runs the multi-worker loop: same result."""
    x, _ = random_data(48)
    plain, looped = _distiller(jit_compile=False), _distiller(jit_compile=False)
    expected = plain.fit(x, epochs=2, batch_size=8, shuffle=False, verbose=0)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=2)
    history = looped.fit(
        x, epochs=2, batch_size=8, shuffle=False, verbose=0, callbacks=[backup]
    )
    assert set(history.history) == set(expected.history)
    for name, values in expected.history.items():
        np.testing.assert_allclose(
            history.history[name], values, rtol=1e-5, atol=1e-7, err_msg=name
        )
    for a, b in zip(
        plain.student.get_weights(), looped.student.get_weights(), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------- hostile inputs


@pytest.mark.parametrize("jit_compile", ["auto", True, False])
@pytest.mark.parametrize("bad_label", [NUM_CLASSES, -2])
@pytest.mark.parametrize("as_dataset", [False, True])
def test_out_of_range_label_raises_whatever_xla(jit_compile, bad_label, as_dataset):
    x, y = random_data(32)
    y[5] = bad_label
    distiller = _distiller(alpha=0.5, jit_compile=jit_compile)
    if jit_compile == "auto":
        assert distiller.jit_compile is True  # XLA: where NaN came from
    before = [w.copy() for w in distiller.student.get_weights()]
    data = (
        (tf.data.Dataset.from_tensor_slices((x, y)).batch(8),) if as_dataset else (x, y)
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="valid range"):
        distiller.fit(*data, epochs=1, verbose=0)
    for old, new in zip(before, distiller.student.get_weights(), strict=True):
        assert np.all(np.isfinite(new))
        if not as_dataset:  # arrays are checked before any step
            np.testing.assert_array_equal(old, new)
    with pytest.raises(tf.errors.InvalidArgumentError, match="valid range"):
        distiller.evaluate(*data, verbose=0)


def test_out_of_range_label_error_is_one_line_for_arrays():
    x, y = random_data(24)
    y[0] = NUM_CLASSES
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        _distiller(alpha=0.5).fit(x, y, verbose=0)
    assert str(error.value) == (
        f"Received a label value of {NUM_CLASSES} which is outside the valid "
        f"range of [0, {NUM_CLASSES}) (or -1, an unlabelled example)."
    )


def _empty_inputs():
    x, y = random_data(24)
    return {
        "arrays": ((x[:0], y[:0]), {}),
        "dataset": ((tf.data.Dataset.from_tensor_slices((x[:0], y[:0])).batch(4),), {}),
        "filtered dataset": (
            (
                tf.data.Dataset.from_tensor_slices((x, y))
                .filter(lambda *_: False)
                .batch(4),
            ),
            {},
        ),
        "arrays, resumable loop": (
            (x[:0], y[:0]),
            {
                "callbacks": [
                    keras.callbacks.BackupAndRestore("unused-backup-dir", save_freq=2)
                ]
            },
        ),
    }


@pytest.mark.parametrize("form", list(_empty_inputs()))
def test_empty_data_is_refused(form, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, kwargs = _empty_inputs()[form]
    distiller = _distiller(alpha=0.5)
    with pytest.raises(ValueError, match="at least one") as error:
        distiller.fit(*args, epochs=1, verbose=0, **kwargs)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "unused-backup-dir").exists()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"temperature": float("inf")}, ValueError, "temperature"),
        ({"temperature": float("nan")}, ValueError, "temperature"),
        ({"temperature": 1e-30}, ValueError, "temperature"),
        ({"temperature": 1e30}, ValueError, "temperature"),
        ({"temperature": 0.049}, ValueError, "temperature"),
        ({"temperature": 100.5}, ValueError, "temperature"),
        ({"alpha": float("nan")}, ValueError, "alpha"),
        ({"alpha": float("inf")}, ValueError, "alpha"),
        ({"alpha": None}, TypeError, "alpha"),
        (
            {
                "distillation_loss_fn": kdkeras.losses.DKD(temperature=4.0),
                "temperature": 2.0,
            },
            ValueError,
            "temperature",
        ),
    ],
)
def test_bad_numeric_compile_arguments_are_refused_in_one_line(kwargs, error, match):
    distiller = kdkeras.Distiller(student=mlp(8, 1), teacher=mlp(32, 2))
    with pytest.raises(error, match=match) as raised:
        distiller.compile(optimizer="adam", **kwargs)
    assert "\n" not in str(raised.value)
    assert "Received:" in str(raised.value)


@pytest.mark.parametrize("temperature", [0.05, 100.0])
@pytest.mark.parametrize("loss_fn", [None, "dkd", "dist"])
def test_temperature_range_ends_give_finite_losses_on_extreme_logits(
    temperature, loss_fn
):
    x, y = random_data(32)
    x = x * 1e4  # logits in the tens of thousands
    loss_fn = {
        None: None,
        "dkd": kdkeras.losses.DKD(temperature=temperature),
        "dist": kdkeras.losses.DIST(temperature=temperature),
    }[loss_fn]
    distiller = _distiller(
        alpha=0.1,
        temperature=None if loss_fn else temperature,
        distillation_loss_fn=loss_fn,
    )
    result = distiller.evaluate(x, y, verbose=0, return_dict=True)
    assert abs(distiller.student.predict(x, verbose=0)).max() > 1e3
    assert all(np.isfinite(value) for value in result.values()), result


# ------------------------------------------------------------ progress bar


def _fit_output(monkeypatch, terminal):
    stream = io.StringIO()
    monkeypatch.setattr(stream, "isatty", lambda: terminal, raising=False)
    monkeypatch.setattr(sys, "stdout", stream)
    x, y = random_data(64)
    # Without XLA: the printed lines are the point, not the compiled step.
    distiller = _distiller(alpha=0.1, jit_compile=False)
    distiller.fit(x, y, epochs=3, batch_size=8)
    distiller.evaluate(x, y, batch_size=8)
    return stream.getvalue()


def test_progress_is_one_line_per_epoch_off_a_terminal(monkeypatch):
    output = _fit_output(monkeypatch, terminal=False)
    lines = [line for line in output.splitlines() if line.strip()]
    assert "\b" not in output and "\r" not in output
    assert sum("Epoch" in line for line in lines) == 3
    assert sum("distillation_loss" in line for line in lines) == 4  # 3 + evaluate
    assert len(lines) == 7


def test_predict_off_a_terminal_writes_one_line(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(stream, "isatty", lambda: False, raising=False)
    monkeypatch.setattr(sys, "stdout", stream)
    x, _ = random_data(64)
    distiller = _distiller(alpha=0.1)
    monkeypatch.setattr(keras.utils.Progbar, "__init__", _slow_interval_progbar)
    distiller.predict(x, batch_size=1)
    output = stream.getvalue()
    assert "\b" not in output and "\r" not in output
    assert len([line for line in output.splitlines() if line.strip()]) == 1


_progbar_init = keras.utils.Progbar.__init__


def _slow_interval_progbar(self, *args, **kwargs):
    """A Progbar that would redraw after every batch (interval 0)."""
    kwargs["interval"] = 0.0
    _progbar_init(self, *args, **kwargs)


def test_progress_bar_is_live_in_a_terminal(monkeypatch):
    output = _fit_output(monkeypatch, terminal=True)
    assert "\r" in output or "\b" in output


def test_unlabelled_fit_after_a_labelled_fit_reports_no_compiled_metric():
    """Compiled metrics built by a labelled fit are not reported as 0.0 later."""
    rng = np.random.default_rng(0)
    x = rng.random((64, 4)).astype("float32")
    y = rng.integers(0, 3, 64)

    def mlp(name):
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name=name)

    distiller = kdkeras.Distiller(student=mlp("s"), teacher=mlp("t"))
    distiller.compile(optimizer="adam", alpha=0.0, metrics=["accuracy"])
    assert "accuracy" in distiller.fit(x, y, batch_size=32, verbose=0).history
    unlabelled = distiller.fit(x, batch_size=32, verbose=0).history
    assert "accuracy" not in unlabelled
    assert "teacher_agreement" in unlabelled
    logs = distiller.evaluate(x, verbose=0, return_dict=True)
    assert "accuracy" not in logs
    assert "accuracy" in distiller.evaluate(x, y, verbose=0, return_dict=True)


def _hostile_targets(kind, x, y):
    """`(y, sample_weight, match)`: labels or weights a step must refuse."""
    if kind == "one-hot NaN":
        one_hot = np.eye(NUM_CLASSES, dtype="float32")[y]
        one_hot[3, 1] = np.nan
        return one_hot, None, "`labels` must be finite"
    if kind == "NaN sample weight":
        weight = np.ones(len(y), "float32")
        weight[4] = np.nan
        return y, weight, "sample_weight.* must be finite"
    if kind == "inf sample weight":
        weight = np.ones(len(y), "float32")
        weight[2] = np.inf
        return y, weight, "sample_weight.* must be finite"
    labels = y.astype("float32")
    labels[6] = {"label -0.5": -0.5, "label 1.5": 1.5, "label NaN": np.nan}[kind]
    return labels, None, "valid range"


@pytest.mark.parametrize("jit_compile", [True, False])
@pytest.mark.parametrize(
    "kind",
    [
        "one-hot NaN",
        "NaN sample weight",
        "inf sample weight",
        "label -0.5",
        "label 1.5",
        "label NaN",
    ],
)
@pytest.mark.parametrize("as_dataset", [False, True])
def test_non_finite_or_fractional_targets_are_refused_whatever_xla(
    jit_compile, kind, as_dataset
):
    x, y = random_data(32)
    labels, weight, match = _hostile_targets(kind, x, y)
    loss_fn = None
    if labels.ndim == 2:
        loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
    distiller = _distiller(alpha=0.5, jit_compile=jit_compile, student_loss_fn=loss_fn)
    before = [w.copy() for w in distiller.student.get_weights()]
    data = (x, labels) if weight is None else (x, labels, weight)
    if as_dataset:
        data = (tf.data.Dataset.from_tensor_slices(data).batch(8),)
        fit = lambda: distiller.fit(*data, epochs=1, verbose=0)  # noqa: E731
    else:
        fit = lambda: distiller.fit(  # noqa: E731
            x, labels, sample_weight=weight, epochs=1, batch_size=8, verbose=0
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match=match) as error:
        fit()
    if not as_dataset:  # arrays are checked before any step, in one line
        assert "\n" not in str(error.value)
        for old, new in zip(before, distiller.student.get_weights(), strict=True):
            np.testing.assert_array_equal(old, new)
    for new in distiller.student.get_weights():
        assert np.all(np.isfinite(new))


@pytest.mark.parametrize("jit_compile", [True, False])
@pytest.mark.parametrize("role", ["teacher", "student"])
def test_a_non_finite_weight_is_refused_whatever_xla_and_cpu(jit_compile, role):
    x, y = random_data(16)
    distiller = _distiller(alpha=0.5, jit_compile=jit_compile)
    model = getattr(distiller, role)
    kernel = model.get_layer("hidden").kernel
    # One NaN a ReLU may hide: the outcome must not depend on the CPU's kernels.
    values = kernel.numpy()
    values[0, 0] = np.nan
    kernel.assign(values)
    student_before = [w.copy() for w in distiller.student.get_weights()]
    with pytest.raises(ValueError, match=f"`{role}` must have finite weights") as error:
        distiller.fit(x, y, epochs=1, verbose=0)
    assert "hidden/kernel holds nan" in str(error.value)
    for old, new in zip(student_before, distiller.student.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    with pytest.raises(ValueError, match=f"`{role}` must have finite weights"):
        distiller.compile(optimizer="sgd", alpha=0.5)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_accuracy_over_no_labelled_example_is_absent_not_zero(jit_compile):
    x, y = random_data(32)
    unlabelled = np.full_like(y, UNLABELLED)
    distiller = _distiller(alpha=0.5, jit_compile=jit_compile, metrics=["accuracy"])
    history = distiller.fit(x, unlabelled, epochs=1, batch_size=8, verbose=0)
    assert np.isnan(history.history["accuracy"][0])
    logs = distiller.evaluate(x, unlabelled, verbose=0, return_dict=True)
    assert np.isnan(logs["accuracy"])
    # With labelled examples, the accuracy over them, as Keras computes it.
    logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    logits = distiller.student.predict(x, verbose=0)
    assert logs["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == y))
    history = distiller.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["accuracy"][0])


class HiddenSoftmax(keras.Model):
    """A subclassed teacher ending in a softmax no graph walk can see."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(NUM_CLASSES)

    def call(self, inputs):
        return keras.ops.softmax(self.dense(inputs))


@pytest.mark.parametrize("jit_compile", [True, False])
@pytest.mark.parametrize("source", ["subclassed teacher", "cached probabilities"])
def test_teacher_probabilities_the_graph_hides_are_refused(jit_compile, source):
    x, y = random_data(16)
    teacher = HiddenSoftmax()
    teacher(x[:1])
    distiller = kdkeras.Distiller(student=mlp(8, seed=1), teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.05), alpha=0.5, jit_compile=jit_compile
    )
    before = [w.copy() for w in distiller.student.get_weights()]
    targets = y
    if source == "cached probabilities":
        targets = {"labels": y, TEACHER_LOGITS_KEY: np.asarray(teacher(x))}
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="`teacher` must output logits"
    ):
        distiller.fit(x, targets, epochs=1, batch_size=8, verbose=0)
    for old, new in zip(before, distiller.student.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
