"""Distillation training on the `tf_keras` side, for TFMOT-wrapped students.

TFMOT wrappers are `tf_keras` layers, so `kdkeras.Distiller` (a Keras 3
model) cannot hold them. `TfKerasDistiller` is the `tf_keras` counterpart:
the same loss, `alpha * student_loss + (1 - alpha) * T² · KL`, computed with
`kdkeras.losses.kd_loss_per_example` and reduced as Keras and
`kdkeras.Distiller` reduce (`batch_mean`: the sum of the sample-weighted
per-example losses over the batch size).

The teacher is run once, in inference mode, to produce soft targets
(`teacher_logits`) before fine-tuning. Compression fine-tuning feeds the
student the same un-augmented inputs every epoch, so these logits are exactly
what an online teacher call would give, at one forward pass instead of one
per epoch. (A Keras 3 teacher can be called inside the `tf_keras`
`train_step`'s `tf.function`, but `tf_keras` then tracks the teacher's
variables as the distiller's own weights.)
"""

import dataclasses

import numpy as np
import tensorflow as tf
import tf_keras

from kdkeras import losses
from kdkeras._step import arguments
from kdkeras.compress import bridge
from kdkeras.targets import LABELS_KEY
from kdkeras.targets import TEACHER_LOGITS_KEY


def batch_mean(per_example, sample_weight=None):
    """The sample-weighted per-example values summed over the batch size.

    Keras' `"sum_over_batch_size"` reduction, as `kdkeras.Distiller` and
    `kdkeras.losses.KnowledgeDistillation` use: weights scale examples, they
    do not renormalise the mean.

    Args:
        per_example: Tensor `(batch,)`.
        sample_weight: Optional tensor `(batch,)` or `(batch, 1)`.

    Returns:
        Scalar tensor.

    Example:

    >>> float(batch_mean([1.0, 3.0], sample_weight=[1.0, 0.0]))
    0.5
    """
    per_example = tf.convert_to_tensor(per_example)
    if sample_weight is not None:
        sample_weight = tf.reshape(sample_weight, [-1])
        per_example = per_example * tf.cast(sample_weight, per_example.dtype)
    return tf.reduce_mean(per_example)


class TfKerasDistiller(tf_keras.Model):
    """Fits a `tf_keras` student on labels and teacher logits.

    Batches are `(x, {"labels": y, "teacher_logits": t})`, optionally with a
    sample weight; losses are reduced with `batch_mean`. `fit` reports
    `loss`, `student_loss`, `distillation_loss` and `accuracy`; validation
    batches `(x, y)` report `student_loss` and `accuracy`.

    Args:
        student: A `tf_keras` model returning logits (possibly wrapped by
            TFMOT for pruning, clustering or quantization-aware training).
        temperature: Positive float, the softmax temperature `T`.
        alpha: Weight in [0, 1] of the hard-label loss.
    """

    def __init__(self, student, temperature=3.0, alpha=0.1, **kwargs):
        super().__init__(**kwargs)
        self.student = student
        # The Keras 3 loss validates `temperature` (one home for the check).
        self.temperature = losses.check_temperature(temperature)
        self.alpha = alpha
        self.loss_tracker = tf_keras.metrics.Mean(name="loss")
        self.student_loss_tracker = tf_keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = tf_keras.metrics.Mean(name="distillation_loss")
        self.accuracy = tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")

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

    def loss_parts(self, labels, teacher_logits, logits, sample_weight=None):
        """The batch's `student_loss`, `distillation_loss` and their blend.

        Args:
            labels: Integer labels `(batch,)`.
            teacher_logits: Tensor `(batch, classes)`.
            logits: The student's logits `(batch, classes)`.
            sample_weight: Optional tensor `(batch,)`.

        Returns:
            Dict of scalar tensors `loss`, `student_loss` and
            `distillation_loss` (`kdkeras.losses.kd_loss` when unweighted).
        """
        student_loss = batch_mean(
            tf_keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True
            ),
            sample_weight,
        )
        distillation_loss = batch_mean(
            losses.kd_loss_per_example(teacher_logits, logits, self.temperature),
            sample_weight,
        )
        return {
            "loss": self.alpha * student_loss + (1.0 - self.alpha) * distillation_loss,
            "student_loss": student_loss,
            "distillation_loss": distillation_loss,
        }

    def train_step(self, data):
        x, targets, sample_weight = tf_keras.utils.unpack_x_y_sample_weight(data)
        labels = targets[LABELS_KEY]
        teacher_logits = targets[TEACHER_LOGITS_KEY]
        with tf.GradientTape() as tape:
            logits = self.student(x, training=True)
            parts = self.loss_parts(labels, teacher_logits, logits, sample_weight)
            loss = parts["loss"]
            if self.student.losses:
                loss += tf.add_n(self.student.losses)
        variables = self.student.trainable_variables
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self.loss_tracker.update_state(loss)
        self.student_loss_tracker.update_state(parts["student_loss"])
        self.distillation_loss_tracker.update_state(parts["distillation_loss"])
        self.accuracy.update_state(labels, logits, sample_weight)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, labels, sample_weight = tf_keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(labels, dict):
            labels = labels[LABELS_KEY]
        logits = self.student(x, training=False)
        self.student_loss_tracker.update_state(
            tf_keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True
            ),
            sample_weight,
        )
        self.accuracy.update_state(labels, logits, sample_weight)
        return {m.name: m.result() for m in (self.student_loss_tracker, self.accuracy)}


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
    epochs = arguments.check_positive_int("epochs", epochs)
    batch_size = arguments.check_positive_int("batch_size", batch_size)
    alpha = arguments.check_fraction("alpha", alpha)
    x = np.asarray(x, dtype="float32")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"`y` must be integer labels of shape ({len(x)},). "
            f"Received: shape {y.shape}"
        )
    distiller = TfKerasDistiller(student, temperature=temperature, alpha=alpha)
    distiller.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=learning_rate))
    return distiller.fit(
        x,
        {LABELS_KEY: y.astype("int32"), TEACHER_LOGITS_KEY: teacher_logits},
        epochs=epochs,
        batch_size=batch_size,
        callbacks=list(callbacks),
        validation_data=validation_data,
        shuffle=True,
        verbose=verbose,
    )


