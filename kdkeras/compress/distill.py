"""Distillation training on the `tf_keras` side, for TFMOT-wrapped students.

TFMOT wrappers are `tf_keras` layers, so `kdkeras.Distiller` (a Keras 3
model) cannot hold them. `TfKerasDistiller` is the `tf_keras` counterpart:
the same loss, `alpha * student_loss + (1 - alpha) * T² · KL`, computed with
`kdkeras.losses.kd_loss_per_example`.

The teacher is run once, in inference mode, to produce soft targets
(`teacher_logits`) before fine-tuning. Compression fine-tuning feeds the
student the same un-augmented inputs every epoch, so these logits are exactly
what an online teacher call would give, at one forward pass instead of one
per epoch. (A Keras 3 teacher can be called inside the `tf_keras`
`train_step`'s `tf.function`, but `tf_keras` then tracks the teacher's
variables as the distiller's own weights.)
"""

import numbers

import numpy as np
import tensorflow as tf
import tf_keras

from kdkeras.losses import _check_temperature
from kdkeras.losses import kd_loss_per_example


class TfKerasDistiller(tf_keras.Model):
    """Fits a `tf_keras` student on labels and teacher logits.

    Batches are `(x, {"labels": y, "teacher_logits": t})`, optionally with a
    sample weight. `fit` reports `loss`, `student_loss`,
    `distillation_loss` and `accuracy`; validation batches `(x, y)` report
    `student_loss` and `accuracy`.

    Args:
        student: A `tf_keras` model returning logits (possibly wrapped by
            TFMOT for pruning, clustering or quantization-aware training).
        temperature: Positive float, the softmax temperature `T`.
        alpha: Weight in [0, 1] of the hard-label loss.
    """

    def __init__(self, student, temperature=3.0, alpha=0.1, **kwargs):
        super().__init__(**kwargs)
        self.student = student
        self.temperature = temperature
        self.alpha = alpha
        self.loss_tracker = tf_keras.metrics.Mean(name="loss")
        self.student_loss_tracker = tf_keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = tf_keras.metrics.Mean(
            name="distillation_loss"
        )
        self.accuracy = tf_keras.metrics.SparseCategoricalAccuracy(
            name="accuracy"
        )

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.student_loss_tracker,
            self.distillation_loss_tracker,
            self.accuracy,
        ]

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def _weighted_mean(self, values, sample_weight):
        if sample_weight is None:
            return tf.reduce_mean(values)
        sample_weight = tf.cast(tf.reshape(sample_weight, [-1]), values.dtype)
        return tf.math.divide_no_nan(
            tf.reduce_sum(values * sample_weight), tf.reduce_sum(sample_weight)
        )

    def train_step(self, data):
        x, targets, sample_weight = tf_keras.utils.unpack_x_y_sample_weight(
            data
        )
        labels, teacher_logits = targets["labels"], targets["teacher_logits"]
        with tf.GradientTape() as tape:
            logits = self.student(x, training=True)
            student_loss = self._weighted_mean(
                tf_keras.losses.sparse_categorical_crossentropy(
                    labels, logits, from_logits=True
                ),
                sample_weight,
            )
            distillation_loss = self._weighted_mean(
                kd_loss_per_example(teacher_logits, logits, self.temperature),
                sample_weight,
            )
            loss = (
                self.alpha * student_loss
                + (1.0 - self.alpha) * distillation_loss
            )
            if self.student.losses:
                loss += tf.add_n(self.student.losses)
        variables = self.student.trainable_variables
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        self.loss_tracker.update_state(loss)
        self.student_loss_tracker.update_state(student_loss)
        self.distillation_loss_tracker.update_state(distillation_loss)
        self.accuracy.update_state(labels, logits, sample_weight)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, labels, sample_weight = tf_keras.utils.unpack_x_y_sample_weight(
            data
        )
        if isinstance(labels, dict):
            labels = labels["labels"]
        logits = self.student(x, training=False)
        self.student_loss_tracker.update_state(
            tf_keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True
            ),
            sample_weight,
        )
        self.accuracy.update_state(labels, logits, sample_weight)
        return {
            m.name: m.result()
            for m in (self.student_loss_tracker, self.accuracy)
        }


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int. Received: {name}={value!r}")
    if value < 1:
        raise ValueError(f"`{name}` must be >= 1. Received: {name}={value}")
    return int(value)


