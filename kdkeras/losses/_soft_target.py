"""The soft-target term of a `Distiller` step, for any distillation loss.

Which loss runs on what (`soft_target_values`):

- top-k teacher targets: `kdkeras.losses.top_k_kd_loss_per_example`;
- the default (`distillation_loss_fn=None`): the fused, stable
  `kdkeras.losses.kd_loss_per_example`;
- a `kdkeras.losses.LogitsDistillationLoss` (`KnowledgeDistillation`, `DKD`,
  `DIST`): its `per_example` on the raw logits (with the target classes)
  and its `batch_loss`, at its own temperature;
- any other Keras loss, as in the keras.io example: on `softmax(t / T)` and
  `softmax(s / T)`, times `T²`.

`resolve_temperature` says which temperature `T` that is.
"""

from keras import ops

from kdkeras import losses
from kdkeras._step.reductions import per_example_loss
from kdkeras.targets import TopKTargets
from kdkeras.targets.topk import check_top_k_loss

#: The temperature of `Distiller.compile` when neither it nor the loss has one.
DEFAULT_TEMPERATURE = 3.0


def resolve_temperature(temperature, distillation_loss_fn):
    """The temperature of the soft-target term.

    A `LogitsDistillationLoss` carries its own: `temperature` must then be
    unset or equal to it. Otherwise `temperature` (checked by
    `kdkeras.losses.check_temperature`), or `DEFAULT_TEMPERATURE`.

    Args:
        temperature: `Distiller.compile`'s `temperature`, or `None`.
        distillation_loss_fn: `Distiller.compile`'s `distillation_loss_fn`.

    Returns:
        A float.

    Example:

    >>> resolve_temperature(None, losses.DKD(temperature=4.0))
    4.0
    >>> resolve_temperature(None, None), resolve_temperature(2, "kl_divergence")
    (3.0, 2.0)
    """
    if isinstance(distillation_loss_fn, losses.LogitsDistillationLoss):
        own = distillation_loss_fn.temperature
        if temperature is not None and (losses.check_temperature(temperature) != own):
            raise ValueError(
                "`temperature` must be left unset (or equal the loss's) with a "
                f"{type(distillation_loss_fn).__name__} distillation loss, "
                f"which carries its own (temperature={own}). "
                f"Received: temperature={temperature}"
            )
        return own
    if temperature is None:
        return DEFAULT_TEMPERATURE
    return losses.check_temperature(temperature)


def soft_target_values(
    loss_fn, teacher_logits, student_logits, temperature, targets, sample_weight
):
    """Per-example soft-target values and a batch-level term (or None).

    Args:
        loss_fn: The `distillation_loss_fn` (see the module docstring).
        teacher_logits: Full logits `(batch, classes)` or `TopKTargets`.
        student_logits: `(batch, classes)`.
        temperature: `resolve_temperature`'s answer.
        targets: int32 target classes `(batch,)`, `UNLABELLED` for an
            unlabelled example, or `None` (for `DKD`).
        sample_weight: Optional `(batch,)` weights (for a batch-level term).

    Returns:
        `(values, batch_term)`: float32 `(batch,)`, and a float32 scalar for
        a loss with a term over the batch (`DIST`), else `None`.

    Example:

    >>> import numpy as np
    >>> teacher = np.array([[2.0, 0.0, -1.0]], "float32")
    >>> values, batch_term = soft_target_values(
    ...     None, teacher, teacher, 3.0, None, None)
    >>> values.numpy().tolist(), batch_term
    ([0.0], None)
    """
    if isinstance(teacher_logits, TopKTargets):
        check_top_k_loss(loss_fn)
        return losses.top_k_kd_loss_per_example(
            teacher_logits.values,
            teacher_logits.indices,
            teacher_logits.tail,
            student_logits,
            temperature,
        ), None
    if loss_fn is None:
        return losses.kd_loss_per_example(
            teacher_logits, student_logits, temperature
        ), None
    if isinstance(loss_fn, losses.LogitsDistillationLoss):
        values = ops.cast(
            loss_fn.per_example(teacher_logits, student_logits, targets),
            "float32",
        )
        batch_term = loss_fn.batch_loss(teacher_logits, student_logits, sample_weight)
        if batch_term is not None:
            batch_term = ops.cast(batch_term, "float32")
        return values, batch_term
    soft_targets = ops.softmax(
        ops.cast(teacher_logits, "float32") / temperature, axis=-1
    )
    soft_predictions = ops.softmax(
        ops.cast(student_logits, "float32") / temperature, axis=-1
    )
    return temperature**2 * per_example_loss(
        loss_fn, soft_targets, soft_predictions
    ), None
