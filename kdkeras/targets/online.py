"""Online soft targets computed by the input pipeline, one batch ahead.

`online_soft_target_dataset` runs the teacher on every batch inside a
`tf.data` map and prefetches the result, so the teacher's forward pass for
the next batch runs while the student trains on this one. The Distiller
receives `(x, {LABELS_KEY: y, TEACHER_LOGITS_KEY: t})` (`kdkeras.targets.batch`;
without labels, `{TEACHER_LOGITS_KEY: t}`), exactly what it gets from cached
soft targets, and its step contains no teacher at all.

Unlike cached soft targets, the teacher sees every batch as the student sees
it: with `augmentation`, each batch is augmented once and the SAME augmented
images go through the teacher and the student (consistent augmentation).

Where it pays: CPU training, where it can run the teacher faster than inside
the step (see BENCHMARKS.md). `tf.data` runs on the host CPU, so on a GPU
keep the default (the teacher inside `kdkeras.Distiller`'s step, on the
accelerator). It feeds
one device; under `tf.distribute` strategies, use the in-step teacher.
"""

import keras
import numpy as np

from kdkeras import teachers
from kdkeras._step import xla
from kdkeras.targets import inputs
from kdkeras.targets.augmentation import inference_supports_jit
from kdkeras.targets.batch import logits_batch
from kdkeras.targets.memory.dataset import index_batches


def _check_teacher(teacher):
    if not isinstance(teacher, keras.Model):
        raise ValueError(
            "`teacher` must be a keras.Model. "
            f"Received: teacher of type {type(teacher).__name__}"
        )
    if not teacher.built:
        raise ValueError(
            "`teacher` must be built (call it on data or give it an Input)."
        )


def _augmenter(augmentation):
    if augmentation is None:
        return None
    if isinstance(augmentation, keras.layers.Layer):
        return lambda images: augmentation(images, training=True)
    if callable(augmentation):
        return augmentation
    raise ValueError(
        "`augmentation` must be None, a keras layer or a callable mapping a "
        f"batch of inputs to a batch. Received: {augmentation!r}"
    )


def online_soft_target_dataset(
    x,
    y,
    teacher,
    batch_size=128,
    shuffle=True,
    seed=None,
    sample_weight=None,
    augmentation=None,
    jit_compile=None,
    drop_remainder=False,
):
    """Batches `(x, {LABELS_KEY: y, TEACHER_LOGITS_KEY: t})`, teacher per batch.

    Shuffling permutes example indices and gathers `x`, `y` and the weights
    with the same indices; the teacher then runs on the gathered (and, with
    `augmentation`, augmented) batch, so every example is paired with the
    teacher's logits for exactly the input the student trains on. The
    teacher runs in inference mode; a teacher whose output is a softmax is
    read through its exact pre-softmax logits (`kdkeras.teachers`).

    Args:
        x: Inputs, a NumPy array with `N >= 1` rows.
        y: Labels, `N` rows (sparse ints, one-hot or soft labels), or `None`
            for unlabelled data (the targets then hold no `LABELS_KEY`).
            Labels pass through as given, including the marker of an
            unlabelled example in partly labelled data (-1).
        teacher: A built `keras.Model` (or `kdkeras.Ensemble`).
        batch_size: Positive int.
        shuffle: Whether to reshuffle every epoch.
        seed: Optional int seed of the shuffle.
        sample_weight: Optional `(N,)` per-example weights.
        augmentation: Optional keras layer (called with `training=True`) or
            callable applied to each batch of `x` before the teacher and the
            student both see it.
        jit_compile: Compile the teacher's forward pass with XLA. `None`:
            when every teacher layer supports XLA (random augmentation
            layers, inactive at inference, excepted), op determinism is
            off and, on a CPU-only machine, the teacher has no convolution
            or pooling layer (`kdkeras._step.xla`: XLA runs those slower there).
        drop_remainder: Drop the last incomplete batch.

    Returns:
        A `tf.data.Dataset`, batched and prefetched. A batch whose teacher
        logits are not finite stops the iteration with an
        `InvalidArgumentError` naming them (never a NaN target).

    Example:

    >>> import numpy as np, keras
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.random.default_rng(0).random((10, 4), dtype=np.float32)
    >>> dataset = online_soft_target_dataset(x, np.arange(10) % 3, teacher, 4)
    >>> batch_x, targets = next(iter(dataset))
    >>> sorted(targets), tuple(targets["teacher_logits"].shape)
    (['labels', 'teacher_logits'], (4, 3))
    >>> unlabelled = online_soft_target_dataset(x, None, teacher, 4)
    >>> sorted(next(iter(unlabelled))[1])
    ['teacher_logits']
    """
    import tensorflow as tf
    from tensorflow.python.framework.config import is_op_determinism_enabled

    _check_teacher(teacher)
    batch_size = inputs.check_batch_size(batch_size)
    augment = _augmenter(augmentation)
    if not isinstance(x, np.ndarray):
        raise ValueError(
            "`x` must be a NumPy array (one input). "
            f"Received: x of type {type(x).__name__}"
        )
    count = inputs.check_rows(x, [("y", y), ("sample_weight", sample_weight)])
    if jit_compile is None:
        jit_compile = (
            inference_supports_jit(teacher)
            and not is_op_determinism_enabled()
            and xla.auto_jit(inference=[teacher])
        )

    if teachers.outputs_probabilities(teacher):
        teacher = teachers.logits_model(teacher)

    def forward(images):
        return tf.cast(teacher(images, training=False), "float32")

    forward = tf.function(forward, jit_compile=bool(jit_compile))
    x_tensor = tf.convert_to_tensor(x)
    y_tensor = None if y is None else tf.convert_to_tensor(y)
    weight_tensor = (
        None
        if sample_weight is None
        else tf.convert_to_tensor(inputs.finite_weights(sample_weight))
    )

    def gather(indices):
        images = tf.gather(x_tensor, indices)
        if augment is not None:
            images = augment(images)
        logits = tf.debugging.check_numerics(
            forward(images), "`teacher` gave non-finite logits for this batch"
        )
        labels = None if y_tensor is None else tf.gather(y_tensor, indices)
        weights = None if weight_tensor is None else tf.gather(weight_tensor, indices)
        return logits_batch(images, logits, labels=labels, sample_weight=weights)

    return index_batches(count, gather, batch_size, shuffle, seed, drop_remainder)
