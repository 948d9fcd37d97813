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
    kl = (np.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs))
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
