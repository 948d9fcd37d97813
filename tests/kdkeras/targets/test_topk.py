"""Tests for kdkeras/targets/topk.py: top-k soft targets and their KD loss,
against float64 NumPy references."""

import numpy as np
import pytest
import tensorflow as tf

from kdkeras.losses import kd_loss_per_example
from kdkeras.targets import topk


def log_softmax64(z):
    z = np.asarray(z, np.float64)
    peak = z.max(axis=-1, keepdims=True)
    return z - peak - np.log(np.exp(z - peak).sum(axis=-1, keepdims=True))


def reference_buckets(teacher, student, k, temperature):
    """float64: teacher and student log-probabilities on K classes + the rest."""
    order = np.argsort(-teacher, axis=1, kind="stable")
    top, rest = order[:, :k], order[:, k:]
    rows = np.arange(len(teacher))[:, None]

    def buckets(logits):
        log_p = log_softmax64(np.asarray(logits, np.float64) / temperature)
        other = log_p[rows, rest]
        peak = other.max(axis=1, keepdims=True)
        tail = peak + np.log(np.exp(other - peak).sum(axis=1, keepdims=True))
        return np.concatenate([log_p[rows, top], tail], axis=1)

    return buckets(teacher), buckets(student)


def reference_loss(teacher, student, k, temperature):
    log_p, log_q = reference_buckets(teacher, student, k, temperature)
    return temperature**2 * (np.exp(log_p) * (log_p - log_q)).sum(axis=1)


def reference_full_loss(teacher, student, temperature):
    log_p = log_softmax64(np.asarray(teacher, np.float64) / temperature)
    log_q = log_softmax64(np.asarray(student, np.float64) / temperature)
    return temperature**2 * (np.exp(log_p) * (log_p - log_q)).sum(axis=1)


def logits(seed, shape, scale):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(
        "float32"
    )


@pytest.mark.parametrize("classes, k", [(10, 1), (10, 4), (100, 20), (1000, 5)])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_loss_matches_float64_reference(classes, k, temperature, scale):
    teacher = logits(1, (16, classes), scale)
    student = logits(2, (16, classes), scale)
    values, indices, tail = topk.top_k_targets(teacher, k, temperature)
    loss = topk.top_k_kd_loss(values, indices, tail, student, temperature)
    expected = reference_loss(teacher, student, k, temperature)
    assert np.all(np.isfinite(loss))
    np.testing.assert_allclose(loss, expected, rtol=2e-4, atol=1e-5 * temperature**2)
    assert expected.min() > 0  # a test that can fail: nonzero losses


@pytest.mark.parametrize("temperature", [1.0, 5.0])
def test_gradient_matches_float64_reference(temperature):
    """d loss / d s: T (q_i - p_i) on the top classes, and on the others
    T (q_j - p_rest * q_j / q_rest): the rest's mass, not its shape."""
    classes, k = 12, 4
    teacher = logits(3, (5, classes), 2.0)
    student = logits(4, (5, classes), 2.0)
    values, indices, tail = topk.top_k_targets(teacher, k, temperature)
    variable = tf.Variable(student)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(
            topk.top_k_kd_loss(values, indices, tail, variable, temperature)
        )
    gradient = tape.gradient(loss, variable).numpy()

    log_p, _ = reference_buckets(teacher, student, k, temperature)
    p = np.exp(log_p)
    q = np.exp(log_softmax64(student.astype(np.float64) / temperature))
    expected = np.empty_like(q)
    for row in range(len(q)):
        top = indices[row]
        rest = np.setdiff1d(np.arange(classes), top)
        expected[row, top] = temperature * (q[row, top] - p[row, :k])
        q_rest = q[row, rest].sum()
        expected[row, rest] = temperature * (
            q[row, rest] - p[row, k] * q[row, rest] / q_rest
        )
    np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-6)


def test_all_but_one_class_is_the_full_loss():
    teacher = logits(5, (8, 30), 3.0)
    student = logits(6, (8, 30), 3.0)
    values, indices, tail = topk.top_k_targets(teacher, 29, 2.0)
    np.testing.assert_allclose(
        topk.top_k_kd_loss(values, indices, tail, student, 2.0),
        reference_full_loss(teacher, student, 2.0),
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        kd_loss_per_example(teacher, student, 2.0),
        reference_full_loss(teacher, student, 2.0),
        rtol=1e-4,
    )


def test_loss_grows_with_k_towards_the_full_loss():
    """Coarser buckets see less: KL on top-k buckets <= top-(k+m) <= full."""
    teacher = logits(7, (32, 1000), 3.0)
    student = logits(8, (32, 1000), 3.0)
    full = reference_full_loss(teacher, student, 4.0)
    previous = np.zeros(32)
    for k in (5, 20, 100, 999):
        loss = reference_loss(teacher, student, k, 4.0)
        assert np.all(loss >= previous - 1e-9) and np.all(loss <= full + 1e-9)
        previous = loss
    np.testing.assert_allclose(previous, full, rtol=1e-9)


def test_dense_logits_keep_the_top_k_and_spread_the_rest_evenly():
    classes, k, temperature = 50, 7, 3.0
    teacher = logits(9, (6, classes), 4.0)
    dense = topk.dense_logits_from_top_k(
        *topk.top_k_targets(teacher, k, temperature), classes, temperature
    )
    p = np.exp(log_softmax64(teacher.astype(np.float64) / temperature))
    p_dense = np.exp(log_softmax64(dense.astype(np.float64) / temperature))
    rows = np.arange(6)[:, None]
    top = np.argsort(-teacher, axis=1, kind="stable")[:, :k]
    rest = np.argsort(-teacher, axis=1, kind="stable")[:, k:]
    np.testing.assert_allclose(p_dense[rows, top], p[rows, top], rtol=1e-5)
    rest_mass = p[rows, rest].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(
        p_dense[rows, rest], np.broadcast_to(rest_mass / (classes - k), rest.shape),
        rtol=1e-4,
    )


def test_ties_are_broken_towards_the_lower_class():
    values, indices, _ = topk.top_k_targets(np.array([[1.0, 2.0, 2.0, 1.0]]), 3, 1.0)
    assert indices.tolist() == [[1, 2, 0]] and values.tolist() == [[2.0, 2.0, 1.0]]


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda: topk.top_k_targets(np.zeros((2, 5)), 5, 1.0), "`top_k`"),
        (lambda: topk.top_k_targets(np.zeros((2, 5)), 0, 1.0), "`top_k`"),
        (lambda: topk.top_k_targets(np.zeros((2, 5)), 2.5, 1.0), "`top_k`"),
        (lambda: topk.top_k_targets(np.zeros(5), 2, 1.0), "`logits`"),
        (lambda: topk.top_k_targets(np.zeros((2, 5)), 2, 0.0), "`temperature`"),
        (lambda: topk.top_k_targets(np.zeros((2, 5)), 2, np.nan), "`temperature`"),
        (lambda: topk.top_k_targets(np.zeros((2, 5)), 2, 1e30), "`temperature`"),
    ],
)
def test_bad_arguments(call, word):
    with pytest.raises(ValueError, match=word) as raised:
        call()
    assert "\n" not in str(raised.value)
