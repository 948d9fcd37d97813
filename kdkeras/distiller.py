"""`Distiller`: a `keras.Model` that trains a student on a teacher's soft targets.

One training step (Hinton, Vinyals & Dean 2015):

    loss = alpha * student_loss(labels, student_logits)
         + (1 - alpha) * T² · KL(softmax(teacher_logits / T) ‖ softmax(student_logits / T))
         + Σ hint.weight * hint_loss                      (optional FitNets hints)

Every loss is reduced the same way: per-example values times sample weights,
summed, and divided by the GLOBAL batch size (the sum of the replicas' batch
sizes). Under `tf.distribute` the gradients are summed across replicas, so
the step, and every reported number, equals the single-device step at the same
global batch.
"""

import numbers
import warnings

import keras
import tensorflow as tf
from keras import ops
from keras.src.trainers.data_adapters.data_adapter_utils import (
    unpack_x_y_sample_weight,
)
from tensorflow.python.framework.config import is_op_determinism_enabled

from kdkeras import hints as hints_lib
from kdkeras import losses as losses_lib
from kdkeras import soft_targets
from kdkeras import xla
from kdkeras.distribute import multi_worker
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
    if student_input and teacher_input and (
        student_input[1:] != teacher_input[1:]
    ):
        raise ValueError(
            "`teacher` and `student` must take the same input shape. "
            f"Received: teacher input {teacher_input[1:]}, "
            f"student input {student_input[1:]}"
        )
    student_output = _known_shape(student, "output_shape")
    teacher_output = _known_shape(teacher, "output_shape")
    if student_output and teacher_output and (
        student_output[-1] != teacher_output[-1]
    ):
        raise ValueError(
            "`teacher` and `student` must output the same number of classes. "
            f"Received: teacher {teacher_output[-1]} classes, "
            f"student {student_output[-1]} classes"
        )


