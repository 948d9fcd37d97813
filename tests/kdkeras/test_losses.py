import numpy as np
import pytest
import tensorflow as tf

from kdkeras import losses
from kdkeras.targets import topk
from tests import reference

TEMPERATURES = [1.0, 2.0, 4.0, 8.0, 20.0]
SCALES = [0.1, 3.0, 30.0]


def _logits(seed, scale, shape=(16, 10)):
    rng = np.random.default_rng(seed)
    return (
        (rng.normal(size=shape) * scale).astype("float32"),
        (rng.normal(size=shape) * scale).astype("float32"),
    )


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("scale", SCALES)
def test_kd_loss_value_matches_float64_reference(temperature, scale):
    teacher_logits, student_logits = _logits(int(temperature * 7 + scale), scale)
    expected = reference.kd_loss_per_example(
        teacher_logits, student_logits, temperature
    ).mean()
    value = float(losses.kd_loss(teacher_logits, student_logits, temperature))
    # The KL of nearly equal float32 distributions is a difference of
    # log-probabilities: its absolute error is ~1e-7 before the T² factor.
    np.testing.assert_allclose(value, expected, rtol=2e-5, atol=1e-7 * temperature**2)


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("scale", SCALES)
def test_kd_loss_gradient_is_temperature_times_q_minus_p(temperature, scale):
    teacher_logits, student_logits = _logits(int(temperature * 11 + scale), scale)
    student = tf.Variable(student_logits)
    with tf.GradientTape() as tape:
        value = losses.kd_loss(teacher_logits, student, temperature)
    gradient = tape.gradient(value, student).numpy()
    expected = reference.kd_loss_gradient(teacher_logits, student_logits, temperature)
    np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-7)


def test_kd_loss_gives_no_gradient_to_teacher():
    teacher_logits, student_logits = _logits(0, 3.0)
    teacher = tf.Variable(teacher_logits)
    with tf.GradientTape() as tape:
        value = losses.kd_loss(teacher, student_logits, 4.0)
    assert tape.gradient(value, teacher) is None


def test_kd_loss_stays_finite_for_huge_logits():
    teacher_logits = np.array([[1e4, -1e4, 0.0]], "float32")
    student_logits = np.array([[-1e4, 1e4, 0.0]], "float32")
    value = float(losses.kd_loss(teacher_logits, student_logits, 1.0))
    expected = reference.kd_loss_per_example(teacher_logits, student_logits, 1.0).mean()
    assert np.isfinite(value)
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_kd_loss_is_zero_for_identical_logits_and_positive_otherwise():
    teacher_logits, student_logits = _logits(3, 3.0)
    assert float(losses.kd_loss(teacher_logits, teacher_logits, 4.0)) == 0.0
    assert float(losses.kd_loss(teacher_logits, student_logits, 4.0)) > 0.0


def test_knowledge_distillation_loss_object_matches_function():
    teacher_logits, student_logits = _logits(5, 3.0)
    loss = losses.KnowledgeDistillation(temperature=4.0)
    np.testing.assert_allclose(
        float(loss(teacher_logits, student_logits)),
        float(losses.kd_loss(teacher_logits, student_logits, 4.0)),
        rtol=1e-6,
    )
    restored = losses.KnowledgeDistillation.from_config(loss.get_config())
    assert restored.temperature == 4.0


def test_keras_distillation_default_skips_softmax_and_t_squared():
    """The built-in's default is not the paper's loss; kdkeras' is."""
    import keras

    teacher_logits, student_logits = _logits(8, 3.0, shape=(8, 10))
    expected = reference.kd_loss_per_example(teacher_logits, student_logits, 4.0).mean()
    builtin = keras.distillation.LogitsDistillation(temperature=4.0)
    builtin_value = float(builtin.compute_loss(teacher_logits, student_logits))
    ours = float(losses.kd_loss(teacher_logits, student_logits, 4.0))
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    assert abs(builtin_value - expected) > 0.5 * expected


