"""DKD and DIST as a user runs them: against float64 references written from
the papers (in log space, so that they hold for logits of any size), at batch
size 1, with classes absent from the batch, in a `Distiller` under XLA, mixed
precision, saved and loaded, and with non-finite teacher logits."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdkeras
from kdkeras import losses
from tests import reference
from tests.kdkeras.distiller_setup import NUM_CLASSES
from tests.kdkeras.distiller_setup import mlp
from tests.kdkeras.distiller_setup import random_data

# ------------------------------------------------------ float64 references


def _logsumexp(logits):
    peak = logits.max(axis=-1)
    return peak + np.log(np.exp(logits - peak[..., None]).sum(axis=-1))


def _kl(log_p, log_q):
    """KL(p ‖ q) over the last axis from log-probabilities; 0 log 0 = 0."""
    p = np.exp(log_p)
    return np.where(p > 0, p * (log_p - log_q), 0.0).sum(axis=-1)


def dkd_reference(teacher_logits, student_logits, targets, alpha, beta, t):
    """Zhao et al. 2022, eq. (5): T² (alpha TCKD + beta NCKD), per example.

    TCKD is the KL between the binary distributions (target, the rest), NCKD
    the KL between the distributions over the non-target classes.
    """

    def parts(logits):
        logits = np.asarray(logits, np.float64) / t
        rows = np.arange(len(logits))
        log_all = _logsumexp(logits)
        others = np.ones(logits.shape, bool)
        others[rows, targets] = False
        rest = logits[others].reshape(len(logits), -1)
        binary = np.stack(
            [logits[rows, targets] - log_all, _logsumexp(rest) - log_all], axis=1
        )
        return binary, reference.log_softmax(rest)

    teacher_binary, teacher_rest = parts(teacher_logits)
    student_binary, student_rest = parts(student_logits)
    tckd = _kl(teacher_binary, student_binary)
    nckd = _kl(teacher_rest, student_rest)
    return t**2 * (alpha * tckd + beta * nckd)


def _pearson(a, b):
    """Pearson correlation along axis 0; 0 for a constant vector (DIST's
    code: `a·b / (|a| |b| + 1e-8)` on centred vectors)."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    norms = np.sqrt((a * a).sum(axis=0)) * np.sqrt((b * b).sum(axis=0))
    return (a * b).sum(axis=0) / (norms + 1e-8)


def dist_reference(teacher_logits, student_logits, beta, gamma, t):
    """Huang et al. 2022: T² (beta mean_i (1 - ρ(row i)) + gamma (1 - mean_c
    ρ(column c))) of softmax(z / T)."""
    p = np.exp(reference.log_softmax(np.asarray(teacher_logits, np.float64) / t))
    q = np.exp(reference.log_softmax(np.asarray(student_logits, np.float64) / t))
    inter = (1.0 - _pearson(q.T, p.T)).mean()
    intra = 1.0 - _pearson(q, p).mean()
    return t**2 * (beta * inter + gamma * intra)


def _value_and_gradient(function, student_logits, jit_compile=False):
    @tf.function(jit_compile=jit_compile)
    def run(student):
        with tf.GradientTape() as tape:
            tape.watch(student)
            value = function(student)
        return value, tape.gradient(value, student)

    value, gradient = run(tf.constant(student_logits))
    return float(value), gradient.numpy()


def _case(seed, examples, classes, scale):
    rng = np.random.default_rng(seed)
    teacher = (rng.uniform(-1, 1, size=(examples, classes)) * scale).astype("float32")
    student = (rng.uniform(-1, 1, size=(examples, classes)) * scale).astype("float32")
    return teacher, student, rng


# ------------------------------------------------------------------- DKD


