"""`Distiller`: a `keras.Model` that trains a student on a teacher's soft targets.

One training step (Hinton, Vinyals & Dean 2015):

    loss = alpha * student_loss(labels, student_logits)
         + (1 - alpha) * T² · KL(softmax(teacher_logits / T) ‖ softmax(student_logits / T))
         + Σ hint.weight * hint_loss                      (optional FitNets hints)

Every loss is reduced the same way: per-example values times sample weights,
summed, and divided by a GLOBAL count (the sum over the replicas): the
soft-target and hint losses by the number of examples in the step, the
hard-label loss by the number of LABELLED examples in the step (0 labelled:
it contributes 0). Unlabelled examples (`kdkeras.targets.UNLABELLED`, -1, or
an all-zero one-hot row) and batches without labels train on the soft
targets alone. Under `tf.distribute` the gradients are summed across
replicas, so the step, and every reported number, equals the single-device
step at the same global batch.
"""

import contextlib
import numbers
import sys
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from tensorflow.python.framework.config import is_op_determinism_enabled

from kdkeras import hints as hints_lib
from kdkeras import losses as losses_lib
from kdkeras import random_layers
from kdkeras import soft_targets
from kdkeras import xla
from kdkeras.distribute import multi_worker
from kdkeras.targets import LABELS_KEY
from kdkeras.targets import TEACHER_LOGITS_KEY
from kdkeras.targets import UNLABELLED
from kdkeras.targets import TopKTargets
from kdkeras.targets import split_targets


def _check_model(model, argument):
    if model is None:
        raise ValueError(f"`{argument}` is required. Received: {argument}=None")
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{argument}` must be a keras.Model (Keras 3). "
            f"Received: {argument} of type {type(model).__name__}"
        )


def _known_shape(model, attribute):
    try:
        shape = getattr(model, attribute)
    except (AttributeError, ValueError):
        return None
    if isinstance(shape, list):
        shape = shape[0] if len(shape) == 1 else None
    return tuple(shape) if shape is not None else None


def _check_compatible(student, teacher):
    student_input = _known_shape(student, "input_shape")
    teacher_input = _known_shape(teacher, "input_shape")
    if student_input and teacher_input and (student_input[1:] != teacher_input[1:]):
        raise ValueError(
            "`teacher` and `student` must take the same input shape. "
            f"Received: teacher input {teacher_input[1:]}, "
            f"student input {student_input[1:]}"
        )
    student_output = _known_shape(student, "output_shape")
    teacher_output = _known_shape(teacher, "output_shape")
    if student_output and teacher_output and (student_output[-1] != teacher_output[-1]):
        raise ValueError(
            "`teacher` and `student` must output the same number of classes. "
            f"Received: teacher {teacher_output[-1]} classes, "
            f"student {student_output[-1]} classes"
        )


def _check_fraction(value, argument):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{argument}` must be a number in [0, 1]. Received: {argument}={value!r}"
        )
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"`{argument}` must be in [0, 1]. Received: {argument}={value}"
        )
    return float(value)


def _resolve_loss(loss, argument):
    if loss is None or callable(loss):
        return loss
    if isinstance(loss, (str, dict)):
        try:
            return keras.losses.get(loss)
        except ValueError:
            pass
    raise TypeError(
        f"`{argument}` must be a Keras loss (a keras.losses.Loss, a loss "
        f"function or its name). Received: {argument}={loss!r}"
    )


def _per_example(loss_fn, y_true, y_pred):
    """Unreduced values of a Keras loss object or function, shape (batch,)."""
    if isinstance(loss_fn, keras.losses.Loss):
        values = loss_fn.call(y_true, y_pred)
    else:
        values = loss_fn(y_true, y_pred)
    values = ops.cast(values, "float32")
    if len(values.shape) > 1:
        values = ops.mean(values, axis=tuple(range(1, len(values.shape))))
    return values


class _Forward:
    """Plain holder (not tracked by Keras) of the logits/feature models.

    These models share layers with the student and teacher; keeping them out
    of Keras' tracking keeps every variable listed and saved exactly once.
    """

    def __init__(self, student, teacher):
        self.student = student
        self.teacher = teacher