@pytest.mark.parametrize(
    "temperature, error",
    [
        (0.0, ValueError),
        (-1.0, ValueError),
        ("4", TypeError),
        (None, TypeError),
        (True, TypeError),
        (float("inf"), ValueError),
        (float("nan"), ValueError),
        (1e-30, ValueError),
        (1e30, ValueError),
        (losses.MIN_TEMPERATURE / 2, ValueError),
        (losses.MAX_TEMPERATURE * 1.01, ValueError),
    ],
)
def test_bad_temperature_names_the_argument(temperature, error):
    logits = np.ones((2, 3), "float32")
    with pytest.raises(error, match="temperature"):
        losses.kd_loss(logits, logits, temperature)


def test_hint_loss_matches_mean_squared_error():
    rng = np.random.default_rng(0)
    teacher_features = rng.normal(size=(4, 3, 3, 2)).astype("float32")
    student_features = rng.normal(size=(4, 3, 3, 2)).astype("float32")
    expected = (student_features.astype(np.float64) - teacher_features) ** 2
    expected = expected.reshape(4, -1).mean(axis=1)
    np.testing.assert_allclose(
        losses.hint_loss_per_example(teacher_features, student_features),
        expected,
        rtol=1e-5,
    )


# ------------------------------------------------- accepted temperature range

RANGE_ENDS = [losses.MIN_TEMPERATURE, losses.MAX_TEMPERATURE]
EXTREME_SCALES = [1e4, 1e6]


def _all_losses(temperature):
    """Every logits loss at `temperature`, as (name, value function)."""
    labels = np.arange(16) % 10
    return {
        "kd": lambda t, s: losses.kd_loss(t, s, temperature),
        "dkd": lambda t, s: losses.dkd_loss(t, s, labels, 1.0, 8.0, temperature),
        "dist": lambda t, s: losses.dist_loss(t, s, 1.0, 1.0, temperature),
    }


@pytest.mark.parametrize("temperature", RANGE_ENDS)
@pytest.mark.parametrize("scale", EXTREME_SCALES)
@pytest.mark.parametrize("name", ["kd", "dkd", "dist"])
def test_losses_and_gradients_finite_over_the_accepted_range(temperature, scale, name):
    teacher_logits, student_logits = _logits(int(scale) % 97, scale)
    student = tf.Variable(student_logits)
    with tf.GradientTape() as tape:
        value = _all_losses(temperature)[name](teacher_logits, student)
    gradient = tape.gradient(value, student).numpy()
    assert np.isfinite(float(value)) and float(value) >= -1e-3
    assert np.all(np.isfinite(gradient))


@pytest.mark.parametrize("temperature", RANGE_ENDS)
def test_kd_loss_matches_reference_at_the_range_ends(temperature):
    teacher_logits, student_logits = _logits(4, 1e4)
    expected = reference.kd_loss_per_example(
        teacher_logits, student_logits, temperature
    ).mean()
    value = float(losses.kd_loss(teacher_logits, student_logits, temperature))
    np.testing.assert_allclose(value, expected, rtol=1e-4)


# ------------------------------------------------------------------- DKD

DKD_SETTINGS = [(1.0, 8.0, 4.0), (0.5, 2.0, 1.0), (2.0, 0.5, 10.0)]


def _dkd_case(seed, scale, shape=(16, 10)):
    teacher_logits, student_logits = _logits(seed, scale, shape)
    labels = np.random.default_rng(seed + 1).integers(0, shape[1], size=shape[0])
    return teacher_logits, student_logits, labels


@pytest.mark.parametrize("alpha, beta, temperature", DKD_SETTINGS)
@pytest.mark.parametrize("scale", [0.3, 3.0, 20.0])
def test_dkd_value_and_gradient_match_float64_reference(
    alpha, beta, temperature, scale
):
    teacher_logits, student_logits, labels = _dkd_case(int(scale * 10), scale)
    expected = reference.dkd_loss_per_example(
        teacher_logits, student_logits, labels, alpha, beta, temperature
    )
    values = losses.dkd_loss_per_example(
        teacher_logits, student_logits, labels, alpha, beta, temperature
    )
    np.testing.assert_allclose(
        values, expected, rtol=2e-4, atol=2e-6 * temperature**2 * (alpha + beta)
    )
    student = tf.Variable(student_logits)
    with tf.GradientTape() as tape:
        value = losses.dkd_loss(
            teacher_logits, student, labels, alpha, beta, temperature
        )
    gradient = tape.gradient(value, student).numpy()
    expected_gradient = reference.numerical_gradient(
        lambda s: reference.dkd_loss_per_example(
            teacher_logits, s, labels, alpha, beta, temperature
        ).mean(),
        student_logits,
    )
    np.testing.assert_allclose(
        gradient, expected_gradient, rtol=2e-3, atol=2e-5 * temperature * (alpha + beta)
    )


