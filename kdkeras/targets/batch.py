"""The batch contract between the soft-target pipelines and the Distiller.

A batch's targets are either plain labels `y`, or a dict
`{LABELS_KEY: y, TEACHER_LOGITS_KEY: t}` carrying the teacher's logits `t`
computed outside the training step (cached offline or in the input pipeline).
Every producer writes these keys and every consumer reads them through
`split_targets`: the dict is spelled in this module only.

Labels may be missing or partial. A batch without labels is `x` alone, or
`(x, {TEACHER_LOGITS_KEY: t})`. In a partly labelled batch an unlabelled
example has the sparse label `UNLABELLED` (-1), or, for one-hot or soft
labels, an all-zero row (no class has probability: it cannot be a target
distribution, and a cross-entropy against it is 0 anyway).
"""

#: Key of the hard labels in a target dict.
LABELS_KEY = "labels"
#: Key of the teacher's logits in a target dict.
TEACHER_LOGITS_KEY = "teacher_logits"
#: Sparse label of an unlabelled example (one-hot labels: an all-zero row).
UNLABELLED = -1


def split_targets(y):
    """Splits a batch's targets into labels and precomputed teacher logits.

    Args:
        y: plain labels, or a dict with `TEACHER_LOGITS_KEY` (and `LABELS_KEY`).

    Returns:
        `(labels, teacher_logits)`; `teacher_logits` is `None` for plain labels.

    Example:

    >>> split_targets({"labels": [1, 2], "teacher_logits": [[0.5], [0.1]]})
    ([1, 2], [[0.5], [0.1]])
    >>> split_targets([1, 2])
    ([1, 2], None)
    """
    if isinstance(y, dict) and TEACHER_LOGITS_KEY in y:
        return y.get(LABELS_KEY), y[TEACHER_LOGITS_KEY]
    return y, None
