"""Training batches from a sharded soft-target cache and its input stream.

`soft_target_shards_dataset` streams the inputs again and joins every
example with the logits the cache holds for its position in the stream (one
contiguous read per input batch), then shuffles the examples with their
logits within windows of consecutive examples that span shard boundaries
(`shuffled_batches`: whole batches gathered at once, no per-example
`tf.data` element), re-batches and prefetches:
batches `(x, {LABELS_KEY: y, TEACHER_LOGITS_KEY: t})`, as from the in-memory
cache (`kdkeras.targets.memory.dataset`), or for a top-k cache the top-k targets
(`kdkeras.targets.batch`), which the Distiller trains on exactly.
"""

import keras
import numpy as np

from kdkeras.targets import inputs
from kdkeras.targets import topk
from kdkeras.targets.augmentation import check_no_augmentation
from kdkeras.targets.batch import LABELS_KEY
from kdkeras.targets.batch import TEACHER_LOGITS_KEY
from kdkeras.targets.batch import TEACHER_TAIL_KEY
from kdkeras.targets.batch import TEACHER_TEMPERATURE_KEY
from kdkeras.targets.batch import TEACHER_TOP_K_INDICES_KEY
from kdkeras.targets.batch import TEACHER_TOP_K_VALUES_KEY
from kdkeras.targets.memory.cache import StaleSoftTargetsError
from kdkeras.targets.shards.index import check_stream_matches
from kdkeras.targets.shards.index import shown
from kdkeras.targets.shards.reader import SoftTargetShards
from kdkeras.targets.shards.stream import check_stream
from kdkeras.targets.shards.stream import is_tf_dataset
from kdkeras.targets.shards.stream import row_fingerprints
from kdutils.checks import check_positive_int


def check_rows_match(shards, positions, x, fingerprints):
    """Refuses inputs that are not those the stored targets were computed on.

    Args:
        shards: The `SoftTargetShards`.
        positions: The examples' positions in the stream.
        x: Their flat input arrays (`inputs.flat_arrays` order).
        fingerprints: The `row_fingerprints` stored for these positions.

    Raises:
        StaleSoftTargetsError: an example's inputs differ from the ones at
            its position when the cache was written (the stream changed
            order or content, e.g. between epochs).
    """
    actual = row_fingerprints([np.asarray(a) for a in x])
    other = np.flatnonzero(actual != fingerprints)
    if other.size:
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {shown(shards.path)} is stale: "
            f"the inputs at stream position {int(positions[other[0]])} "
            f"({other.size} of a batch of {len(positions)}) are not those its "
            "logits were computed on (the stream changed order or content "
            "since the cache was written, e.g. in a later epoch)."
        )