def _check_fraction(value, argument):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{argument}` must be a number in [0, 1]. "
            f"Received: {argument}={value!r}"
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
    (see `kdkeras.soft_targets`); the teacher then does not run at all.

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
    ['accuracy', 'distillation_loss', 'loss', 'student_loss']
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
            for index, hint in enumerate(self.hints):
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
        temperature=3.0,
        jit_compile="auto",
        **kwargs,
    ):
        """Configures the distiller for training.

        Args:
            optimizer: Optimizer (instance or name) for the student.
            metrics: Metrics of the student against the labels.
            student_loss_fn: Loss between labels and student logits. Defaults
                to `SparseCategoricalCrossentropy(from_logits=True)`.
            distillation_loss_fn: None (default) uses the fused, stable
                `kdkeras.losses.kd_loss`. Otherwise a Keras loss called as in
                the keras.io example, on `softmax(teacher/T)` and
                `softmax(student/T)`, and multiplied by `T²`.
            alpha: Weight in [0, 1] of the student (hard-label) loss; the
                soft-target loss gets `1 - alpha`.
            temperature: Softmax temperature `T > 0`.
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
        self.temperature = losses_lib._check_temperature(temperature)
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
            optimizer=optimizer, metrics=metrics, jit_compile=jit_compile,
            **kwargs,
        )
        names = ["loss", "student_loss", "distillation_loss"]
        if self.hints:
            names.append("hint_loss")
        self._loss_trackers = {
            name: keras.metrics.Mean(name=name) for name in names
        }

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
        # online its convolutions lose less to XLA (1.24x) than a dense
        # student's step gains (1.25x).
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
            for layer in model._flatten_layers()
        )

    @property
    def jit_compile(self):
        if self._jit_compile is None:
            self._jit_compile = self._auto_jit_compile(False)
        return self._jit_compile

    @jit_compile.setter
    def jit_compile(self, value):
        # Keras' setter checks the teacher's training-only layers too.
        if value and not self._supports_jit():
            warnings.warn(
                "The student, teacher or hint projections contain a layer "
                "that XLA cannot compile: proceeding with jit_compile=False."
            )
            value = False
        self._jit_compile = value

    @property
    def metrics(self):
        trackers = getattr(self, "_loss_trackers", None)
        if trackers is None:
            return super().metrics
        metrics = list(trackers.values())
        if self._compile_metrics is not None:
            metrics.append(self._compile_metrics)
        return metrics

    def get_compile_config(self):
        if not getattr(self, "_compile_arguments", None):
            return {}
        arguments = dict(self._compile_arguments)
        for key in ("optimizer", "student_loss_fn", "distillation_loss_fn"):
            arguments[key] = keras.saving.serialize_keras_object(arguments[key])
        arguments["metrics"] = keras.saving.serialize_keras_object(
            arguments["metrics"]
        )
        return arguments

    def compile_from_config(self, config):
        config = dict(config)
        for key in (
            "optimizer", "student_loss_fn", "distillation_loss_fn", "metrics"
        ):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # ----------------------------------------------------------------- steps

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _ = split_targets(y)
        return super().compute_metrics(x, labels, y_pred, sample_weight)

    def _teacher_outputs(self, x, teacher_logits):
        """Teacher logits (and hint features) for a batch, never trained."""
        if teacher_logits is not None and not self.hints:
            return ops.stop_gradient(teacher_logits), []
        outputs = self._forward.teacher(x, training=False)
        outputs = outputs if self.hints else [outputs]
        outputs = [ops.stop_gradient(output) for output in outputs]
        if teacher_logits is not None:
            outputs[0] = ops.stop_gradient(teacher_logits)
        return outputs[0], outputs[1:]

    def _loss_parts(self, x, labels, teacher_logits, sample_weight, training):
        """Weighted per-example loss parts and the student logits."""
        teacher_logits, teacher_features = self._teacher_outputs(
            x, teacher_logits
        )
        outputs = self._forward.student(x, training=training)
        outputs = outputs if self.hints else [outputs]
        student_logits, student_features = outputs[0], outputs[1:]
        parts = {
            "student_loss": _per_example(
                self.student_loss_fn, labels, student_logits
            ),
            "distillation_loss": self._distillation_per_example(
                teacher_logits, student_logits
            ),
        }
        total = (
            self.alpha * parts["student_loss"]
            + (1.0 - self.alpha) * parts["distillation_loss"]
        )
        if self.hints:
            hint_total = 0.0
            for hint, projection, student_feature, teacher_feature in zip(
                self.hints, self.projections, student_features, teacher_features
            ):
                if projection is not None:
                    student_feature = projection(student_feature)
                hint_total = hint_total + hint.weight * (
                    losses_lib.hint_loss_per_example(
                        teacher_feature, ops.cast(student_feature, "float32")
                    )
                )
            parts["hint_loss"] = hint_total
            total = total + hint_total
        parts["loss"] = total
        if sample_weight is not None:
            weight = ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
            parts = {key: value * weight for key, value in parts.items()}
        return parts, student_logits

    def _distillation_per_example(self, teacher_logits, student_logits):
        if self.distillation_loss_fn is None:
            return losses_lib.kd_loss_per_example(
                teacher_logits, student_logits, self.temperature
            )
        soft_targets = ops.softmax(
            ops.cast(teacher_logits, "float32") / self.temperature, axis=-1
        )
        soft_predictions = ops.softmax(
            ops.cast(student_logits, "float32") / self.temperature, axis=-1
        )
        return self.temperature**2 * _per_example(
            self.distillation_loss_fn, soft_targets, soft_predictions
        )

    def _update_trackers(self, parts):
        for name, tracker in self._loss_trackers.items():
            tracker.update_state(parts[name])

    def train_step(self, data):
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        labels, teacher_logits = split_targets(y)
        if teacher_logits is not None:
            # At trace time: cached targets are wrong for augmented inputs.
            soft_targets.check_no_augmentation(student=self.student)
        with tf.GradientTape() as tape:
            parts, student_logits = self._loss_parts(
                x, labels, teacher_logits, sample_weight, training=True
            )
            loss = ops.sum(parts["loss"]) / _global_batch_size(parts["loss"])
            scaled_loss = self.optimizer.scale_loss(loss)
        trainable_variables = self.trainable_variables
        gradients = tape.gradient(scaled_loss, trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, trainable_variables))
        self._update_trackers(parts)
        return self.compute_metrics(x, labels, student_logits, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        labels, teacher_logits = split_targets(y)
        parts, student_logits = self._loss_parts(
            x, labels, teacher_logits, sample_weight, training=False
        )
        self._update_trackers(parts)
        return self.compute_metrics(x, labels, student_logits, sample_weight)

    def fit(self, x=None, y=None, **kwargs):
        """`keras.Model.fit`, also under MultiWorkerMirroredStrategy.

        Keras 3's own `fit` fails under MultiWorkerMirroredStrategy
        (keras-team/keras#20585) and cannot resume a `BackupAndRestore`
        backup taken mid-epoch; those runs go through the small distributed
        loop in `kdkeras.distribute.multi_worker` (see BUILD.md), the others through
        Keras' `fit` unchanged.
        """
        if multi_worker.needs_multi_worker_fit(
            self.distribute_strategy, kwargs.get("callbacks")
        ):
            return multi_worker.fit(self, x, y, **kwargs)
        return super().fit(x, y, **kwargs)

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
        config["student"] = keras.saving.deserialize_keras_object(
            config["student"]
        )
        config["teacher"] = keras.saving.deserialize_keras_object(
            config["teacher"]
        )
        return cls(**config)


def _global_batch_size(per_example):
    """The number of examples in this step across all replicas, as float32."""
    local = ops.cast(ops.shape(per_example)[0], "float32")
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return local
    return context.all_reduce(tf.distribute.ReduceOp.SUM, local)