def test_dkd_unlabelled_examples_use_the_teacher_top1_class():
    teacher_logits, student_logits, labels = _dkd_case(2, 3.0)
    labels[::3] = -1
    targets = np.where(labels >= 0, labels, teacher_logits.argmax(1))
    expected = reference.dkd_loss_per_example(
        teacher_logits, student_logits, targets, 1.0, 8.0, 4.0
    )
    np.testing.assert_allclose(
        losses.dkd_loss_per_example(teacher_logits, student_logits, labels),
        expected,
        rtol=2e-4,
        atol=1e-5,
    )
    as_keras_loss = losses.DKD()(teacher_logits, student_logits)
    np.testing.assert_allclose(
        float(as_keras_loss),
        reference.dkd_loss_per_example(
            teacher_logits, student_logits, teacher_logits.argmax(1), 1.0, 8.0, 4.0
        ).mean(),
        rtol=2e-4,
    )


def test_dkd_with_alpha_1_beta_1_is_kd():
    """TCKD + NCKD = KL whenever the binary KL uses the target class's mass."""
    teacher_logits, student_logits, labels = _dkd_case(9, 2.0)
    # KL = TCKD + (1 − p_t) NCKD (Zhao et al. eq. 3): check that identity.
    t = 4.0
    p = reference.softmax(teacher_logits.astype(np.float64) / t)
    p_target = p[np.arange(len(labels)), labels]
    tckd = reference.dkd_loss_per_example(
        teacher_logits, student_logits, labels, 1.0, 0.0, t
    )
    nckd = reference.dkd_loss_per_example(
        teacher_logits, student_logits, labels, 0.0, 1.0, t
    )
    np.testing.assert_allclose(
        tckd + (1 - p_target) * nckd,
        reference.kd_loss_per_example(teacher_logits, student_logits, t),
        rtol=1e-9,
    )
    ours = losses.dkd_loss_per_example(
        teacher_logits, student_logits, labels, 1.0, 0.0, t
    ) + (1 - p_target) * losses.dkd_loss_per_example(
        teacher_logits, student_logits, labels, 0.0, 1.0, t
    )
    np.testing.assert_allclose(
        ours,
        losses.kd_loss_per_example(teacher_logits, student_logits, t),
        rtol=1e-4,
        atol=1e-5,
    )


# ------------------------------------------------------------------ DIST

DIST_SETTINGS = [(1.0, 1.0, 1.0), (2.0, 0.5, 4.0), (0.0, 1.0, 2.0)]


