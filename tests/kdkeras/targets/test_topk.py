"""Tests for kdkeras/targets/topk.py: top-k soft targets, against float64
NumPy references (their loss: tests/kdkeras/test_losses.py)."""

import numpy as np
import pytest

from kdkeras.targets import topk


def log_softmax64(z):
    z = np.asarray(z, np.float64)
    peak = z.max(axis=-1, keepdims=True)
    return z - peak - np.log(np.exp(z - peak).sum(axis=-1, keepdims=True))


def logits(seed, shape, scale):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(
        "float32"
    )


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
        p_dense[rows, rest],
        np.broadcast_to(rest_mass / (classes - k), rest.shape),
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