def as_tf_dataset(data):
    import tensorflow as tf

    if is_tf_dataset(data):
        return data

    def spec(value):
        value = np.asarray(keras.ops.convert_to_numpy(value))
        return tf.TensorSpec((None,) + value.shape[1:], value.dtype)

    first = data[0]
    if isinstance(first, list):
        first = tuple(first)
    signature = tf.nest.map_structure(spec, first)

    def generate():
        for i in range(data.num_batches):
            element = data[i]
            yield tuple(element) if isinstance(element, list) else element

    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def soft_target_shards_dataset(
    data,
    shards,
    batch_size=128,
    shuffle=True,
    shuffle_buffer=16384,
    seed=None,
    augmentation=None,
    student=None,
    drop_remainder=False,
    expand_top_k=False,
):
    """Batches `(x, {LABELS_KEY: y, TEACHER_LOGITS_KEY: t})` from a stream.

    `data` is streamed again; every example is joined with the logits the
    cache holds for its position in the stream, then examples are shuffled
    within windows of `shuffle_buffer` consecutive examples (reshuffled
    every epoch; a window spans shard and input-batch boundaries, see
    `shuffled_batches`), batched and prefetched. Logits are read from
    the shard files as float32. A top-k cache yields its top-k targets
    instead of `TEACHER_LOGITS_KEY` (`TEACHER_TOP_K_VALUES_KEY`,
    `TEACHER_TOP_K_INDICES_KEY`, `TEACHER_TAIL_KEY` and the cache's
    temperature under `TEACHER_TEMPERATURE_KEY`, see
    `kdkeras.targets.batch`): the Distiller trains on them with
    `kdkeras.losses.top_k_kd_loss_per_example`, at the cache's temperature
    only. Without labels in `data` the targets hold no `LABELS_KEY`; labels
    (including the -1 of an unlabelled example) and sample weights pass
    through untouched.

    Args:
        data: The stream the cache was computed on (same order), yielding
            `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)` batches.
        shards: A `SoftTargetShards`. Unless it was loaded and checked
            against this very `data` object (`load_soft_target_shards`, or
            `cache_soft_target_shards` returning an existing cache), `data`
            is first streamed once (no teacher) to check every shard's
            inputs: a stream whose order changes between passes is refused.
        batch_size: Positive int.
        shuffle: Whether to shuffle (within windows) every epoch.
        shuffle_buffer: Positive int, examples per shuffled window (held in
            memory together; rounded up to a multiple of `batch_size`).
        seed: Optional shuffle seed.
        augmentation: Must be `None` (see `kdkeras.targets.augmentation`).
        student: Optional student, checked for random augmentation layers.
        drop_remainder: Drop the last incomplete batch.
        expand_top_k: With a top-k cache, yield full logits
            (`TEACHER_LOGITS_KEY`) made by
            `kdkeras.targets.topk.dense_logits_from_top_k` instead of the
            top-k targets, for a distillation loss that needs every logit
            (DKD, DIST); its tail is spread evenly, so the loss is not the
            teacher's (see `kdkeras.targets.topk`). Valid at the cache's
            temperature only: the batches carry it
            (`TEACHER_TEMPERATURE_KEY`) and the Distiller refuses another.

    Returns:
        A `tf.data.Dataset`.

    Example:

    >>> import keras, numpy as np, tensorflow as tf, tempfile, os
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.random.default_rng(0).normal(size=(10, 4)).astype("float32")
    >>> data = tf.data.Dataset.from_tensor_slices((x, np.arange(10))).batch(4)
    >>> from kdkeras.targets.shards.writer import cache_soft_target_shards
    >>> path = os.path.join(tempfile.mkdtemp(), "targets")
    >>> shards = cache_soft_target_shards(teacher, data, path)
    >>> batches = soft_target_shards_dataset(data, shards, batch_size=5)
    >>> [tuple(t["teacher_logits"].shape) for _, t in batches]
    [(5, 3), (5, 3)]
    """
    import tensorflow as tf

    check_no_augmentation(student=student, augmentation=augmentation)
    batch_size = inputs.check_batch_size(batch_size)
    if not isinstance(expand_top_k, bool):
        raise TypeError(
            "`expand_top_k` must be True or False. "
            f"Received: expand_top_k={shown(expand_top_k)}"
        )
    if not isinstance(shards, SoftTargetShards):
        raise TypeError(
            "`shards` must be a SoftTargetShards (from "
            "cache_soft_target_shards or load_soft_target_shards). "
            f"Received: shards={type(shards).__name__}"
        )
    if shards.index["shard"] is not None:
        raise StaleSoftTargetsError(
            f"`shards` {shown(shards.path)} holds one worker's part only: join "
            "the parts with merge_soft_target_shards."
        )
    if shuffle:
        shuffle_buffer = check_positive_int("shuffle_buffer", shuffle_buffer)
    check_stream(data)
    if shards.verified_for is not data:
        check_stream_matches(shards.path, shards.index, data)
        shards.verified_for = data

    dataset = as_tf_dataset(data)
    spec = dataset.element_spec
    has = len(spec) if isinstance(spec, tuple) else 0
    if has > 3:
        raise ValueError(
            "`data` elements must be x, (x,), (x, y) or (x, y, "
            f"sample_weight). Received: a tuple of {has}"
        )

    def split(*element):
        if not has:
            (x,) = element
            return x, None, None
        element = tuple(element) + (None,) * (3 - len(element))
        return element

    def with_positions(offset, element):
        x, y, weight = split(*element) if has else split(element)
        count = tf.shape(tf.nest.flatten(x)[0], out_type=tf.int64)[0]
        positions = offset + tf.range(count, dtype=tf.int64)
        parts = {"x": x, "position": positions}
        if y is not None:
            parts["y"] = y
        if weight is not None:
            parts["weight"] = weight
        return offset + count, parts

    dataset = dataset.scan(tf.constant(0, tf.int64), with_positions)
    classes = shards.classes
    kinds = ["values", "indices", "tail"] if shards.top_k else ["logits"]
    types = {
        "logits": tf.float32,
        "values": tf.float32,
        "indices": tf.int32,
        "tail": tf.float32,
    }

    def read(positions, *x):
        stored = shards.stored(positions, kinds + ["inputs"])
        check_rows_match(shards, positions, x, stored["inputs"])
        return [stored[kind].astype(types[kind].as_numpy_dtype) for kind in kinds]

    def attach(parts):
        # Positions within an input batch are consecutive: one read per
        # shard file, in stream order, before the examples are shuffled.
        # Every example's inputs are checked against the fingerprint stored
        # with its logits, in every epoch.
        stored = tf.numpy_function(
            read,
            [parts["position"], *tf.nest.flatten(parts["x"])],
            [types[kind] for kind in kinds],
            stateful=False,
        )
        for kind, tensor in zip(kinds, stored, strict=True):
            width = shards.top_k if kind in ("values", "indices") else classes
            tensor.set_shape([None] if kind == "tail" else [None, width])
            parts[kind] = tensor
        del parts["position"]
        return parts

    def expand(values, indices, tail):
        return topk.dense_logits_from_top_k(
            values, indices, tail, classes, shards.temperature
        )

    def temperatures(batch):
        rows = tf.shape(batch)[:1]
        return tf.fill(rows, tf.constant(shards.temperature, tf.float32))

    def top_k_targets(parts):
        return {
            TEACHER_TOP_K_VALUES_KEY: parts["values"],
            TEACHER_TOP_K_INDICES_KEY: parts["indices"],
            TEACHER_TAIL_KEY: parts["tail"],
            TEACHER_TEMPERATURE_KEY: temperatures(parts["tail"]),
        }

    def finish(parts):
        if shards.top_k and not expand_top_k:
            targets = top_k_targets(parts)
        elif shards.top_k:
            logits = tf.numpy_function(
                expand,
                [parts["values"], parts["indices"], parts["tail"]],
                tf.float32,
                stateful=False,
            )
            logits.set_shape([None, classes])
            # Valid at the cache's temperature only: the Distiller checks it.
            targets = {
                TEACHER_LOGITS_KEY: logits,
                TEACHER_TEMPERATURE_KEY: temperatures(logits),
            }
        else:
            targets = {TEACHER_LOGITS_KEY: parts["logits"]}
        if "y" in parts:
            targets[LABELS_KEY] = parts["y"]
        if "weight" in parts:
            return parts["x"], targets, parts["weight"]
        return parts["x"], targets

    dataset = dataset.map(attach, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        dataset = shuffled_batches(
            dataset, batch_size, shuffle_buffer, seed, drop_remainder
        )
    else:  # Whole batches are sliced and joined (no per-example elements).
        dataset = dataset.rebatch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    # The number of batches is known: Keras shows progress, and a stream
    # that yields another number of examples fails instead of training.
    batches = shards.examples // batch_size
    if not drop_remainder and shards.examples % batch_size:
        batches += 1
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(tf.data.AUTOTUNE)


def shuffled_batches(dataset, batch_size, window, seed, drop_remainder=False):
    """Batches of a dataset of batches, shuffled within windows of examples.

    The batches are regrouped into windows of `window` consecutive examples
    rounded up to a multiple of `batch_size` (the last window fewer); each
    window is permuted with a permutation drawn anew every epoch
    (deterministic for a given `seed`) and cut into batches, each gathered
    from the window at once. The examples of a window, which may span shards
    and input batches, come out in a random order, with no per-example
    `tf.data` element and no copy of the permuted window. The next window is
    assembled while this one's batches are used (two or three windows are
    held in memory).

    Args:
        dataset: A `tf.data.Dataset` of batches (any nested structure whose
            leaves share their first dimension).
        batch_size: Positive int.
        window: Positive int, examples shuffled together.
        seed: Optional int seed.
        drop_remainder: Drop the last incomplete batch.

    Returns:
        A `tf.data.Dataset` of batches.

    Example:

    >>> import tensorflow as tf
    >>> batches = tf.data.Dataset.range(10).batch(4)
    >>> shuffled = list(shuffled_batches(batches, 2, 4, seed=1))
    >>> [len(batch) for batch in shuffled]
    [2, 2, 2, 2, 2]
    >>> windows = [tf.concat(shuffled[i : i + 2], 0) for i in (0, 2, 4)]
    >>> [sorted(window.numpy().tolist()) for window in windows]
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """
    import tensorflow as tf

    window = -(-window // batch_size) * batch_size

    def window_batches(window_seed, parts):
        count = tf.shape(tf.nest.flatten(parts)[0], out_type=tf.int64)[0]
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count), seed=tf.stack([window_seed, tf.constant(0, tf.int64)])
        )
        if drop_remainder:
            batches = count // batch_size
        else:
            batches = (count + batch_size - 1) // batch_size

        def gather(batch):
            start = batch * batch_size
            indices = order[start : tf.minimum(start + batch_size, count)]
            return tf.nest.map_structure(lambda part: tf.gather(part, indices), parts)

        return tf.data.Dataset.range(batches).map(gather)

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    windows = tf.data.Dataset.zip(seeds, dataset.rebatch(window))
    # The next window is assembled while the batches of this one are used.
    return windows.prefetch(1).flat_map(window_batches)