@pytest.mark.parametrize("beta, gamma, temperature", DIST_SETTINGS)
@pytest.mark.parametrize("scale", [0.3, 3.0, 20.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_dist_value_and_gradient_match_float64_reference(
    beta, gamma, temperature, scale, weighted
):
    teacher_logits, student_logits = _logits(int(scale * 7), scale, (12, 6))
    weight = (
        np.random.default_rng(3).uniform(0.2, 2.0, size=12).astype("float32")
        if weighted
        else None
    )
    loss = losses.DIST(beta=beta, gamma=gamma, temperature=temperature)

    def expected_value(s):
        inter = reference.dist_inter_per_example(teacher_logits, s, temperature)
        w = np.ones(12) if weight is None else weight.astype(np.float64)
        return beta * (w * inter).mean() + gamma * reference.dist_intra(
            teacher_logits, s, temperature, weight
        )

    student = tf.Variable(student_logits)
    with tf.GradientTape() as tape:
        value = loss(teacher_logits, student, sample_weight=weight)
    gradient = tape.gradient(value, student).numpy()
    np.testing.assert_allclose(
        float(value),
        expected_value(student_logits),
        rtol=1e-4,
        atol=1e-5 * temperature**2,
    )
    expected_gradient = reference.numerical_gradient(expected_value, student_logits)
    np.testing.assert_allclose(
        gradient, expected_gradient, rtol=5e-3, atol=2e-5 * temperature**2
    )
    if weight is None:
        np.testing.assert_allclose(
            float(
                losses.dist_loss(
                    teacher_logits, student_logits, beta, gamma, temperature
                )
            ),
            expected_value(student_logits),
            rtol=1e-4,
            atol=1e-5 * temperature**2,
        )


def test_dist_is_zero_for_identical_logits_and_positive_otherwise():
    teacher_logits, student_logits = _logits(6, 3.0)
    assert abs(float(losses.dist_loss(teacher_logits, teacher_logits))) < 1e-5
    assert float(losses.dist_loss(teacher_logits, student_logits)) > 0.1


# -------------------------------------------------- configs and arguments


@pytest.mark.parametrize(
    "loss",
    [
        losses.KnowledgeDistillation(temperature=2.5),
        losses.DKD(alpha=0.5, beta=2.0, temperature=3.0),
        losses.DIST(beta=2.0, gamma=0.5, temperature=4.0),
    ],
)
def test_logits_losses_round_trip_through_keras_serialisation(loss):
    import keras

    assert isinstance(loss, losses.LogitsDistillationLoss)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(loss)
    )
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    teacher_logits, student_logits = _logits(1, 3.0)
    np.testing.assert_allclose(
        float(restored(teacher_logits, student_logits)),
        float(loss(teacher_logits, student_logits)),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: losses.DKD(alpha=-1.0), ValueError, "alpha"),
        (lambda: losses.DKD(beta=float("nan")), ValueError, "beta"),
        (lambda: losses.DKD(beta="8"), TypeError, "beta"),
        (lambda: losses.DKD(temperature=float("inf")), ValueError, "temperature"),
        (lambda: losses.DIST(beta=float("inf")), ValueError, "beta"),
        (lambda: losses.DIST(gamma=-0.1), ValueError, "gamma"),
        (lambda: losses.DIST(temperature=0.0), ValueError, "temperature"),
        (
            lambda: losses.KnowledgeDistillation(temperature=1e9),
            ValueError,
            "temperature",
        ),
    ],
)
def test_bad_loss_arguments_name_the_argument(make, error, match):
    with pytest.raises(error, match=match) as raised:
        make()
    assert "Received:" in str(raised.value) and "\n" not in str(raised.value)


# ------------------------------------------------------------------ top-k


def _top_k_case(seed, classes, k, temperature, scale, examples=16):
    rng = np.random.default_rng(seed)
    teacher = (rng.normal(size=(examples, classes)) * scale).astype("float32")
    student = (rng.normal(size=(examples, classes)) * scale).astype("float32")
    return teacher, student, topk.top_k_targets(teacher, k, temperature)


@pytest.mark.parametrize("classes, k", [(10, 1), (10, 4), (100, 20), (1000, 5)])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_top_k_kd_loss_value_matches_float64_reference(classes, k, temperature, scale):
    teacher, student, targets = _top_k_case(classes + k, classes, k, temperature, scale)
    value = losses.top_k_kd_loss_per_example(*targets, student, temperature)
    expected = reference.top_k_kd_loss_per_example(teacher, student, k, temperature)
    assert expected.min() > 0  # nonzero losses: the check can fail
    np.testing.assert_allclose(value, expected, rtol=2e-4, atol=1e-5 * temperature**2)
    np.testing.assert_allclose(
        float(losses.top_k_kd_loss(*targets, student, temperature)),
        expected.mean(),
        rtol=2e-4,
        atol=1e-5 * temperature**2,
    )


