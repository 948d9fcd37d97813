"""Float64 NumPy references shared by the tests."""

import numpy as np


def log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def kd_loss_per_example(teacher_logits, student_logits, temperature):
    """T² · KL(softmax(t/T) ‖ softmax(s/T)) per example, float64."""
    teacher_log_probs = log_softmax(np.asarray(teacher_logits) / temperature)
    student_log_probs = log_softmax(np.asarray(student_logits) / temperature)
    kl = np.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs)
    return temperature**2 * kl.sum(axis=-1)


def kd_loss_gradient(teacher_logits, student_logits, temperature):
    """d mean(kd_loss) / d student_logits = T (q − p) / batch, float64."""
    p = np.exp(log_softmax(np.asarray(teacher_logits) / temperature))
    q = np.exp(log_softmax(np.asarray(student_logits) / temperature))
    return temperature * (q - p) / len(p)


def sparse_cross_entropy_per_example(labels, logits):
    return -log_softmax(logits)[np.arange(len(labels)), labels]


def sparse_cross_entropy_gradient(labels, logits):
    """d CE_i / d logits_i (per example, not divided by the batch)."""
    probs = np.exp(log_softmax(logits))
    probs[np.arange(len(labels)), labels] -= 1.0
    return probs


def dense_relu_logits(model, x):
    """float64 logits of a Dense(relu) → Dense network (its two kernel/bias pairs)."""
    dense = [layer for layer in model.layers if len(layer.weights) == 2]
    k1, b1 = (w.numpy().astype(np.float64) for w in dense[0].weights)
    k2, b2 = (w.numpy().astype(np.float64) for w in dense[1].weights)
    return np.maximum(x.astype(np.float64) @ k1 + b1, 0.0) @ k2 + b2


def softmax(logits):
    return np.exp(log_softmax(logits))


def dkd_loss_per_example(
    teacher_logits, student_logits, targets, alpha, beta, temperature
):
    """Decoupled KD (Zhao et al. 2022) per example, float64, written as in
    mdistiller's `dkd_loss` but with the target class removed exactly."""
    teacher = np.asarray(teacher_logits, np.float64) / temperature
    student = np.asarray(student_logits, np.float64) / temperature
    rows = np.arange(len(targets))
    p, q = softmax(teacher), softmax(student)
    binary_p = np.stack([p[rows, targets], 1.0 - p[rows, targets]], axis=1)
    binary_q = np.stack([q[rows, targets], 1.0 - q[rows, targets]], axis=1)
    tckd = (binary_p * (np.log(binary_p) - np.log(binary_q))).sum(axis=1)
    nckd = np.zeros(len(targets))
    for i, target in enumerate(targets):
        others = np.delete(np.arange(teacher.shape[1]), target)
        p_others = softmax(teacher[i, others])
        log_q_others = log_softmax(student[i, others])
        nckd[i] = (p_others * (np.log(p_others) - log_q_others)).sum()
    return temperature**2 * (alpha * tckd + beta * nckd)


def _pearson(a, b, weight=None, epsilon=1e-8):
    """Pearson correlation along axis 0 (weighted), as DIST's code computes it."""
    weight = np.ones(len(a)) if weight is None else np.asarray(weight, np.float64)
    weight = weight.reshape((-1,) + (1,) * (a.ndim - 1))
    a = a - (weight * a).sum(axis=0) / weight.sum()
    b = b - (weight * b).sum(axis=0) / weight.sum()
    norms = np.sqrt((weight * a * a).sum(axis=0)) * np.sqrt(
        (weight * b * b).sum(axis=0)
    )
    return (weight * a * b).sum(axis=0) / (norms + epsilon)


def dist_inter_per_example(teacher_logits, student_logits, temperature):
    """DIST inter-class term per example, float64: T² (1 − ρ over classes)."""
    p = softmax(np.asarray(teacher_logits, np.float64) / temperature)
    q = softmax(np.asarray(student_logits, np.float64) / temperature)
    return temperature**2 * (1.0 - _pearson(q.T, p.T))


def dist_intra(teacher_logits, student_logits, temperature, sample_weight=None):
    """DIST intra-class term over the batch, float64: T² (1 − mean_c ρ)."""
    p = softmax(np.asarray(teacher_logits, np.float64) / temperature)
    q = softmax(np.asarray(student_logits, np.float64) / temperature)
    return temperature**2 * (1.0 - _pearson(q, p, sample_weight).mean())


def numerical_gradient(function, values, step=1e-6):
    """Central-difference gradient of a scalar float64 function."""
    values = np.asarray(values, np.float64)
    gradient = np.zeros_like(values)
    for index in np.ndindex(values.shape):
        up, down = values.copy(), values.copy()
        up[index] += step
        down[index] -= step
        gradient[index] = (function(up) - function(down)) / (2 * step)
    return gradient


def top_k_classes(teacher_logits, k):
    """The K largest teacher logits' classes (ties: lower class first)."""
    order = np.argsort(-np.asarray(teacher_logits), axis=1, kind="stable")
    return order[:, :k], order[:, k:]


def top_k_buckets(teacher_logits, logits, k, temperature):
    """float64 log-probabilities of `logits` at T on the teacher's top K
    classes, then of all the other classes together: `(examples, K + 1)`."""
    top, rest = top_k_classes(teacher_logits, k)
    rows = np.arange(len(top))[:, None]
    log_p = log_softmax(np.asarray(logits, np.float64) / temperature)
    other = log_p[rows, rest]
    peak = other.max(axis=1, keepdims=True)
    tail = peak + np.log(np.exp(other - peak).sum(axis=1, keepdims=True))
    return np.concatenate([log_p[rows, top], tail], axis=1)


def top_k_kd_loss_per_example(teacher_logits, student_logits, k, temperature):
    """T² · KL on the teacher's top K classes and "the rest", float64."""
    log_p = top_k_buckets(teacher_logits, teacher_logits, k, temperature)
    log_q = top_k_buckets(teacher_logits, student_logits, k, temperature)
    return temperature**2 * (np.exp(log_p) * (log_p - log_q)).sum(axis=1)


def top_k_kd_loss_gradient(teacher_logits, student_logits, k, temperature):
    """d (sum over examples of the top-k loss) / d student logits, float64:
    T (q_i - p_i) on the top K classes, T (q_j - p_rest q_j / q_rest) on the
    others."""
    top, rest = top_k_classes(teacher_logits, k)
    rows = np.arange(len(top))[:, None]
    p = np.exp(top_k_buckets(teacher_logits, teacher_logits, k, temperature))
    q = softmax(np.asarray(student_logits, np.float64) / temperature)
    gradient = np.empty_like(q)
    gradient[rows, top] = temperature * (q[rows, top] - p[:, :k])
    q_rest = q[rows, rest].sum(axis=1, keepdims=True)
    gradient[rows, rest] = temperature * (
        q[rows, rest] - p[:, k:] * q[rows, rest] / q_rest
    )
    return gradient
