"""How a `Distiller`'s step functions are traced, and when with XLA.

A step first checks its batch in the graph (label range, top-k temperature:
`tf.debugging.Assert`), which XLA would drop (and on CPU an out-of-range label
becomes a NaN loss). So Keras' own step function stays out of XLA, and only
the core of the step, after the checks, is compiled with XLA
(`XlaStepFunctions`). `jit_compile="auto"` uses XLA unless running eagerly,
under a multi-replica strategy, with op determinism enabled, or with a layer
that does not support XLA; on a CPU-only machine, also not when a trained
model has layers XLA runs slower there (`kdkeras._step.xla`).
"""

import warnings

import tensorflow as tf
from tensorflow.python.framework.config import is_op_determinism_enabled

from kdkeras import _random_layers as random_layers
from kdkeras._step import xla
from kdkeras.targets.augmentation import inference_supports_jit


class XlaStepFunctions:
    """Mixin of a `keras.Model`: Keras' step functions around XLA-compiled cores.

    The model (a `Distiller`) provides `student`, `teacher` and
    `projections` (the hint projections, `None` for the identity), and the
    cores of its steps, `_train_core` and `_test_core`, which its
    `train_step` and `test_step` call through `_step_core` after their
    checks.
    """

    def _step_core(self, kind):
        """The core of the `"train"` or `"test"` step, XLA-compiled or not."""
        core = self._train_core if kind == "train" else self._test_core
        return getattr(self, "_xla_steps", {}).get(kind, core)

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
        # On CPU, XLA only where it is faster than TF's kernels (`kdkeras._step.xla`).
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
        return inference_supports_jit(self.teacher) and all(
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
