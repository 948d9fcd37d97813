"""The loss of one `Distiller` step, from the outputs of its forward passes.

    loss = alpha * student_loss + (1 - alpha) * distillation_loss + hint_loss

Each part is reduced as `kdkeras._step.reductions` describes: per-example values
times sample weights, summed, divided by a global count (the examples of the
step, or for the hard-label loss its LABELLED examples: 0 labelled, the part
is 0). A loss's batch-level term (DIST's intra-class correlation) is added
once per global batch, with the gradient of each replica's examples.
"""

import tensorflow as tf
from keras import ops

from kdkeras import hints as hints_lib
from kdkeras._step import labels as labels_lib
from kdkeras._step.reductions import global_sum
from kdkeras._step.reductions import per_example_loss
from kdkeras.losses import _soft_target as soft_target_loss


def step_loss(
    student_outputs,
    teacher_outputs,
    labels,
    sample_weight,
    *,
    alpha,
    temperature,
    student_loss_fn,
    distillation_loss_fn,
    hints=(),
    projections=(),
    num_classes=None,
):
    """The step's loss and the per-example values its metrics report.

    Args:
        student_outputs: `(student_logits, student_features)`, one feature
            tensor per hint.
        teacher_outputs: `(teacher_logits or TopKTargets, teacher_features)`.
        labels: The batch's labels (`kdkeras._step.labels`), or `None`.
        sample_weight: Optional `(batch,)` weights.
        alpha: Weight in [0, 1] of the hard-label loss.
        temperature: The soft-target temperature
            (`kdkeras.losses._soft_target.resolve_temperature`).
        student_loss_fn: Loss between labels and student logits.
        distillation_loss_fn: `None`, a `LogitsDistillationLoss` or a Keras
            loss (`kdkeras.losses._soft_target.soft_target_values`).
        hints: The `kdkeras.Hint`s.
        projections: One projection layer (or `None`) per hint.
        num_classes: The student's number of classes, or `None`.

    Returns:
        A dict: `loss` (scalar), `values` (per-example weighted values of
        `student_loss`, `distillation_loss` and with hints `hint_loss`),
        `mask` (1 for a labelled example), `labels` (the loss's labels, or
        `None`), `student_logits`, `teacher_logits`, `sample_weight`.

    Example:

    >>> import numpy as np, keras
    >>> logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], "float32")
    >>> step = step_loss((logits, []), (logits, []), np.array([0, -1]), None,
    ...     alpha=0.5, temperature=2.0, distillation_loss_fn=None,
    ...     student_loss_fn=keras.losses.SparseCategoricalCrossentropy(
    ...         from_logits=True))
    >>> step["mask"].numpy().tolist()  # the second example is unlabelled
    [1.0, 0.0]
    >>> cross_entropy = np.log(np.exp(logits[0]).sum()) - logits[0, 0]
    >>> bool(np.isclose(step["loss"], 0.5 * cross_entropy))  # the labelled one
    True
    """
    student_logits, student_features = student_outputs
    teacher_logits, teacher_features = teacher_outputs
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
        loss_labels, mask, targets = labels_lib.label_parts(labels, num_classes)
        student_values = mask * per_example_loss(
            student_loss_fn, loss_labels, student_logits
        )
    # One all-reduce for both counts; a loss's own all-reduces (DIST) come
    # after it: replicas must issue collectives in the same order.
    local_examples = ops.cast(batch, "float32")
    counts = global_sum(ops.stack([local_examples, ops.sum(mask)]))
    examples, labelled = counts[0], counts[1]
    with tf.control_dependencies([counts]):
        distillation_values, batch_term = soft_target_loss.soft_target_values(
            distillation_loss_fn,
            teacher_logits,
            student_logits,
            temperature,
            targets,
            sample_weight,
        )
    values = {
        "student_loss": weight * student_values,
        "distillation_loss": weight * distillation_values,
    }
    if hints:
        values["hint_loss"] = weight * hints_lib.hint_values(
            hints, projections, student_features, teacher_features
        )

    soft = ops.sum(values["distillation_loss"]) / examples
    if batch_term is not None:
        # A batch-level term (DIST's intra-class correlation) has the global
        # batch's value on every replica and, as gradient, the part through
        # this replica's examples: each replica adds its share of the value
        # and the whole of its gradient.
        constant = ops.stop_gradient(batch_term)
        soft = soft + (batch_term - constant) + (constant * local_examples / examples)
        values["distillation_loss"] = values["distillation_loss"] + batch_term
    loss = (
        alpha * tf.math.divide_no_nan(ops.sum(values["student_loss"]), labelled)
        + (1.0 - alpha) * soft
    )
    if hints:
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
