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

import keras
import tensorflow as tf
from keras import ops

from kdkeras import hints as hints_lib
from kdkeras import targets as soft_targets
from kdkeras._model_graph import known_shape
from kdkeras._step import arguments
from kdkeras._step import labels as labels_lib
from kdkeras._step import loss as step_loss
from kdkeras._step import metrics as step_metrics
from kdkeras._step.functions import XlaStepFunctions
from kdkeras._step.reductions import per_example_weight
from kdkeras.distribute import multi_worker
from kdkeras.losses import _soft_target as soft_target_loss
from kdkeras.targets import TopKTargets
from kdkeras.targets import split_targets
from kdkeras.targets.inputs import check_finite_logits
from kdkeras.targets.topk import check_array_top_k
from kdkeras.targets.topk import checked_top_k


class _Forward:
    """Plain holder (not tracked by Keras) of the logits/feature models.

    These models share layers with the student and teacher; keeping them out
    of Keras' tracking keeps every variable listed and saved exactly once.
    """

    def __init__(self, student, teacher):
        self.student = student
        self.teacher = teacher


@keras.saving.register_keras_serializable(package="kdkeras")
class Distiller(XlaStepFunctions, keras.Model):
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
    (see `kdkeras.targets`); the teacher then does not run at all. For
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
        arguments.check_model(student, "student")
        arguments.check_model(teacher, "teacher")
        arguments.check_compatible(student, teacher)
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
            student_features, teacher_features, self.projections = (
                hints_lib.feature_models(
                    self._forward.student, self._forward.teacher, self.hints
                )
            )
            self._forward = _Forward(student_features, teacher_features)
        self.alpha = 0.1
        self.temperature = soft_target_loss.DEFAULT_TEMPERATURE
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
                labelled examples only; NaN, not 0, for an epoch or an
                evaluation without a labelled example). Besides them, the history reports
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
                draws, which XLA runs slower there (`kdkeras._step.xla`; Keras' own
                "auto" turns XLA off on every CPU-only machine).
            **kwargs: Passed to `keras.Model.compile` (e.g.
                `steps_per_execution`, `run_eagerly`).
        """
        self._check_finite_weights()
        self.alpha = arguments.check_fraction("alpha", alpha)
        self.temperature = soft_target_loss.resolve_temperature(
            temperature, distillation_loss_fn
        )
        if student_loss_fn is None:
            student_loss_fn = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True
            )
        self.student_loss_fn = arguments.resolve_loss(
            student_loss_fn, "student_loss_fn"
        )
        self.distillation_loss_fn = arguments.resolve_loss(
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
        self._blended_loss = step_metrics.BlendedLoss(
            lambda: step_metrics.blend_results(self.alpha, self._loss_trackers)
        )

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

    def get_metrics_result(self):
        """The metrics' values; the compiled ones NaN over no labelled example.

        The compiled metrics (accuracy, ...) are updated over the labelled
        examples only: when an epoch (or an `evaluate`) saw none, a 0.0 would
        be a figure nothing measured, so they are reported as NaN, in the
        history and in `evaluate` alike.
        """
        logs = super().get_metrics_result()
        trackers = getattr(self, "_loss_trackers", None)
        compiled = self._compile_metrics
        if (
            not trackers
            or compiled is None
            or not any(metric is compiled for metric in self.metrics)
        ):
            return logs
        # `student_loss` is a mean weighted by the labelled mask: its count
        # is the (weighted) number of labelled examples seen.
        labelled = trackers["student_loss"].count > 0
        for name in compiled.result():
            logs[name] = ops.where(
                labelled, logs[name], ops.cast(float("nan"), logs[name].dtype)
            )
        return logs

    @contextlib.contextmanager
    def _labels_of(self, x, y, validation_data=None):
        """Within: compiled metrics are left out if the data has no labels."""
        previous = getattr(self, "_data_without_labels", False)
        self._data_without_labels = (
            labels_lib.has_labels(x, y) is False and validation_data is None
        )
        try:
            yield
        finally:
            self._data_without_labels = previous

    def get_compile_config(self):
        if not getattr(self, "_compile_arguments", None):
            return {}
        config = dict(self._compile_arguments)
        for key in ("optimizer", "student_loss_fn", "distillation_loss_fn"):
            config[key] = keras.saving.serialize_keras_object(config[key])
        config["metrics"] = keras.saving.serialize_keras_object(config["metrics"])
        return config

    def compile_from_config(self, config):
        config = dict(config)
        for key in ("optimizer", "student_loss_fn", "distillation_loss_fn", "metrics"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _ = split_targets(y)
        sample_weight = per_example_weight(sample_weight)
        if labels is not None:
            loss_labels, mask, _ = labels_lib.label_parts(labels, self._num_classes())
            step_metrics.update_compiled_metrics(
                self._compile_metrics, loss_labels, y_pred, mask, sample_weight
            )
        return self.get_metrics_result()

    def _num_classes(self):
        shape = known_shape(self.student, "output_shape")
        return shape[-1] if shape else None

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
        teacher_outputs = self._teacher_outputs(x, teacher_logits)
        outputs = self._forward.student(x, training=training)
        outputs = outputs if self.hints else [outputs]
        return step_loss.step_loss(
            (outputs[0], outputs[1:]),
            teacher_outputs,
            labels,
            sample_weight,
            alpha=self.alpha,
            temperature=self.temperature,
            student_loss_fn=self.student_loss_fn,
            distillation_loss_fn=self.distillation_loss_fn,
            hints=self.hints,
            projections=self.projections,
            num_classes=self._num_classes(),
        )

    def _train_core(self, x, labels, teacher_logits, sample_weight):
        """`(logs, teacher checks)`; no update from unusable teacher logits."""
        with tf.GradientTape() as tape:
            step = self._step_losses(
                x, labels, teacher_logits, sample_weight, training=True
            )
            scaled_loss = self.optimizer.scale_loss(step["loss"])
        trainable_variables = self.trainable_variables
        gradients = tape.gradient(scaled_loss, trainable_variables)
        teacher_checks = _teacher_checks(step["teacher_logits"])
        teacher_usable = ops.logical_and(*teacher_checks)
        gradients = [
            ops.where(teacher_usable, gradient, ops.zeros_like(gradient))
            if isinstance(gradient, tf.Tensor)
            else gradient
            for gradient in gradients
        ]
        self.optimizer.apply_gradients(zip(gradients, trainable_variables, strict=True))
        step_metrics.update_step_metrics(
            self._loss_trackers, self._compile_metrics, step
        )
        return self.get_metrics_result(), teacher_checks

    def _test_core(self, x, labels, teacher_logits, sample_weight):
        step = self._step_losses(
            x, labels, teacher_logits, sample_weight, training=False
        )
        step_metrics.update_step_metrics(
            self._loss_trackers, self._compile_metrics, step
        )
        return self.get_metrics_result(), _teacher_checks(step["teacher_logits"])

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        sample_weight = per_example_weight(sample_weight)
        labels, teacher_logits = split_targets(y)
        labels_lib.check_alpha_with_labels(self.alpha, labels is not None)
        if teacher_logits is not None:
            # At trace time: cached targets are wrong for augmented inputs.
            soft_targets.check_no_augmentation(student=self.student)
        labels = labels_lib.checked_labels(labels, self._num_classes())
        sample_weight = labels_lib.checked_sample_weight(sample_weight)
        teacher_logits = checked_top_k(
            teacher_logits, self.temperature, self.distillation_loss_fn
        )
        step = self._step_core("train")
        return _checked_teacher(*step(x, labels, teacher_logits, sample_weight))

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        sample_weight = per_example_weight(sample_weight)
        labels, teacher_logits = split_targets(y)
        labels = labels_lib.checked_labels(labels, self._num_classes())
        sample_weight = labels_lib.checked_sample_weight(sample_weight)
        teacher_logits = checked_top_k(
            teacher_logits, self.temperature, self.distillation_loss_fn
        )
        step = self._step_core("test")
        return _checked_teacher(*step(x, labels, teacher_logits, sample_weight))

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
            and labels_lib.has_labels(x, y) is not False
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
        self._check_finite_weights()
        self._check_arrays(x, y, kwargs.get("sample_weight"))
        labels_lib.check_alpha_with_labels(self.alpha, labels_lib.has_labels(x, y))
        kwargs["verbose"] = arguments.resolve_verbose(kwargs.get("verbose", "auto"))
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
        self._check_arrays(x, y, sample_weight)
        self._forget_steps_traced_without_labels(x, y, "test_function")
        with self._labels_of(x, y):
            logs = super().evaluate(
                x,
                y,
                batch_size=batch_size,
                verbose=arguments.resolve_verbose(verbose),
                sample_weight=sample_weight,
                steps=steps,
                callbacks=callbacks,
                return_dict=True,
                **kwargs,
            )
        return logs if return_dict else self._as_keras_results(logs)

    def _as_keras_results(self, logs):
        """The loss, then the compiled metrics in order, as plain Keras lists."""
        parts = set(self._loss_trackers) | {"loss"}
        results = [logs["loss"]] + [
            value for name, value in logs.items() if name not in parts
        ]
        return results[0] if len(results) == 1 else results

    def train_on_batch(
        self, x, y=None, sample_weight=None, class_weight=None, return_dict=False
    ):
        """`keras.Model.train_on_batch`, returning what `evaluate` returns."""
        logs = super().train_on_batch(
            x,
            y,
            sample_weight=sample_weight,
            class_weight=class_weight,
            return_dict=True,
        )
        return logs if return_dict else self._as_keras_results(logs)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """`keras.Model.test_on_batch`, returning what `evaluate` returns."""
        logs = super().test_on_batch(
            x, y, sample_weight=sample_weight, return_dict=True
        )
        return logs if return_dict else self._as_keras_results(logs)

    def predict(self, x, batch_size=None, verbose="auto", **kwargs):
        """The student's `predict`; `verbose="auto"` as in `fit`."""
        return super().predict(
            x,
            batch_size=batch_size,
            verbose=arguments.resolve_verbose(verbose),
            **kwargs,
        )

    def _check_finite_weights(self):
        """Refuses a teacher or student holding a NaN or infinite weight.

        Checked on the weights (at `compile` and `fit`): through a ReLU, a NaN
        weight reaches the logits or not depending on the CPU and on XLA.
        """
        arguments.check_finite_weights(self.teacher, "teacher")
        arguments.check_finite_weights(self.student, "student")

    def _check_arrays(self, x, y, sample_weight=None):
        """Eager checks of array data: not empty, labels, weights, top-k targets."""
        arguments.check_not_empty(x)
        labels_lib.check_array_labels(y, self._num_classes())
        labels_lib.check_array_sample_weight(sample_weight)
        check_array_top_k(y, self.temperature, self.distillation_loss_fn)
        _, teacher_targets = split_targets(y)
        if isinstance(teacher_targets, TopKTargets):
            teacher_targets = teacher_targets.values
        if teacher_targets is not None and hasattr(teacher_targets, "shape"):
            check_finite_logits(ops.convert_to_numpy(teacher_targets))

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


