"""The batch contract between the soft-target pipelines and the Distiller.

A batch's targets are either plain labels `y`, or a dict carrying the
teacher's targets computed outside the training step (cached offline or in
the input pipeline), in one of two forms:

- full logits: `{LABELS_KEY: y, TEACHER_LOGITS_KEY: t}`;
- top-k targets (many classes, `kdkeras.targets.topk`):
  `{LABELS_KEY: y, TEACHER_TOP_K_VALUES_KEY: v, TEACHER_TOP_K_INDICES_KEY: i,
  TEACHER_TAIL_KEY: r, TEACHER_TEMPERATURE_KEY: T}`, the K largest teacher
  logits, their classes, the other classes' log-sum-exp at `T`, and `T`
  itself per example (the targets are valid at that temperature only; the
  Distiller refuses another). `top_k_target_dict` writes it;
- full logits expanded from top-k targets (`kdkeras.targets.topk`), valid
  at one temperature only: `{LABELS_KEY: y, TEACHER_LOGITS_KEY: t,
  TEACHER_TEMPERATURE_KEY: T}` (`TemperedLogits`; the Distiller refuses
  another temperature, whatever its loss).

Every producer writes these keys and every consumer reads them through
`split_targets` (`logits_batch` and `top_k_target_dict` write them): the dict
is spelled in this module only.

Labels may be missing or partial. A batch without labels is `x` alone, or
`(x, {TEACHER_LOGITS_KEY: t})` (or the top-k keys alone). In a partly
labelled batch an unlabelled example has the sparse label `UNLABELLED` (-1),
or, for one-hot or soft labels, an all-zero row (no class has probability:
it cannot be a target distribution, and a cross-entropy against it is 0
anyway).
"""

import collections

import numpy as np

from kdkeras.losses import check_temperature

#: Key of the hard labels in a target dict.
LABELS_KEY = "labels"
#: Key of the teacher's logits in a target dict.
TEACHER_LOGITS_KEY = "teacher_logits"
#: Key of the K largest teacher logits `(batch, K)` of top-k targets.
TEACHER_TOP_K_VALUES_KEY = "teacher_top_k_values"
#: Key of their int class indices `(batch, K)`.
TEACHER_TOP_K_INDICES_KEY = "teacher_top_k_indices"
#: Key of the other classes' log-sum-exp of `logit / T`, `(batch,)`.
TEACHER_TAIL_KEY = "teacher_top_k_tail"
#: Key of the temperature `T` the tail was computed at, `(batch,)`.
TEACHER_TEMPERATURE_KEY = "teacher_top_k_temperature"
#: Sparse label of an unlabelled example (one-hot labels: an all-zero row).
UNLABELLED = -1

TOP_K_KEYS = (
    TEACHER_TOP_K_VALUES_KEY,
    TEACHER_TOP_K_INDICES_KEY,
    TEACHER_TAIL_KEY,
    TEACHER_TEMPERATURE_KEY,
)

#: Top-k teacher targets of a batch, as `split_targets` returns them.
TopKTargets = collections.namedtuple(
    "TopKTargets", ["values", "indices", "tail", "temperature"]
)


#: Full teacher logits valid at one temperature only (expanded from top-k
#: targets), as `split_targets` returns them.
TemperedLogits = collections.namedtuple("TemperedLogits", ["logits", "temperature"])