@pytest.mark.parametrize("classes, k", [(12, 4), (200, 20)])
@pytest.mark.parametrize("temperature", [1.0, 5.0])
@pytest.mark.parametrize("scale", [0.3, 3.0])
def test_top_k_kd_loss_gradient_matches_float64_reference(
    classes, k, temperature, scale
):
    """T (q_i - p_i) on the top classes, T (q_j - p_rest q_j / q_rest) on
    the others: the rest's mass is matched, not its shape."""
    teacher, student, targets = _top_k_case(
        classes * 3 + k, classes, k, temperature, scale, examples=5
    )
    variable = tf.Variable(student)
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(
            losses.top_k_kd_loss_per_example(*targets, variable, temperature)
        )
    gradient = tape.gradient(value, variable).numpy()
    expected = reference.top_k_kd_loss_gradient(teacher, student, k, temperature)
    np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-6)
    # The analytic reference is the derivative of the float64 loss.
    numerical = reference.numerical_gradient(
        lambda s: reference.top_k_kd_loss_per_example(
            teacher[:1], s, k, temperature
        ).sum(),
        student[:1],
    )
    np.testing.assert_allclose(expected[:1], numerical, rtol=1e-5, atol=1e-7)


def test_top_k_kd_loss_with_all_but_one_class_is_kd_loss():
    teacher, student, targets = _top_k_case(5, 30, 29, 2.0, 3.0, examples=8)
    np.testing.assert_allclose(
        losses.top_k_kd_loss_per_example(*targets, student, 2.0),
        reference.kd_loss_per_example(teacher, student, 2.0),
        rtol=1e-4,
    )


def test_top_k_kd_loss_grows_with_k_towards_kd_loss():
    """Coarser buckets see less: top-5 <= top-20 <= top-100 <= full."""
    teacher, student, _ = _top_k_case(7, 1000, 5, 4.0, 3.0, examples=32)
    full = reference.kd_loss_per_example(teacher, student, 4.0)
    previous = np.zeros(32)
    for k in (5, 20, 100, 999):
        targets = topk.top_k_targets(teacher, k, 4.0)
        value = np.asarray(
            losses.top_k_kd_loss_per_example(*targets, student, 4.0), np.float64
        )
        assert np.all(value >= previous - 1e-4 * full)
        assert np.all(value <= full * (1 + 1e-4))
        previous = value
    np.testing.assert_allclose(previous, full, rtol=1e-4)


def test_top_k_kd_loss_stays_finite_for_huge_logits():
    teacher = np.array([[1e4, -1e4, 0.0, 5.0]], "float32")
    student = tf.Variable(np.array([[-1e4, 1e4, 0.0, -3.0]], "float32"))
    targets = topk.top_k_targets(teacher, 2, 1.0)
    with tf.GradientTape() as tape:
        value = losses.top_k_kd_loss(*targets, student, 1.0)
    gradient = tape.gradient(value, student).numpy()
    expected = reference.top_k_kd_loss_per_example(teacher, student.numpy(), 2, 1.0)
    assert np.isfinite(float(value)) and np.all(np.isfinite(gradient))
    np.testing.assert_allclose(float(value), expected[0], rtol=1e-5)


def test_top_k_kd_loss_gives_no_gradient_to_the_targets():
    _, student, (values, indices, tail) = _top_k_case(9, 10, 3, 2.0, 1.0)
    values, tail = tf.Variable(values), tf.Variable(tail)
    with tf.GradientTape() as tape:
        value = losses.top_k_kd_loss(values, indices, tail, student, 2.0)
    assert tape.gradient(value, [values, tail]) == [None, None]


@pytest.mark.parametrize(
    "temperature, error",
    [
        (0.0, ValueError),
        (np.nan, ValueError),
        (1e30, ValueError),
        ("4", TypeError),
    ],
)
def test_top_k_kd_loss_bad_temperature_names_the_argument(temperature, error):
    _, student, targets = _top_k_case(10, 10, 3, 2.0, 1.0)
    with pytest.raises(error, match="`temperature`") as raised:
        losses.top_k_kd_loss(*targets, student, temperature)
    assert "\n" not in str(raised.value)
