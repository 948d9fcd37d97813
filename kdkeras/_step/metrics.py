"""What a `Distiller` step reports besides its loss, and how.

The history of a `Distiller` holds `loss` (`BlendedLoss`, the parts' means
blended as in the step), `student_loss` (mean over the labelled examples),
`distillation_loss`, `hint_loss` (with hints), `teacher_agreement` (the
fraction of examples whose student top-1 class is the teacher's) and the
compiled metrics, updated over the labelled examples only
(`update_compiled_metrics`).
"""

import keras
from keras import ops

from kdkeras.targets import TopKTargets


class BlendedLoss(keras.metrics.Metric):
    """The reported `loss`, derived from the part-loss trackers' results.

    It holds no state: `result` calls `blend`, which reads the trackers of
    the parts, so the reported loss is always their blend.

    Args:
        blend: Callable `() -> scalar tensor`.
        name: Name of the metric.

    Example:

    >>> BlendedLoss(lambda: 0.25).result()
    0.25
    """

    def __init__(self, blend, name="loss"):
        super().__init__(name=name)
        self._blend = blend

    def update_state(self, *args, **kwargs):
        pass

    def reset_state(self):
        pass

    def result(self):
        return self._blend()


def blend_results(alpha, trackers):
    """The reported `loss`: the parts' means, blended as in the step.

    Args:
        alpha: The Distiller's `alpha`.
        trackers: The part-loss trackers by name (`update_step_metrics`).

    Returns:
        `alpha * student_loss + (1 - alpha) * distillation_loss (+ hint_loss)`.

    Example:

    >>> trackers = {"student_loss": keras.metrics.Mean(),
    ...             "distillation_loss": keras.metrics.Mean()}
    >>> trackers["student_loss"].update_state(2.0)
    >>> trackers["distillation_loss"].update_state(1.0)
    >>> float(blend_results(0.25, trackers))
    1.25
    """
    results = {name: tracker.result() for name, tracker in trackers.items()}
    loss = (
        alpha * results["student_loss"] + (1.0 - alpha) * results["distillation_loss"]
    )
    if "hint_loss" in results:
        loss = loss + results["hint_loss"]
    return loss


def teacher_classes(teacher_logits):
    """The teacher's top-1 class per example, int32 `(batch,)`.

    Args:
        teacher_logits: Full logits `(batch, classes)` or `TopKTargets`.

    Returns:
        int32 tensor `(batch,)`.

    Example:

    >>> import numpy as np
    >>> teacher_classes(np.array([[0.0, 2.0, 1.0]])).numpy().tolist()
    [1]
    """
    if isinstance(teacher_logits, TopKTargets):
        best = ops.argmax(teacher_logits.values, axis=-1)
        return ops.cast(
            ops.take_along_axis(
                teacher_logits.indices, ops.expand_dims(best, -1), axis=-1
            )[:, 0],
            "int32",
        )
    return ops.cast(ops.argmax(teacher_logits, axis=-1), "int32")


def update_compiled_metrics(compiled, labels, y_pred, mask, sample_weight):
    """Updates Keras' compiled metrics over the labelled examples only.

    Args:
        compiled: The model's compiled metrics (`model._compile_metrics`),
            or `None`.
        labels: The loss's labels (`kdkeras._step.labels.label_parts`).
        y_pred: The student's logits.
        mask: float32 `(batch,)`, 1 for a labelled example.
        sample_weight: Optional `(batch,)` weights, for the weighted metrics.
    """
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


def update_step_metrics(trackers, compiled, step):
    """Updates the part-loss trackers and the metrics from one step.

    Args:
        trackers: Dict of `keras.metrics.Mean` by name: `student_loss`,
            `distillation_loss`, `teacher_agreement` (and `hint_loss`).
        compiled: The model's compiled metrics, or `None`.
        step: The step's dict: `values` (per-example losses by part),
            `mask`, `labels`, `student_logits`, `teacher_logits`,
            `sample_weight`.
    """
    values, mask = step["values"], step["mask"]
    trackers["student_loss"].update_state(values["student_loss"], sample_weight=mask)
    trackers["distillation_loss"].update_state(values["distillation_loss"])
    if "hint_loss" in trackers:
        trackers["hint_loss"].update_state(values["hint_loss"])
    agreement = ops.cast(
        ops.equal(
            ops.cast(ops.argmax(step["student_logits"], axis=-1), "int32"),
            teacher_classes(step["teacher_logits"]),
        ),
        "float32",
    )
    sample_weight = step["sample_weight"]
    if sample_weight is not None:
        sample_weight = ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
    trackers["teacher_agreement"].update_state(agreement, sample_weight=sample_weight)
    if step["labels"] is not None:
        update_compiled_metrics(
            compiled, step["labels"], step["student_logits"], mask, sample_weight
        )