def split_targets(y):
    """Splits a batch's targets into labels and precomputed teacher targets.

    Args:
        y: plain labels, or a dict with `TEACHER_LOGITS_KEY` or the four
            top-k keys (and optionally `LABELS_KEY`).

    Returns:
        `(labels, teacher_targets)`: `teacher_targets` is the logits, a
        `TopKTargets`, a `TemperedLogits` (logits and
        `TEACHER_TEMPERATURE_KEY` alone), or `None` for plain labels.

    Raises:
        ValueError: a dict with some of the top-k keys but not all, or with
            both full logits and top-k targets.

    Example:

    >>> split_targets({"labels": [1, 2], "teacher_logits": [[0.5], [0.1]]})
    ([1, 2], [[0.5], [0.1]])
    >>> split_targets([1, 2])
    ([1, 2], None)
    >>> labels, top_k = split_targets(top_k_target_dict(
    ...     [[2.0]], [[1]], [0.5], temperature=4.0, labels=[1]))
    >>> labels, top_k.indices.tolist(), top_k.temperature.tolist()
    ([1], [[1]], [4.0])
    """
    if not isinstance(y, dict):
        return y, None
    present = [key for key in TOP_K_KEYS if key in y]
    if present == [TEACHER_TEMPERATURE_KEY] and TEACHER_LOGITS_KEY in y:
        return y.get(LABELS_KEY), TemperedLogits(
            y[TEACHER_LOGITS_KEY], y[TEACHER_TEMPERATURE_KEY]
        )
    if present:
        if len(present) != len(TOP_K_KEYS) or TEACHER_LOGITS_KEY in y:
            raise ValueError(
                "`y` must hold all of the top-k keys "
                f"{', '.join(TOP_K_KEYS)} (and not {TEACHER_LOGITS_KEY!r}) "
                f"to carry top-k targets. Received: keys {sorted(y)}"
            )
        return y.get(LABELS_KEY), TopKTargets(*(y[key] for key in TOP_K_KEYS))
    if TEACHER_LOGITS_KEY in y:
        return y.get(LABELS_KEY), y[TEACHER_LOGITS_KEY]
    return y, None


def logits_batch(x, teacher_logits, labels=None, sample_weight=None):
    """A training batch with full teacher logits, as the pipelines yield it.

    Args:
        x: The batch's inputs.
        teacher_logits: Its teacher logits `(batch, classes)`.
        labels: Optional labels, stored under `LABELS_KEY`.
        sample_weight: Optional weights `(batch,)`.

    Returns:
        `(x, targets)`, or `(x, targets, sample_weight)` with weights;
        `targets` holds `TEACHER_LOGITS_KEY` (and `LABELS_KEY`).

    Example:

    >>> x, targets = logits_batch([[0.5]], [[2.0, 1.0]], labels=[0])
    >>> sorted(targets)
    ['labels', 'teacher_logits']
    >>> len(logits_batch([[0.5]], [[2.0, 1.0]], sample_weight=[1.0]))
    3
    """
    targets = {TEACHER_LOGITS_KEY: teacher_logits}
    if labels is not None:
        targets[LABELS_KEY] = labels
    if sample_weight is None:
        return x, targets
    return x, targets, sample_weight


def top_k_target_dict(values, indices, tail, temperature, labels=None):
    """The target dict of top-k teacher targets (NumPy, for `fit(x, y)`).

    Args:
        values: `(examples, K)` teacher logits of the top-K classes.
        indices: `(examples, K)` their int class indices.
        tail: `(examples,)` log-sum-exp of the other classes' `logit / T`.
        temperature: The temperature `T` the tail was computed at.
        labels: Optional labels, stored under `LABELS_KEY`.

    Returns:
        A dict with the top-k keys (and `LABELS_KEY` if `labels` is given).

    Example:

    >>> targets = top_k_target_dict([[2.0]], [[1]], [0.5], temperature=4.0)
    >>> targets[TEACHER_TEMPERATURE_KEY].tolist(), len(targets)
    ([4.0], 4)
    """
    temperature = check_temperature(temperature)
    tail = np.asarray(tail, dtype=np.float32)
    targets = {
        TEACHER_TOP_K_VALUES_KEY: np.asarray(values, dtype=np.float32),
        TEACHER_TOP_K_INDICES_KEY: np.asarray(indices, dtype=np.int32),
        TEACHER_TAIL_KEY: tail,
        TEACHER_TEMPERATURE_KEY: np.full(tail.shape, temperature, dtype=np.float32),
    }
    if labels is not None:
        targets[LABELS_KEY] = labels
    return targets
