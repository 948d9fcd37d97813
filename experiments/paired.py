"""One compiled step that trains a distilled student and its baseline.

A comparison of distillation is honest when the student alone (the
baseline) and the distilled student start from the same weights, see the
same batches in the same order and follow the same schedule. `PairedStudents`
makes that literal: each training step takes ONE batch of cached soft
targets, `(x, {LABELS_KEY: y, TEACHER_LOGITS_KEY: t})`, and advances both,

- the `kdkeras.Distiller` through its own `train_step` (its label checks,
  its loss, its optimizer, its XLA decision), and
- the baseline, a compiled `keras.Model`, through its own `train_step` on
  `(x, y)` (hard-label loss, its own optimizer, the same schedule),

in one graph. The two updates share nothing (each model has its own
variables and optimizer), so every weight ends where the two separate `fit`
calls would take it; but the batch is drawn once, the Python and dispatch
cost of a step is paid once, and TensorFlow runs the two students' kernels
side by side on two cores (figures in BENCHMARKS.md,
`python -m benchmarks.compact_student_throughput`).
"""

import keras
import tensorflow as tf

from kdkeras import targets as targets_lib

#: Prefix of the baseline's entries in the logs.
ALONE_PREFIX = "alone_"


class PairedStudents(keras.Model):
    """A distilled student and its baseline, trained in one step.

    Args:
        distiller: A compiled `kdkeras.Distiller`.
        alone: A compiled `keras.Model`, the baseline, trained on the labels.

    The logs hold the distiller's entries (`loss`, `student_loss`,
    `distillation_loss`, ...) and the baseline's prefixed `alone_`. Compile
    it with `steps_per_execution` only (`compile(steps_per_execution=32)`):
    the two models keep their own optimizers and losses.
    """

    def __init__(self, distiller, alone, **kwargs):
        super().__init__(**kwargs)
        for name, model in (("distiller", distiller), ("alone", alone)):
            if getattr(model, "optimizer", None) is None:
                raise ValueError(
                    f"`{name}` must be a compiled keras.Model. "
                    f"Received: {name}={str(model)[:80]}"
                )
        self.distiller = distiller
        self.alone = alone

    def compile(self, steps_per_execution=1):
        # No optimizer of its own: the two models' optimizers step.
        super().compile(
            optimizer=keras.optimizers.SGD(0.0),
            jit_compile=False,  # each model keeps its own XLA decision
            steps_per_execution=steps_per_execution,
        )

    @property
    def metrics(self):
        # Keras resets `metrics` at every epoch: the two models' trackers.
        return list(self.distiller.metrics) + list(self.alone.metrics)

    def call(self, inputs, training=None):
        return self.distiller(inputs, training=training)

    def make_train_function(self, force=False):
        # The distiller prepares its XLA-compiled step core here.
        self.distiller.make_train_function(force=force)
        step = self.alone.train_step
        if self.alone.jit_compile:
            step = tf.function(step, jit_compile=True, reduce_retracing=True)
        self._alone_step = step
        return super().make_train_function(force=force)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        labels, _ = targets_lib.split_targets(y)
        if labels is None:
            raise ValueError(
                "`PairedStudents` trains the baseline on labels: every batch "
                "must carry them. Received: targets without "
                f"{targets_lib.LABELS_KEY!r}"
            )
        logs = dict(self.distiller.train_step(data))
        alone = self._alone_step(
            keras.utils.pack_x_y_sample_weight(x, labels, sample_weight)
        )
        logs.update({ALONE_PREFIX + key: value for key, value in alone.items()})
        return logs

    def test_step(self, data):
        raise NotImplementedError(
            "`PairedStudents` only trains: evaluate `distiller` and `alone`."
        )