@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize("examples", [1, 8])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_dkd_matches_the_paper_on_logits_of_a_thousand(
    temperature, examples, jit_compile
):
    teacher, student, rng = _case(examples, examples, 10, 1e3)
    # Classes 7, 8 and 9 are never a target of this batch.
    targets = rng.integers(0, 7, size=examples)
    expected = dkd_reference(teacher, student, targets, 1.0, 8.0, temperature)
    np.testing.assert_allclose(
        losses.dkd_loss_per_example(teacher, student, targets, 1.0, 8.0, temperature),
        expected,
        rtol=1e-4,
        atol=1e-3,
    )
    value, gradient = _value_and_gradient(
        lambda s: losses.dkd_loss(teacher, s, targets, 1.0, 8.0, temperature),
        student,
        jit_compile,
    )
    np.testing.assert_allclose(value, expected.mean(), rtol=1e-4)
    expected_gradient = reference.numerical_gradient(
        lambda s: dkd_reference(teacher, s, targets, 1.0, 8.0, temperature).mean(),
        student,
        step=1e-3,
    )
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("examples", [1, 5])
def test_dkd_with_one_hot_labels_equals_sparse_labels_in_a_distiller(examples):
    x, y = random_data(examples, seed=examples)
    values = {}
    for form, labels, student_loss in [
        ("sparse", y, keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
        (
            "one-hot",
            keras.utils.to_categorical(y, NUM_CLASSES),
            keras.losses.CategoricalCrossentropy(from_logits=True),
        ),
    ]:
        distiller = kdkeras.Distiller(student=mlp(8, seed=1), teacher=mlp(32, seed=2))
        distiller.compile(
            optimizer="sgd",
            alpha=0.1,
            student_loss_fn=student_loss,
            distillation_loss_fn=losses.DKD(alpha=1.0, beta=8.0, temperature=4.0),
            jit_compile=False,  # the labels' form is the point, not XLA
        )
        values[form] = distiller.evaluate(x, labels, verbose=0, return_dict=True)
    expected = dkd_reference(
        distiller.teacher.predict(x, verbose=0),
        distiller.student.predict(x, verbose=0),
        y,
        1.0,
        8.0,
        4.0,
    ).mean()
    for form in values:
        np.testing.assert_allclose(
            values[form]["distillation_loss"], expected, rtol=1e-4, err_msg=form
        )


# ------------------------------------------------------------------ DIST


@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("seed", [0, 5])
def test_dist_gradient_is_finite_on_logits_of_a_thousand(
    temperature, jit_compile, seed
):
    """Classes whose probability underflows to 0 in every example (constant
    columns) used to give a NaN gradient."""
    teacher, student, _ = _case(seed, 8, 10, 1e3)
    value, gradient = _value_and_gradient(
        lambda s: losses.dist_loss(teacher, s, 1.0, 1.0, temperature),
        student,
        jit_compile,
    )
    np.testing.assert_allclose(
        value, dist_reference(teacher, student, 1.0, 1.0, temperature), rtol=1e-4
    )
    assert np.all(np.isfinite(gradient))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_dist_at_batch_size_1_has_the_inter_class_gradient_alone(jit_compile):
    """One example has no intra-class correlation (0, so the term is T²) and
    that term has no gradient: the gradient is the inter-class term's."""
    teacher, student, _ = _case(3, 1, 10, 3.0)
    loss = losses.DIST(beta=1.0, gamma=1.0, temperature=4.0)
    value, gradient = _value_and_gradient(
        lambda s: loss(teacher, s), student, jit_compile
    )
    np.testing.assert_allclose(
        value, dist_reference(teacher, student, 1.0, 1.0, 4.0), rtol=1e-5
    )
    np.testing.assert_allclose(value, 16.0 + dist_reference(teacher, student, 1, 0, 4))
    expected_gradient = reference.numerical_gradient(
        lambda s: dist_reference(teacher, s, 1.0, 1.0, 4.0), student, step=1e-4
    )
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("examples, batch_size", [(1, 1), (9, 8)])
def test_dist_distiller_survives_a_batch_of_one_example(
    jit_compile, examples, batch_size
):
    """An epoch whose last batch holds one example used to make the student's
    weights NaN under XLA.

    One epoch shows it: its last batch holds one example (each further epoch
    would compile the step for its shapes again under XLA).
    """
    x, y = random_data(examples)
    distiller = kdkeras.Distiller(student=mlp(8, seed=1), teacher=mlp(32, seed=2))
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.05),
        alpha=0.1,
        distillation_loss_fn=losses.DIST(temperature=4.0),
        jit_compile=jit_compile,
    )
    history = distiller.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    for weight in distiller.student.get_weights():
        assert np.all(np.isfinite(weight))


# --------------------------------------------------- in a Distiller, saved