@dataclasses.dataclass(frozen=True)
class CompressionReport:
    """Which layers a compression step wrapped, and which it left as they are.

    Set as `compression_report` on the model `prune`, `cluster` and
    `quantization_aware` return.

    Attributes:
        method: `"prune"`, `"cluster"` or `"quantization_aware"`.
        wrapped: Names of the layers TFMOT wrapped (pruned, clustered,
            quantized).
        left_as_is: `{layer name: reason}` for the layers with weights (for
            `quantization_aware`: every layer) that TFMOT could not wrap and
            that were left unchanged (dense, unclustered or float).
    """

    method: str
    wrapped: tuple
    left_as_is: dict


def wrap_layers(plan, wrapper, method):
    """A model transform wrapping the layers `plan` accepts, with a report.

    Args:
        plan: Callable `(tf_keras layer) -> True` (wrap it), a string (leave
            it, listed with that reason) or `None` (leave it unlisted: a
            layer with nothing to compress).
        wrapper: Callable `(tf_keras layer) -> wrapped layer` (a TFMOT
            wrapper such as `prune_low_magnitude`).
        method: The `CompressionReport.method`.

    Returns:
        A callable `(tf_keras model) -> (clone with those layers wrapped,
        CompressionReport)`.
    """

    def transform(model):
        wrapped, left_as_is = [], {}

        def clone_function(layer):
            decision = plan(layer)
            if decision is True:
                wrapped.append(layer.name)
                return wrapper(layer)
            if decision:
                left_as_is[layer.name] = decision
            return layer  # Shared with the throwaway copy: weights kept.

        clone = tf_keras.models.clone_model(model, clone_function=clone_function)
        return clone, CompressionReport(method, tuple(wrapped), left_as_is)

    return transform


def per_kernel(model, layer_types, statistic):
    """`statistic(kernel)` of every layer of `layer_types`, by layer name.

    Args:
        model: A Keras 3 or `tf_keras` model (without TFMOT wrappers).
        layer_types: Class names of the layers, e.g. `("Dense", "Conv2D")`.
        statistic: Callable `(kernel array) -> value`.

    Returns:
        Dict `{layer name: value}`.
    """
    return {
        layer.name: statistic(layer.get_weights()[0])
        for layer in model.layers
        if type(layer).__name__ in layer_types and layer.get_weights()
    }


def fine_tune(
    student,
    teacher,
    x,
    y,
    wrap,
    teacher_logits=None,
    callbacks=(),
    strip=None,
    **fitting,
):
    """Carries a Keras 3 student to `tf_keras`, wraps it, fine-tunes it.

    The one path of `prune`, `cluster` and `quantization_aware`: the
    teacher's soft targets (`soft_targets`), the bridge (`to_tf_keras`),
    the TFMOT wrapping, `fit_distilling`, and for `prune` and `cluster` the
    wrappers stripped and the bridge back to Keras 3 (`from_tf_keras`).

    Args:
        student: Keras 3 student returning logits.
        teacher: Keras 3 teacher, run once in inference mode on `x`; `None`
            when `teacher_logits` are given.
        x: Training inputs `(N, ...)`.
        y: Integer labels `(N,)`.
        wrap: Callable `(tf_keras model) -> (TFMOT-wrapped tf_keras model,
            CompressionReport)` (e.g. `wrap_layers(...)`).
        teacher_logits: Optional precomputed teacher logits `(N, classes)`.
        callbacks: `tf_keras` callbacks of the fit.
        strip: Optional callable `(wrapped tf_keras model) -> tf_keras
            model without the TFMOT wrappers` (e.g. `strip_pruning`).
        **fitting: The arguments of `fit_distilling` (`epochs`,
            `batch_size`, `temperature`, `alpha`, `learning_rate`,
            `validation_data`, `verbose`).

    Returns:
        The fine-tuned, still wrapped, `tf_keras` model; with `strip`, the
        stripped model as Keras 3. Either has a `compression_report`
        attribute (`CompressionReport`).
    """
    teacher_logits = soft_targets(teacher, x, teacher_logits)
    wrapped, report = wrap(bridge.to_tf_keras(student))
    fit_distilling(wrapped, x, y, teacher_logits, callbacks=callbacks, **fitting)
    result = wrapped if strip is None else bridge.from_tf_keras(strip(wrapped))
    result.compression_report = report
    return result