@keras.saving.register_keras_serializable(package="kdkeras")
class Distiller(keras.Model):
    """Trains `student` on the soft targets of `teacher`, blended with labels.

    A drop-in for the keras.io knowledge-distillation example: the same
    `compile` arguments, and `fit`/`evaluate`/`predict` as for any model
    (`call` is the student). The teacher runs in inference mode (dropout off,
    BatchNorm statistics frozen) and is never updated.

    A teacher or student whose last layer is a softmax outputs probabilities;
    the distiller reads its pre-softmax logits instead (log-probabilities
    are valid logits), so nothing is silently distilled from probabilities.

    Batches are `(x, y)` or `(x, y, sample_weight)`. `y` may also be a dict
    `{"labels": y, "teacher_logits": logits}` carrying cached soft targets
    (see `kdkeras.soft_targets`); the teacher then does not run at all. For
    many classes it may carry top-k targets instead (the keys of
    `kdkeras.targets.batch`, e.g. from a `top_k` shard cache): the
    soft-target loss is then `kdkeras.losses.top_k_kd_loss_per_example`,
    exact on the K classes and the rest's mass, which needs the default
    distillation loss (or `KnowledgeDistillation`) at the temperature the
    targets were computed at.
    Labels are optional: batches of `x` alone (or a dict without "labels")
    train on the soft targets alone (`alpha=0`), and in a partly labelled
    batch an unlabelled example has the label `kdkeras.targets.UNLABELLED`
    (-1), or an all-zero row for one-hot labels.

    Args:
        student: The `keras.Model` to train; outputs logits.
        teacher: The trained `keras.Model` (or `kdkeras.teachers.Ensemble`).
        hints: Optional `kdkeras.Hint`s (FitNets feature matching).
        **kwargs: Passed to `keras.Model` (e.g. `name`).

    Example:

    >>> import numpy as np, keras
    >>> def mlp(width):
    ...     return keras.Sequential([keras.Input((4,)),
    ...         keras.layers.Dense(width, activation="relu"),
    ...         keras.layers.Dense(3)])
    >>> distiller = Distiller(student=mlp(8), teacher=mlp(32))
    >>> distiller.compile(optimizer="adam", metrics=["accuracy"],
    ...     student_loss_fn=keras.losses.SparseCategoricalCrossentropy(
    ...         from_logits=True), alpha=0.1, temperature=4.0)
    >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    >>> y = np.random.default_rng(1).integers(0, 3, size=32)
    >>> history = distiller.fit(x, y, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'distillation_loss', 'loss', 'student_loss', 'teacher_agreement']
    >>> loss, accuracy = distiller.evaluate(x, y, verbose=0)  # as in keras.io
    """

    def __init__(self, student=None, teacher=None, hints=None, **kwargs):
        name = kwargs.pop("name", "distiller")
        super().__init__(name=name, **kwargs)
        _check_model(student, "student")
        _check_model(teacher, "teacher")
        _check_compatible(student, teacher)
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.hints = hints_lib.as_hints(hints)
        self._forward = _Forward(
            self._logits_model(student, "student"),
            self._logits_model(teacher, "teacher"),
        )
        self.projections = []
        if self.hints:
            self._forward = _Forward(
                hints_lib.feature_model(
                    self._forward.student,
                    [hint.student_layer for hint in self.hints],
                    "student",
                ),
                hints_lib.feature_model(
                    self._forward.teacher,
                    [hint.teacher_layer for hint in self.hints],
                    "teacher",
                ),
            )
            student_shapes = [o.shape for o in self._forward.student.outputs]
            teacher_shapes = [o.shape for o in self._forward.teacher.outputs]
            for index in range(len(self.hints)):
                self.projections.append(
                    hints_lib.make_projection(
                        student_shapes[index + 1],
                        teacher_shapes[index + 1],
                        name=f"hint_projection_{index}",
                    )
                )
        self.alpha = 0.1
        self.temperature = 3.0
        self.student_loss_fn = None
        self.distillation_loss_fn = None
        if student.built and teacher.built:
            self.built = True

    @staticmethod
    def _logits_model(model, role):
        from kdkeras import teachers

        if teachers.outputs_probabilities(model):
            return teachers.logits_model(model)
        return model

    # -------------------------------------------------------------- compile

    def compile(
        self,
        optimizer="adam",
        metrics=None,
        student_loss_fn=None,
        distillation_loss_fn=None,
        alpha=0.1,
        temperature=None,
        jit_compile="auto",
        **kwargs,
    ):
        """Configures the distiller for training.

        Args:
            optimizer: Optimizer (instance or name) for the student.
            metrics: Metrics of the student against the labels (over the
                labelled examples only). Besides them, the history reports
                `loss`, `student_loss` (mean over labelled examples; 0 when
                none was labelled), `distillation_loss`, `hint_loss` (with
                hints) and `teacher_agreement` (fraction of examples whose
                student top-1 class is the teacher's, sample-weighted).
            student_loss_fn: Loss between labels and student logits. Defaults
                to `SparseCategoricalCrossentropy(from_logits=True)`.
            distillation_loss_fn: None (default) uses the fused, stable
                `kdkeras.losses.kd_loss`. A
                `kdkeras.losses.LogitsDistillationLoss` (`KnowledgeDistillation`,
                `DKD`, `DIST`) is called on the raw logits with its own
                temperature. Any other Keras loss is called as in the keras.io
                example, on `softmax(teacher/T)` and `softmax(student/T)`, and
                multiplied by `T²`.
            alpha: Weight in [0, 1] of the student (hard-label) loss; the
                soft-target loss gets `1 - alpha`. Must be 0 to train on
                batches without labels.
            temperature: Softmax temperature `T` in
                [`kdkeras.losses.MIN_TEMPERATURE`, `MAX_TEMPERATURE`]
                (default 3.0). With a `LogitsDistillationLoss`, leave it
                unset (the loss's own temperature is used) or give the same.
                With top-k teacher targets it must be the temperature they
                were computed at (a batch at another is refused).
            jit_compile: `True`, `False` or `"auto"`: XLA unless running
                eagerly, under a multi-replica strategy, with op determinism
                enabled, or with a layer that does not support XLA; on a
                CPU-only machine, also not when the student (or a hint
                projection) has convolutions, pooling, or dropout-like random
                draws, which XLA runs slower there (`kdkeras.xla`; Keras' own
                "auto" turns XLA off on every CPU-only machine).
            **kwargs: Passed to `keras.Model.compile` (e.g.
                `steps_per_execution`, `run_eagerly`).
        """
        self.alpha = _check_fraction(alpha, "alpha")
        self.temperature = _resolve_temperature(temperature, distillation_loss_fn)
        if student_loss_fn is None:
            student_loss_fn = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True
            )
        self.student_loss_fn = _resolve_loss(student_loss_fn, "student_loss_fn")
        self.distillation_loss_fn = _resolve_loss(
            distillation_loss_fn, "distillation_loss_fn"
        )
        if "loss" in kwargs:
            raise ValueError(
                "Distiller.compile takes `student_loss_fn` and "
                "`distillation_loss_fn`, not `loss`."
            )
        if jit_compile == "auto":
            jit_compile = self._auto_jit_compile(kwargs.get("run_eagerly"))
        self._compile_arguments = {
            "optimizer": optimizer,
            "metrics": metrics,
            "student_loss_fn": self.student_loss_fn,
            "distillation_loss_fn": self.distillation_loss_fn,
            "alpha": self.alpha,
            "temperature": self.temperature,
            "jit_compile": jit_compile,
            **kwargs,
        }
        super().compile(
            optimizer=optimizer,
            metrics=metrics,
            jit_compile=jit_compile,
            **kwargs,
        )
        names = ["student_loss", "distillation_loss"]
        if self.hints:
            names.append("hint_loss")
        names.append("teacher_agreement")
        self._loss_trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self._blended_loss = _BlendedLoss(self._blend_losses)

    def _auto_jit_compile(self, run_eagerly):
        if run_eagerly:
            return False
        if self.distribute_strategy.num_replicas_in_sync > 1 or isinstance(
            self.distribute_strategy,
            tf.distribute.MultiWorkerMirroredStrategy,
        ):
            return False
        if not self._supports_jit():
            return False
        # On CPU, XLA only where it is faster than TF's kernels (`kdkeras.xla`).
        # The teacher is left out: from cached soft targets it never runs, and
        # online its convolutions lose less to XLA than a dense student's step
        # gains (figures in BENCHMARKS.md).
        return xla.auto_jit(trained=self._trained_models())

    def _trained_models(self):
        return [self.student] + [
            projection for projection in self.projections if projection
        ]

    def _supports_jit(self):
        """Whether XLA can compile what a step actually runs.

        Keras asks every layer, the teacher's included; but the teacher runs
        only in inference, where random augmentation layers (the paper
        teacher's `RandomTranslation` jitter, `supports_jit=False`) return
        their input untouched. Those do not veto XLA; every other layer of
        the student, the projections and the teacher does. As in Keras,
        op determinism turns XLA off.
        """
        if is_op_determinism_enabled():
            return False
        return soft_targets.inference_supports_jit(self.teacher) and all(
            layer.supports_jit
            for model in self._trained_models()
            for layer in random_layers.sublayers(model)
        )

    @property
    def jit_compile(self):
        if getattr(self, "_building_step_function", False):
            # Keras' step function stays out of XLA: the label check runs
            # before the step, which `_xla_steps` compiles (`make_train_function`).
            return False
        if self._jit_compile is None:
            self._jit_compile = self._auto_jit_compile(False)
        return self._jit_compile

    @jit_compile.setter
    def jit_compile(self, value):
        # Keras' setter checks the teacher's training-only layers too.
        if value and not self._supports_jit():
            warnings.warn(
                "The student, teacher or hint projections contain a layer "
                "that XLA cannot compile: proceeding with jit_compile=False.",
                stacklevel=2,
            )
            value = False
        self._jit_compile = value

    @property
    def metrics(self):
        trackers = getattr(self, "_loss_trackers", None)
        if trackers is None:
            return super().metrics
        metrics = [self._blended_loss] + list(trackers.values())
        # Compiled metrics are built from the first labelled batch; without
        # labels (none yet, or none in the data of this call) there is
        # nothing to report for them.
        if (
            self._compile_metrics is not None
            and self._compile_metrics.built
            and not getattr(self, "_data_without_labels", False)
        ):
            metrics.append(self._compile_metrics)
        return metrics

    @contextlib.contextmanager
    def _labels_of(self, x, y, validation_data=None):
        """Within: compiled metrics are left out if the data has no labels."""
        previous = getattr(self, "_data_without_labels", False)
        self._data_without_labels = (
            _has_labels(x, y) is False and validation_data is None
        )
        try:
            yield
        finally:
            self._data_without_labels = previous

    def _blend_losses(self):
        """The reported `loss`: the parts' means, blended as in the step."""
        results = {
            name: tracker.result() for name, tracker in self._loss_trackers.items()
        }
        loss = (
            self.alpha * results["student_loss"]
            + (1.0 - self.alpha) * results["distillation_loss"]
        )
        if "hint_loss" in results:
            loss = loss + results["hint_loss"]
        return loss

    def get_compile_config(self):
        if not getattr(self, "_compile_arguments", None):
            return {}
        arguments = dict(self._compile_arguments)
        for key in ("optimizer", "student_loss_fn", "distillation_loss_fn"):
            arguments[key] = keras.saving.serialize_keras_object(arguments[key])
        arguments["metrics"] = keras.saving.serialize_keras_object(arguments["metrics"])
        return arguments

    def compile_from_config(self, config):
        config = dict(config)
        for key in ("optimizer", "student_loss_fn", "distillation_loss_fn", "metrics"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _ = split_targets(y)
        sample_weight = _per_example_weight(sample_weight)
        if labels is not None:
            loss_labels, mask, _ = self._label_parts(labels)
            self._update_compiled_metrics(loss_labels, y_pred, mask, sample_weight)
        return self.get_metrics_result()

    def _update_compiled_metrics(self, labels, y_pred, mask, sample_weight):
        """Compiled metrics over the labelled examples (`mask`) only."""
        compiled = self._compile_metrics
        if compiled is None:
            return
        if not compiled.built:
            compiled.build(labels, y_pred)
        weight = mask
        if sample_weight is not None:
            weight = mask * ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
        # Keras passes no sample weight to `metrics`; the mask must reach them.
        # Keras internal (no public equivalent): the compiled metrics' lists.
        for metrics in compiled._flat_metrics:
            if metrics:
                metrics.update_state(labels, y_pred, sample_weight=mask)
        for metrics in compiled._flat_weighted_metrics:
            if metrics:
                metrics.update_state(labels, y_pred, sample_weight=weight)

    # ---------------------------------------------------------------- labels

    def _num_classes(self):
        shape = _known_shape(self.student, "output_shape")
        return shape[-1] if shape else None

    def _sparse_labels(self, labels):
        """Whether `labels` are class indices (else one-hot / soft rows)."""
        rank = len(labels.shape)
        if rank <= 1:
            return True
        return rank == 2 and labels.shape[-1] == 1 and self._num_classes() != 1

    def _label_parts(self, labels):
        """`(labels for the loss, labelled mask, target classes)`.

        Unlabelled examples get class 0 in the loss's labels (their loss is
        masked out), mask 0, and target class `UNLABELLED`.
        """
        labels = ops.convert_to_tensor(labels)
        if self._sparse_labels(labels):
            labelled = labels >= 0
            loss_labels = ops.where(labelled, labels, ops.zeros_like(labels))
            flat = ops.reshape(labels, (-1,))
            mask = ops.cast(flat >= 0, "float32")
            targets = ops.cast(flat, "int32")
        else:
            flat_labelled = ops.any(ops.not_equal(labels, 0), axis=-1)
            if len(flat_labelled.shape) > 1:
                flat_labelled = ops.reshape(flat_labelled, (-1,))
            loss_labels = labels
            mask = ops.cast(flat_labelled, "float32")
            targets = ops.where(
                flat_labelled,
                ops.cast(ops.argmax(labels, axis=-1), "int32"),
                UNLABELLED,
            )
        return loss_labels, mask, targets

    def _checked_labels(self, labels):
        """`labels`, after an in-graph check that every class index is valid.

        Runs outside XLA (which drops assertions, and on CPU turns an
        out-of-range label into a NaN loss), so the error is the same with
        any `jit_compile`.
        """
        if labels is None:
            return None
        labels = ops.convert_to_tensor(labels)
        if not self._sparse_labels(labels):
            return labels
        classes = self._num_classes()
        # Signed comparison: -1 must not wrap around in unsigned labels.
        values = labels
        if "int" in str(labels.dtype):
            values = ops.cast(labels, "int64")
        valid = values >= UNLABELLED
        if classes:
            valid = ops.logical_and(valid, values < classes)
        flat_valid = ops.reshape(valid, (-1,))
        invalid = tf.boolean_mask(ops.reshape(values, (-1,)), ~flat_valid)
        upper = classes if classes else "classes"
        check = tf.debugging.Assert(
            ops.all(flat_valid),
            [
                "Received a label value outside the valid range of "
                f"[0, {upper}) (or {UNLABELLED}, an unlabelled example). "
                "Labels out of range:",
                invalid,
            ],
            summarize=5,
        )
        with tf.control_dependencies([check]):
            return tf.identity(labels)

    def _checked_top_k(self, teacher_targets):
        """Top-k targets, after an in-graph check of their temperature.

        Their tail is the other classes' mass at the temperature they were
        computed at: at any other the loss would be wrong. Checked at trace
        time for the loss, and in the graph (outside XLA) for every batch.
        """
        if not isinstance(teacher_targets, TopKTargets):
            return teacher_targets
        _check_top_k_loss(self.distillation_loss_fn)
        temperature = ops.cast(teacher_targets.temperature, "float32")
        expected = ops.cast(self.temperature, "float32")
        matches = ops.all(ops.equal(temperature, expected))
        check = tf.debugging.Assert(
            matches,
            [
                _top_k_temperature_message(
                    self.temperature, "the value after this message"
                ),
                temperature,
            ],
            summarize=1,
        )
        with tf.control_dependencies([check]):
            tail = tf.identity(teacher_targets.tail)
        return teacher_targets._replace(tail=tail)

    def _check_array_labels(self, y):
        """Eager range check of NumPy / tensor labels: a one-line error.

        The same error type as the in-graph check (`_checked_labels`), which
        guards every other input (datasets, generators).
        """
        labels, _ = split_targets(y)
        if labels is None or not hasattr(labels, "shape"):
            return
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iuf" or not labels.size:
            return
        if not self._sparse_labels(labels):
            return
        classes = self._num_classes()
        invalid = ~(labels >= UNLABELLED)  # NaN included
        if classes:
            invalid |= labels >= classes
        if invalid.any():
            value = labels[invalid].flat[0]
            raise tf.errors.InvalidArgumentError(
                None,
                None,
                f"Received a label value of {value} which is outside the "
                f"valid range of [0, {classes}) (or {UNLABELLED}, an "
                "unlabelled example).",
            )

    # ----------------------------------------------------------------- steps

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def _teacher_outputs(self, x, teacher_logits):
        """Teacher logits or top-k targets (and hint features), never trained."""
        if teacher_logits is not None:
            teacher_logits = tf.nest.map_structure(ops.stop_gradient, teacher_logits)
            if not self.hints:
                return teacher_logits, []
        outputs = self._forward.teacher(x, training=False)
        outputs = outputs if self.hints else [outputs]
        outputs = [ops.stop_gradient(output) for output in outputs]
        if teacher_logits is not None:
            outputs[0] = teacher_logits
        return outputs[0], outputs[1:]

    def _step_losses(self, x, labels, teacher_logits, sample_weight, training):
        """The step's loss and the per-example values the metrics report."""
        teacher_logits, teacher_features = self._teacher_outputs(x, teacher_logits)
        outputs = self._forward.student(x, training=training)
        outputs = outputs if self.hints else [outputs]
        student_logits, student_features = outputs[0], outputs[1:]
        batch = ops.shape(student_logits)[0]
        if sample_weight is None:
            weight = ops.ones((batch,), "float32")
        else:
            weight = ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
        if labels is None:
            loss_labels, targets = None, None
            mask = ops.zeros((batch,), "float32")
            student_values = mask
        else:
            loss_labels, mask, targets = self._label_parts(labels)
            student_values = mask * _per_example(
                self.student_loss_fn, loss_labels, student_logits
            )
        # One all-reduce for both counts; a loss's own all-reduces (DIST) come
        # after it: replicas must issue collectives in the same order.
        local_examples = ops.cast(batch, "float32")
        counts = _global_sum(ops.stack([local_examples, ops.sum(mask)]))
        examples, labelled = counts[0], counts[1]
        with tf.control_dependencies([counts]):
            distillation_values, batch_term = self._distillation(
                teacher_logits, student_logits, targets, sample_weight
            )
        values = {
            "student_loss": weight * student_values,
            "distillation_loss": weight * distillation_values,
        }
        if self.hints:
            hint_total = 0.0
            for hint, projection, student_feature, teacher_feature in zip(
                self.hints,
                self.projections,
                student_features,
                teacher_features,
                strict=True,
            ):
                if projection is not None:
                    student_feature = projection(student_feature)
                hint_total = hint_total + hint.weight * (
                    losses_lib.hint_loss_per_example(
                        teacher_feature, ops.cast(student_feature, "float32")
                    )
                )
            values["hint_loss"] = weight * hint_total

        soft = ops.sum(values["distillation_loss"]) / examples
        if batch_term is not None:
            # A batch-level term (DIST's intra-class correlation) has the
            # global batch's value on every replica and, as gradient, the
            # part through this replica's examples: each replica adds its
            # share of the value and the whole of its gradient.
            constant = ops.stop_gradient(batch_term)
            soft = (
                soft + (batch_term - constant) + (constant * local_examples / examples)
            )
            values["distillation_loss"] = values["distillation_loss"] + batch_term
        loss = (
            self.alpha
            * tf.math.divide_no_nan(ops.sum(values["student_loss"]), labelled)
            + (1.0 - self.alpha) * soft
        )
        if self.hints:
            loss = loss + ops.sum(values["hint_loss"]) / examples
        return {
            "loss": loss,
            "values": values,
            "mask": mask,
            "labels": loss_labels,
            "student_logits": student_logits,
            "teacher_logits": teacher_logits,
            "sample_weight": sample_weight,
        }

    def _distillation(self, teacher_logits, student_logits, targets, sample_weight):
        """Per-example soft-target values and a batch-level term (or None)."""
        loss_fn = self.distillation_loss_fn
        if isinstance(teacher_logits, TopKTargets):
            _check_top_k_loss(loss_fn)
            return losses_lib.top_k_kd_loss_per_example(
                teacher_logits.values,
                teacher_logits.indices,
                teacher_logits.tail,
                student_logits,
                self.temperature,
            ), None
        if loss_fn is None:
            return losses_lib.kd_loss_per_example(
                teacher_logits, student_logits, self.temperature
            ), None
        if isinstance(loss_fn, losses_lib.LogitsDistillationLoss):
            values = ops.cast(
                loss_fn.per_example(teacher_logits, student_logits, targets),
                "float32",
            )
            batch_term = loss_fn.batch_loss(
                teacher_logits, student_logits, sample_weight
            )
            if batch_term is not None:
                batch_term = ops.cast(batch_term, "float32")
            return values, batch_term
        soft_targets = ops.softmax(
            ops.cast(teacher_logits, "float32") / self.temperature, axis=-1
        )
        soft_predictions = ops.softmax(
            ops.cast(student_logits, "float32") / self.temperature, axis=-1
        )
        return self.temperature**2 * _per_example(
            loss_fn, soft_targets, soft_predictions
        ), None

    def _update_metrics(self, step):
        values, mask = step["values"], step["mask"]
        trackers = self._loss_trackers
        trackers["student_loss"].update_state(
            values["student_loss"], sample_weight=mask
        )
        trackers["distillation_loss"].update_state(values["distillation_loss"])
        if "hint_loss" in trackers:
            trackers["hint_loss"].update_state(values["hint_loss"])
        agreement = ops.cast(
            ops.equal(
                ops.cast(ops.argmax(step["student_logits"], axis=-1), "int32"),
                _teacher_classes(step["teacher_logits"]),
            ),
            "float32",
        )
        sample_weight = step["sample_weight"]
        if sample_weight is not None:
            sample_weight = ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
        trackers["teacher_agreement"].update_state(
            agreement, sample_weight=sample_weight
        )
        if step["labels"] is not None:
            self._update_compiled_metrics(
                step["labels"], step["student_logits"], mask, sample_weight
            )

    def _train_core(self, x, labels, teacher_logits, sample_weight):
        with tf.GradientTape() as tape:
            step = self._step_losses(
                x, labels, teacher_logits, sample_weight, training=True
            )
            scaled_loss = self.optimizer.scale_loss(step["loss"])
        trainable_variables = self.trainable_variables
        gradients = tape.gradient(scaled_loss, trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, trainable_variables, strict=True))
        self._update_metrics(step)
        return self.get_metrics_result()

    def _test_core(self, x, labels, teacher_logits, sample_weight):
        step = self._step_losses(
            x, labels, teacher_logits, sample_weight, training=False
        )
        self._update_metrics(step)
        return self.get_metrics_result()

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        sample_weight = _per_example_weight(sample_weight)
        labels, teacher_logits = split_targets(y)
        if labels is None and self.alpha > 0:
            raise ValueError(_alpha_without_labels_message(self.alpha))
        if teacher_logits is not None:
            # At trace time: cached targets are wrong for augmented inputs.
            soft_targets.check_no_augmentation(student=self.student)
        labels = self._checked_labels(labels)
        teacher_logits = self._checked_top_k(teacher_logits)
        step = getattr(self, "_xla_steps", {}).get("train", self._train_core)
        return step(x, labels, teacher_logits, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        sample_weight = _per_example_weight(sample_weight)
        labels, teacher_logits = split_targets(y)
        labels = self._checked_labels(labels)
        teacher_logits = self._checked_top_k(teacher_logits)
        step = getattr(self, "_xla_steps", {}).get("test", self._test_core)
        return step(x, labels, teacher_logits, sample_weight)

    def _make_step_function(self, kind, make, force):
        """Keras' step function without XLA, around an XLA-compiled step."""
        steps = dict(getattr(self, "_xla_steps", {}))
        steps.pop(kind, None)
        if self.jit_compile and not self.run_eagerly:
            core = self._train_core if kind == "train" else self._test_core
            steps[kind] = tf.function(core, jit_compile=True, reduce_retracing=True)
        self._xla_steps = steps
        self._building_step_function = True
        try:
            return make(force=force)
        finally:
            self._building_step_function = False

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        return self._make_step_function("train", super().make_train_function, force)

    def make_test_function(self, force=False):
        if self.test_function is not None and not force:
            return self.test_function
        return self._make_step_function("test", super().make_test_function, force)

    # ------------------------------------------------------ fit and evaluate

    def _forget_steps_traced_without_labels(self, x, y, function):
        """Drops a step function traced before the compiled metrics existed.

        Keras builds them (creating variables) in the first trace of a step
        that sees labels, which a `tf.function` allows only on its first
        call: a step first traced on unlabelled data is traced anew.
        """
        compiled = self._compile_metrics
        if (
            compiled is not None
            and not compiled.built
            and _has_labels(x, y) is not False
        ):
            setattr(self, function, None)

    def fit(self, x=None, y=None, **kwargs):
        """`keras.Model.fit`, also under MultiWorkerMirroredStrategy.

        Without labels (`fit(x)`, `fit(x, None)`, a dataset of `x` alone or
        of `(x, {TEACHER_LOGITS_KEY: t})`) the student trains on the soft
        targets alone, which needs `alpha=0`. Empty data is refused.
        `verbose="auto"` (the default) shows Keras' live progress bar in a
        terminal and one line per epoch otherwise (logs, CI, pipes).

        Keras 3's own `fit` fails under MultiWorkerMirroredStrategy
        (keras-team/keras#20585) and cannot resume a `BackupAndRestore`
        backup taken mid-epoch; those runs go through the small distributed
        loop in `kdkeras.distribute.multi_worker` (see BUILD.md), the others through
        Keras' `fit` unchanged.
        """
        _check_not_empty(x)
        self._check_array_labels(y)
        self._check_array_top_k(y)
        if self.alpha > 0 and _has_labels(x, y) is False:
            raise ValueError(_alpha_without_labels_message(self.alpha))
        kwargs["verbose"] = _resolve_verbose(kwargs.get("verbose", "auto"))
        self._forget_steps_traced_without_labels(x, y, "train_function")
        if multi_worker.needs_multi_worker_fit(
            self.distribute_strategy, kwargs.get("callbacks")
        ):
            return multi_worker.fit(self, x, y, **kwargs)
        steps_before = _optimizer_steps(self)
        with self._labels_of(x, y, kwargs.get("validation_data")):
            history = super().fit(x, y, **kwargs)
        epochs = kwargs.get("epochs", 1) - kwargs.get("initial_epoch", 0)
        if epochs > 0 and _optimizer_steps(self) == steps_before:
            raise ValueError(
                "`x` must yield at least one batch: no training step ran. "
                "Received: an empty input"
            )
        return history

    def evaluate(
        self,
        x=None,
        y=None,
        batch_size=None,
        verbose="auto",
        sample_weight=None,
        steps=None,
        callbacks=None,
        return_dict=False,
        **kwargs,
    ):
        """`keras.Model.evaluate`, returning what plain Keras returns.

        With `return_dict=False` (the default): the loss, followed by the
        compiled metrics in order (a scalar if there are none), as for any
        Keras model, so `loss, accuracy = distiller.evaluate(x, y)` works as
        in the keras.io example. With `return_dict=True`, also the loss
        parts and `teacher_agreement`. On unlabelled data the loss is the
        distillation loss (`alpha` times an empty hard-label loss, 0).
        """
        _check_not_empty(x)
        self._check_array_labels(y)
        self._check_array_top_k(y)
        self._forget_steps_traced_without_labels(x, y, "test_function")
        with self._labels_of(x, y):
            logs = super().evaluate(
                x,
                y,
                batch_size=batch_size,
                verbose=_resolve_verbose(verbose),
                sample_weight=sample_weight,
                steps=steps,
                callbacks=callbacks,
                return_dict=True,
                **kwargs,
            )
        if return_dict:
            return logs
        parts = set(self._loss_trackers) | {"loss"}
        results = [logs["loss"]] + [
            value for name, value in logs.items() if name not in parts
        ]
        return results[0] if len(results) == 1 else results

    def _check_array_top_k(self, y):
        """Eager check of NumPy top-k targets: loss and temperature."""
        _, teacher_targets = split_targets(y)
        if not isinstance(teacher_targets, TopKTargets):
            return
        _check_top_k_loss(self.distillation_loss_fn)
        temperature = np.asarray(
            ops.convert_to_numpy(teacher_targets.temperature), np.float32
        )
        other = temperature != np.float32(self.temperature)
        if np.any(other):
            raise ValueError(
                _top_k_temperature_message(
                    self.temperature, float(temperature[other].flat[0])
                )
            )

    # ---------------------------------------------------------- serialisation

    def get_config(self):
        return {
            "name": self.name,
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "hints": [hint.get_config() for hint in self.hints],
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["student"] = keras.saving.deserialize_keras_object(config["student"])
        config["teacher"] = keras.saving.deserialize_keras_object(config["teacher"])
        return cls(**config)


def _global_sum(value):
    """Sum of a float32 tensor over the replicas of this step."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def _per_example_weight(sample_weight):
    """One sample-weight array for the batch.

    Keras' array adapter copies a `sample_weight` array onto every entry of
    a target dict (`{"labels", "teacher_logits"}`, the top-k keys): the
    Distiller weighs whole examples, so one copy is used.
    """
    if isinstance(sample_weight, dict):
        return tf.nest.flatten(sample_weight)[0]
    return sample_weight


def _check_top_k_loss(loss_fn):
    """Top-k targets train with the soft-target loss only (at trace time)."""
    if loss_fn is None or isinstance(loss_fn, losses_lib.KnowledgeDistillation):
        return
    name = getattr(loss_fn, "name", None) or type(loss_fn).__name__
    raise ValueError(
        "`distillation_loss_fn` must be None or KnowledgeDistillation to "
        "train on top-k teacher targets (other losses need every logit: "
        "expand them with kdkeras.targets.dense_logits_from_top_k, e.g. "
        "soft_target_shards_dataset(..., expand_top_k=True)). "
        f"Received: distillation_loss_fn={name}"
    )


def _top_k_temperature_message(temperature, targets_temperature):
    return (
        "`temperature` must equal the temperature the top-k teacher targets "
        f"were computed at, {targets_temperature} (their tail is the other "
        "classes' mass at it): compile with it, or rebuild the targets at "
        f"this one. Received: temperature={temperature}"
    )


def _teacher_classes(teacher_logits):
    """The teacher's top-1 class per example, int32 `(batch,)`."""
    if isinstance(teacher_logits, TopKTargets):
        best = ops.argmax(teacher_logits.values, axis=-1)
        return ops.cast(
            ops.take_along_axis(
                teacher_logits.indices, ops.expand_dims(best, -1), axis=-1
            )[:, 0],
            "int32",
        )
    return ops.cast(ops.argmax(teacher_logits, axis=-1), "int32")


def _resolve_temperature(temperature, distillation_loss_fn):
    if isinstance(distillation_loss_fn, losses_lib.LogitsDistillationLoss):
        own = distillation_loss_fn.temperature
        if temperature is not None and (
            losses_lib.check_temperature(temperature) != own
        ):
            raise ValueError(
                "`temperature` must be left unset (or equal the loss's) with a "
                f"{type(distillation_loss_fn).__name__} distillation loss, "
                f"which carries its own (temperature={own}). "
                f"Received: temperature={temperature}"
            )
        return own
    if temperature is None:
        return 3.0
    return losses_lib.check_temperature(temperature)


def _alpha_without_labels_message(alpha):
    return (
        "`alpha` must be 0 when training without labels (batches of `x` "
        f"alone, or of `(x, {{'{TEACHER_LOGITS_KEY}': t}})` without "
        f"'{LABELS_KEY}'): the hard-label loss has no labels. "
        f"Received: alpha={alpha}"
    )


def _has_labels(x, y):
    """False if the data certainly has no labels; True or None otherwise."""
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        if not isinstance(spec, tuple) or len(spec) < 2:
            return False
        labels, _ = split_targets(spec[1])
        return labels is not None
    if y is not None:
        labels, _ = split_targets(y)
        return labels is not None
    if x is not None and all(hasattr(value, "shape") for value in tf.nest.flatten(x)):
        return False  # arrays or tensors without `y`
    return None  # a generator or PyDataset: checked when the step is traced


def _check_not_empty(x):
    if isinstance(x, tf.data.Dataset):
        if int(x.cardinality()) == 0:
            raise ValueError(
                "`x` must yield at least one batch. Received: an empty "
                "tf.data.Dataset (cardinality 0)"
            )
        return
    if x is None:
        return
    for value in tf.nest.flatten(x):
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) and shape[0] == 0:
            raise ValueError(
                "`x` must hold at least one example. "
                f"Received: x with shape {tuple(shape)}"
            )


def _optimizer_steps(model):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    return int(optimizer.iterations.numpy())


def _stdout_is_terminal():
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _resolve_verbose(verbose):
    """Keras' "auto" (1), except off a terminal: one line per epoch (2)."""
    if verbose == "auto":
        return 1 if _stdout_is_terminal() else 2
    return verbose


class _BlendedLoss(keras.metrics.Metric):
    """The reported `loss`, derived from the part-loss trackers' results."""

    def __init__(self, blend, name="loss"):
        super().__init__(name=name)
        self._blend = blend

    def update_state(self, *args, **kwargs):
        pass

    def reset_state(self):
        pass

    def result(self):
        return self._blend()