def _teacher_checks(teacher_logits):
    """`(finite, logits)`: whether the batch's teacher targets are usable.

    `finite`: every teacher logit (or top-k logit) is finite. `logits`: the
    full teacher outputs are not rows of probabilities (every row in [0, 1]
    summing to 1), the backstop of `kdkeras.teachers.outputs_probabilities`
    for a softmax the graph does not show (a Lambda, a subclassed model,
    cached targets computed from probabilities).
    """
    if isinstance(teacher_logits, TopKTargets):
        return ops.all(ops.isfinite(teacher_logits.values)), ops.convert_to_tensor(True)
    finite = ops.all(ops.isfinite(teacher_logits))
    if teacher_logits.shape[-1] is not None and teacher_logits.shape[-1] < 2:
        return finite, ops.convert_to_tensor(True)
    values = ops.cast(teacher_logits, "float32")
    in_unit_range = ops.logical_and(ops.all(values >= 0.0), ops.all(values <= 1.0))
    sums_to_one = ops.all(ops.abs(ops.sum(values, axis=-1) - 1.0) <= 1e-3)
    return finite, ops.logical_not(ops.logical_and(in_unit_range, sums_to_one))


def _checked_teacher(logs, teacher_checks):
    """`logs`, after in-graph checks (outside XLA) of the teacher's outputs.

    A NaN or inf teacher logit makes every soft-target loss NaN; teacher
    outputs that are probabilities would be distilled as if they were
    logits. Either way the step is refused, with the student left as it
    was, instead of training on it.
    """
    finite, logits = teacher_checks
    checks = [
        tf.debugging.Assert(
            finite,
            [
                "`teacher_logits` must be finite. Received: NaN or inf in this "
                "batch's teacher logits (a diverged or float16-overflowing "
                "teacher, or non-finite cached targets); the student was not "
                "updated on this batch."
            ],
        ),
        tf.debugging.Assert(
            logits,
            [
                "`teacher` must output logits. Received: every row of this "
                "batch's teacher outputs is in [0, 1] and sums to 1, i.e. "
                "probabilities (a softmax the graph does not show: give the "
                "teacher without it, or kdkeras.teachers.logits_model(teacher)); "
                "the student was not updated on this batch."
            ],
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.nest.map_structure(tf.identity, logs)


def _optimizer_steps(model):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    return int(optimizer.iterations.numpy())