def _check_fraction(name, value, upper_inclusive=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a number in [0, 1]. Received: {name}={value!r}"
        )
    upper_ok = value <= 1 if upper_inclusive else value < 1
    if not (value >= 0 and upper_ok):
        bound = "1]" if upper_inclusive else "1)"
        raise ValueError(
            f"`{name}` must be in [0, {bound}. Received: {name}={value}"
        )
    return float(value)


def soft_targets(teacher, x, teacher_logits=None, batch_size=256):
    """Teacher logits for `x`: given ones checked, or the teacher's output.

    Args:
        teacher: A Keras 3 or `tf_keras` model returning logits, or `None`
            when `teacher_logits` are given.
        x: Inputs, array `(N, ...)`.
        teacher_logits: Optional precomputed logits `(N, classes)`.
        batch_size: Batch size for the teacher's forward pass.

    Returns:
        float32 array `(N, classes)`.
    """
    if (teacher is None) == (teacher_logits is None):
        raise ValueError(
            "Pass exactly one of `teacher` and `teacher_logits`. Received: "
            f"teacher={'None' if teacher is None else type(teacher).__name__}"
            f", teacher_logits={'None' if teacher_logits is None else 'array'}"
        )
    if teacher_logits is None:
        teacher_logits = teacher.predict(x, batch_size=batch_size, verbose=0)
    teacher_logits = np.asarray(teacher_logits, dtype="float32")
    if teacher_logits.ndim != 2 or len(teacher_logits) != len(x):
        raise ValueError(
            f"`teacher_logits` must have shape ({len(x)}, classes). "
            f"Received: shape {teacher_logits.shape}"
        )
    return teacher_logits


def fit_distilling(
    student,
    x,
    y,
    teacher_logits,
    *,
    epochs=1,
    batch_size=128,
    temperature=3.0,
    alpha=0.1,
    learning_rate=1e-4,
    callbacks=(),
    validation_data=None,
    verbose=0,
):
    """Fine-tunes a `tf_keras` student on labels and soft targets with Adam.

    Args:
        student: `tf_keras` model (TFMOT-wrapped or not) returning logits.
        x: Inputs `(N, ...)`.
        y: Integer labels `(N,)`.
        teacher_logits: Teacher logits `(N, classes)`.
        epochs: Number of epochs.
        batch_size: Batch size.
        temperature: Softmax temperature `T` of the soft-target loss.
        alpha: Weight of the hard-label loss in [0, 1].
        learning_rate: Adam learning rate.
        callbacks: `tf_keras` callbacks (e.g. `UpdatePruningStep`).
        validation_data: Optional `(x_val, y_val)`.
        verbose: `fit` verbosity.

    Returns:
        The `tf_keras` `History`.
    """
    epochs = _check_positive_int("epochs", epochs)
    batch_size = _check_positive_int("batch_size", batch_size)
    alpha = _check_fraction("alpha", alpha)
    temperature = _check_temperature(temperature)
    x = np.asarray(x, dtype="float32")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"`y` must be integer labels of shape ({len(x)},). "
            f"Received: shape {y.shape}"
        )
    distiller = TfKerasDistiller(student, temperature=temperature, alpha=alpha)
    distiller.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate=learning_rate)
    )
    return distiller.fit(
        x,
        {"labels": y.astype("int32"), "teacher_logits": teacher_logits},
        epochs=epochs,
        batch_size=batch_size,
        callbacks=list(callbacks),
        validation_data=validation_data,
        shuffle=True,
        verbose=verbose,
    )