LOSSES = {
    "dkd": lambda: losses.DKD(alpha=0.5, beta=4.0, temperature=3.0),
    "dist": lambda: losses.DIST(beta=2.0, gamma=0.5, temperature=3.0),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_distiller_with_the_loss_saves_and_loads_in_safe_mode(name, tmp_path):
    x, y = random_data(48)
    # Without XLA: saving is the point here, and the losses under XLA are
    # checked above; three XLA compilations made this the file's slowest test.
    distiller = _seeded_distiller(name, jit_compile=False)
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    distiller.save(tmp_path / "distiller.keras")
    loaded = keras.saving.load_model(tmp_path / "distiller.keras", safe_mode=True)
    assert loaded.jit_compile == distiller.jit_compile
    assert type(loaded.distillation_loss_fn) is type(distiller.distillation_loss_fn)
    assert (
        loaded.distillation_loss_fn.get_config()
        == distiller.distillation_loss_fn.get_config()
    )
    np.testing.assert_array_equal(
        loaded.predict(x, verbose=0), distiller.predict(x, verbose=0)
    )
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == distiller.evaluate(
        x, y, verbose=0, return_dict=True
    )


def _seeded_distiller(name, jit_compile="auto"):
    model = kdkeras.Distiller(student=mlp(8, seed=1), teacher=mlp(32, seed=2))
    model.compile(
        optimizer="adam",
        alpha=0.1,
        distillation_loss_fn=LOSSES[name](),
        jit_compile=jit_compile,
    )
    return model


@pytest.fixture(scope="module")
def float32_losses():
    """`name -> evaluate()` of the float32 distiller on `random_data(32)`,
    computed once per loss for both mixed policies (plain floats: nothing a
    test could change)."""
    x, y = random_data(32)
    keras.mixed_precision.set_global_policy("float32")
    expected = {}
    for name in sorted(LOSSES):
        # The reference alone runs without XLA: its losses are the same
        # float32 numbers, without an XLA compilation per loss.
        model = _seeded_distiller(name, jit_compile=False)
        expected[name] = model.evaluate(x, y, verbose=0, return_dict=True)
    return expected


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_distiller_gives_the_float32_losses(
    name, policy, float32_losses
):
    x, y = random_data(32)
    expected = float32_losses[name]
    keras.mixed_precision.set_global_policy(policy)
    try:
        mixed = _seeded_distiller(name)
        assert mixed.student.compute_dtype == policy.removeprefix("mixed_")
        result = mixed.evaluate(x, y, verbose=0, return_dict=True)
        history = mixed.fit(x, y, batch_size=8, epochs=2, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    np.testing.assert_allclose(
        result["distillation_loss"], expected["distillation_loss"], rtol=2e-2
    )
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][1] < history.history["loss"][0]


# ------------------------------------------------ non-finite teacher logits


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_cached_teacher_logits_are_refused_in_one_line(name, bad):
    x, y = random_data(16)
    teacher_logits = np.random.default_rng(0).normal(size=(16, 5)).astype("float32")
    teacher_logits[3, 1] = bad
    distiller = kdkeras.Distiller(student=mlp(8, seed=1), teacher=mlp(32, seed=2))
    distiller.compile(optimizer="sgd", alpha=0.1, distillation_loss_fn=LOSSES[name]())
    targets = {"labels": y, "teacher_logits": teacher_logits}
    for run in (distiller.fit, distiller.evaluate):
        with pytest.raises(ValueError, match="teacher_logits") as raised:
            run(x, targets, verbose=0)
        assert "Received:" in str(raised.value) and "\n" not in str(raised.value)


class _OverflowingTeacher(keras.layers.Layer):
    """Logits with one inf (or NaN) in the examples whose first feature > 1."""

    def __init__(self, bad, **kwargs):
        super().__init__(**kwargs)
        self.bad = bad

    def call(self, x):
        logits = x[:, :NUM_CLASSES]
        return tf.where(x[:, :1] > 1.0, tf.fill(tf.shape(logits), self.bad), logits)


@pytest.mark.parametrize(
    "name, bad, jit_compile",
    [
        (None, float("nan"), True),
        ("dkd", float("inf"), True),
        ("dkd", float("nan"), False),
        ("dist", float("nan"), True),
        ("dist", float("inf"), False),
    ],
)
def test_a_non_finite_teacher_stops_training_without_touching_the_student(
    name, bad, jit_compile
):
    x, y = random_data(64)
    teacher = keras.Sequential([keras.Input((x.shape[1],)), _OverflowingTeacher(bad)])
    distiller = kdkeras.Distiller(student=mlp(8, seed=1), teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.05),
        alpha=0.1,
        distillation_loss_fn=LOSSES[name]() if name else None,
        jit_compile=jit_compile,
    )
    before = distiller.student.get_weights()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    for run in (distiller.fit, distiller.evaluate):
        with pytest.raises(tf.errors.InvalidArgumentError, match="teacher_logits"):
            run(dataset, verbose=0)
    for old, new in zip(before, distiller.student.get_weights(), strict=True):
        np.testing.assert_array_equal(new, old)


# ---------------------------------------------------------- bad arguments


@pytest.mark.parametrize("make", sorted(LOSSES))
@pytest.mark.parametrize(
    "argument, value, error",
    [
        ("temperature", 0.0, ValueError),
        ("temperature", -2.0, ValueError),
        ("temperature", float("nan"), ValueError),
        ("temperature", True, TypeError),
        ("temperature", "4", TypeError),
        ("temperature", None, TypeError),
        ("beta", -1.0, ValueError),
        ("beta", float("nan"), ValueError),
        ("beta", False, TypeError),
    ],
)
def test_bad_constructor_arguments_are_one_line_keras_errors(
    make, argument, value, error
):
    cls = type(LOSSES[make]())
    with pytest.raises(error) as raised:
        cls(**{argument: value})
    message = str(raised.value)
    assert message.startswith(f"`{argument}` must be")
    assert f"Received: {argument}=" in message and "\n" not in message


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_get_config_from_config_round_trip(name):
    loss = LOSSES[name]()
    restored = type(loss).from_config(loss.get_config())
    assert restored.get_config() == loss.get_config()
    teacher, student, rng = _case(5, 6, 5, 3.0)
    labels = rng.integers(0, 5, size=6)
    np.testing.assert_array_equal(
        restored.per_example(teacher, student, labels),
        loss.per_example(teacher, student, labels),
    )
