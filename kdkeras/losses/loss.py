"""The temperature and weight checks and the base class of logit losses.

`LogitsDistillationLoss` is what the `Distiller` recognises as a loss on raw
teacher and student logits (`KnowledgeDistillation`, `DKD`, `DIST`), with its
own temperature; `check_temperature` bounds every softmax temperature in
kdkeras.
"""

import math

import keras
from keras import ops

from kdutils.checks import check_number

#: Lowest accepted softmax temperature. Below it `softmax(z / T)` is one-hot
#: for any logit gap above 1 (`exp(-1 / 0.05) ≈ 2e-9`, under float32's
#: resolution next to 1): the "soft" targets are hard labels.
MIN_TEMPERATURE = 0.05
#: Highest accepted softmax temperature. Above it the soft targets of
#: ordinary logits are uniform to within float32 rounding, and the `T²`-scaled
#: KL is dominated by that rounding (its relative error grows as `T²`).
MAX_TEMPERATURE = 100.0


def check_temperature(temperature, argument="temperature"):
    """Validates a softmax temperature; returns it as a float.

    Args:
        temperature: A finite number in `[MIN_TEMPERATURE, MAX_TEMPERATURE]`.
        argument: The argument's name in the error message.

    Returns:
        `float(temperature)`.

    Example:

    >>> check_temperature(4)
    4.0
    """
    bounds = f"in [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}]"
    temperature = check_number(
        argument,
        temperature,
        lambda t: MIN_TEMPERATURE <= t <= MAX_TEMPERATURE,
        f"a finite number {bounds}",
        expected_type=f"a number {bounds}",
    )
    return float(temperature)


def check_weight(value, argument):
    """Validates a loss weight: a finite number >= 0; returns it as a float.

    Example:

    >>> check_weight(8, "beta")
    8.0
    """
    value = check_number(
        argument,
        value,
        lambda v: math.isfinite(v) and v >= 0,
        "a finite number >= 0",
    )
    return float(value)


def float_logits(teacher_logits, student_logits):
    """Both logits as one float dtype (float32 under mixed precision).

    The teacher's logits get no gradient.

    Args:
        teacher_logits: Tensor `(batch, classes)`.
        student_logits: Tensor `(batch, classes)`.

    Returns:
        `(teacher_logits, student_logits)` in the student's float dtype,
        float32 for float16, bfloat16 or integer logits.

    Example:

    >>> import numpy as np
    >>> teacher, student = float_logits(np.ones((1, 2), "float64"), [[1, 2]])
    >>> teacher.dtype.name, student.dtype.name
    ('float32', 'float32')
    """
    student_logits = ops.convert_to_tensor(student_logits)
    dtype = student_logits.dtype
    if dtype in ("float16", "bfloat16") or "int" in str(dtype):
        dtype = "float32"
    student_logits = ops.cast(student_logits, dtype)
    teacher_logits = ops.cast(
        ops.stop_gradient(ops.convert_to_tensor(teacher_logits)), dtype
    )
    return teacher_logits, student_logits


class LogitsDistillationLoss(keras.losses.Loss):
    """Base class of distillation losses computed from logits.

    `y_true` are the teacher's logits and `y_pred` the student's. The
    `Distiller` recognises these losses: it calls `per_example` on the raw
    logits (with the batch's labels), adds `batch_loss`, and applies no
    softmax and no `T²` of its own: each loss carries its own `temperature`.

    Subclasses implement `per_example`; a loss with a term that is not a
    sum over examples (DIST's intra-class correlation) also implements
    `batch_loss`. Called as a Keras loss, `loss(teacher_logits,
    student_logits, sample_weight)` is the weighted mean of `per_example`
    (over the batch size) plus `batch_loss`.

    Args:
        temperature: The softmax temperature (`check_temperature`).
        name: Name of the loss.
        **weights: The loss's term weights by argument name (e.g. DKD's
            `alpha` and `beta`), each checked by `check_weight`, set as an
            attribute and saved by `get_config`.
    """

    def __init__(self, temperature, name=None, **weights):
        super().__init__(reduction="sum_over_batch_size", name=name)
        self.temperature = check_temperature(temperature)
        self.weight_names = tuple(weights)
        for argument, value in weights.items():
            setattr(self, argument, check_weight(value, argument))

    def per_example(self, teacher_logits, student_logits, labels=None):
        """Per-example values, shape `(batch,)`.

        Args:
            teacher_logits: `(batch, classes)`.
            student_logits: `(batch, classes)`.
            labels: Optional `(batch,)` integer classes, `-1` for an
                unlabelled example (used by losses that need the target
                class, such as `DKD`).
        """
        raise NotImplementedError

    def batch_loss(self, teacher_logits, student_logits, sample_weight=None):
        """The part of the loss that is not a sum over examples, or None.

        Computed over the GLOBAL batch: inside a `tf.distribute` replica
        context its statistics are all-reduced across the replicas.
        """
        return None

    def call(self, y_true, y_pred):
        return self.per_example(y_true, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None):
        value = super().__call__(y_true, y_pred, sample_weight=sample_weight)
        extra = self.batch_loss(y_true, y_pred, sample_weight)
        return value if extra is None else value + ops.cast(extra, value.dtype)

    def get_config(self):
        config = {"name": self.name, "temperature": self.temperature}
        config.update({name: getattr(self, name) for name in self.weight_names})
        return config
