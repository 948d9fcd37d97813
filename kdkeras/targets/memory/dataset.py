"""Training batches from cached soft targets, for `kdkeras.Distiller`.

`cached_array_dataset` yields `(x, {LABELS_KEY: y, TEACHER_LOGITS_KEY: t})`
batches (plus `sample_weight` when given), the input `kdkeras.Distiller`
trains on without a teacher forward pass. Without labels (`y=None`) the
targets are `{TEACHER_LOGITS_KEY: t}` alone; in partly labelled data, the
unlabelled examples' marker (e.g. label -1) passes through untouched, for the
Distiller to mask. Random augmentation of the student's input is refused
(`kdkeras.targets.augmentation`).
"""

import dataclasses

import numpy as np

from kdkeras.targets import inputs
from kdkeras.targets.augmentation import check_no_augmentation
from kdkeras.targets.batch import logits_batch


@dataclasses.dataclass(frozen=True)
class Batching:
    """How the training batches are drawn, whatever the storage.

    The arguments of that name of `kdkeras.targets.soft_target_dataset`
    (which documents them), gathered once and handed to the storage that
    batches: `cached_array_dataset` reads them, `keywords()` passes them to
    the sharded storage's function.
    """

    batch_size: int = 128
    shuffle: bool = True
    seed: object = None
    drop_remainder: bool = False
    augmentation: object = None
    student: object = None

    def keywords(self):
        """The settings as keyword arguments (not copied: `student` is a model)."""
        return {
            field.name: getattr(self, field.name) for field in dataclasses.fields(self)
        }


def cached_array_dataset(x, y, teacher_logits, sample_weight=None, batching=Batching()):
    """A `tf.data.Dataset` of `(x, {LABELS_KEY: y, TEACHER_LOGITS_KEY: t})`.

    The memory storage's batches. With `sample_weight`, elements are
    `(x, targets, sample_weight)`. Shuffling permutes example indices and
    gathers `x`, `y`, the teacher logits and the weights with the SAME
    indices, so every example keeps its own targets; it is reshuffled every
    epoch (deterministically for a given seed). Teacher logits are fed as
    float32 (a float16 cache is widened).

    Args:
        x: Inputs, NumPy array (or list/dict of arrays), `N >= 1` rows.
        y: Labels, `N` rows (sparse ints or one-hot), or `None` for
            unlabelled data (the targets then hold no `LABELS_KEY`). Labels
            are passed through as given, including the marker of an
            unlabelled example in partly labelled data (-1).
        teacher_logits: `(N, classes)` finite teacher logits.
        sample_weight: Optional `(N,)` per-example weights.
        batching: A `Batching`; its augmentation and student are checked
            for random augmentation (refused, `kdkeras.targets.augmentation`).

    Returns:
        A `tf.data.Dataset`, batched and prefetched.

    Example:

    >>> import numpy as np
    >>> x = np.arange(12, dtype="float32").reshape(6, 2)
    >>> unlabelled = cached_array_dataset(x, None, np.eye(6, 3), None, Batching(4))
    >>> [sorted(batch[1]) for batch in unlabelled]
    [['teacher_logits'], ['teacher_logits']]
    """
    import tensorflow as tf

    check_no_augmentation(student=batching.student, augmentation=batching.augmentation)
    batch_size = inputs.check_batch_size(batching.batch_size)
    count = inputs.check_rows(
        x,
        [
            ("y", y),
            ("teacher_logits", teacher_logits),
            ("sample_weight", sample_weight),
        ],
    )
    if np.ndim(teacher_logits) != 2:
        raise ValueError(
            "`teacher_logits` must be 2-D (examples, classes). "
            f"Received: shape {np.shape(teacher_logits)}"
        )
    teacher_logits = np.asarray(teacher_logits, "float32")
    inputs.check_finite_logits(teacher_logits)

    # A list of inputs as a tuple: tf.data would stack a list into one tensor.
    x_tensors = tf.nest.map_structure(
        tf.convert_to_tensor, tuple(x) if isinstance(x, list) else x
    )
    y_tensor = None if y is None else tf.convert_to_tensor(y)
    logits_tensor = tf.convert_to_tensor(teacher_logits)
    weight_tensor = (
        None
        if sample_weight is None
        else tf.convert_to_tensor(inputs.finite_weights(sample_weight))
    )

    def gather(indices):
        def rows(tensor):
            return None if tensor is None else tf.gather(tensor, indices)

        return logits_batch(
            tf.nest.map_structure(rows, x_tensors),
            rows(logits_tensor),
            labels=rows(y_tensor),
            sample_weight=rows(weight_tensor),
        )

    return index_batches(
        count,
        gather,
        batch_size,
        batching.shuffle,
        batching.seed,
        batching.drop_remainder,
    )


def index_batches(count, gather, batch_size, shuffle, seed, drop_remainder):
    """Batches of example indices (reshuffled every epoch), mapped by `gather`.

    Gathering whole batches by index keeps every array of an example
    together under shuffling, and is faster than per-example slicing.

    Args:
        count: Number of examples.
        gather: Maps an int64 index vector to a batch element.
        batch_size: Positive int.
        shuffle: Whether to reshuffle every epoch.
        seed: Optional shuffle seed.
        drop_remainder: Drop the last incomplete batch.

    Returns:
        A prefetched `tf.data.Dataset`.

    Example:

    >>> import tensorflow as tf
    >>> dataset = index_batches(5, lambda i: i * 10, 2, False, None, False)
    >>> [batch.numpy().tolist() for batch in dataset]
    [[0, 10], [20, 30], [40]]
    """
    import tensorflow as tf

    indices = tf.data.Dataset.range(count)
    if shuffle:
        indices = indices.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    dataset = indices.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
