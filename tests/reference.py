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


def dense_relu_logits(model, x):
    """float64 logits of a Dense(relu) → Dense network (its two kernel/bias pairs)."""
    dense = [layer for layer in model.layers if len(layer.weights) == 2]
    k1, b1 = (w.numpy().astype(np.float64) for w in dense[0].weights)
    k2, b2 = (w.numpy().astype(np.float64) for w in dense[1].weights)
    return np.maximum(x.astype(np.float64) @ k1 + b1, 0.0) @ k2 + b2
