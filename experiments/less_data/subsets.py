"""Which training images keep their labels, and which are held out.

The less-data experiment (`experiments.less_data`) keeps the labels of a
stratified, seeded subset of the training images (`select_labelled`), marks
the others unlabelled (`partly_labelled`), and its probes of the settings
(`experiments.less_data.probe`) measure on the last training images, held
out of every training run (`hold_out`).
"""

import numpy as np


def select_labelled(labels, fraction, seed):
    """The indices of a stratified, seeded subset that keeps its labels.

    Each class keeps `fraction` of its examples, rounded so that the total is
    `round(fraction * len(labels))` (largest remainders first, ties to the
    lower class). Within a class, the examples kept are the first of a
    permutation drawn from `seed` and the class, so for one seed a smaller
    fraction's subset is contained in a larger fraction's.

    Args:
        labels: Int labels `(N,)`.
        fraction: Float in (0, 1).
        seed: Int seed.

    Returns:
        Sorted int64 indices into `labels`.

    Example:

    >>> labels = np.arange(100) % 4
    >>> kept = select_labelled(labels, 0.2, seed=0)
    >>> len(kept), np.bincount(labels[kept]).tolist()
    (20, [5, 5, 5, 5])
    """
    labels = np.asarray(labels)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"`fraction` must be in (0, 1). Received: fraction={fraction}")
    classes, counts = np.unique(labels, return_counts=True)
    shares = fraction * counts
    kept = np.floor(shares).astype(int)
    remainder = int(round(fraction * len(labels))) - int(kept.sum())
    # Largest fractional parts first; a stable sort breaks ties by class.
    order = np.argsort(-(shares - kept), kind="stable")
    kept[order[:remainder]] += 1
    indices = []
    for label, count in zip(classes, kept, strict=True):
        members = np.flatnonzero(labels == label)
        rng = np.random.default_rng([seed, int(label)])
        indices.append(members[rng.permutation(len(members))[:count]])
    return np.sort(np.concatenate(indices)).astype("int64")


def partly_labelled(labels, labelled):
    """`labels` with every example not in `labelled` marked unlabelled.

    Example:

    >>> partly_labelled(np.array([3, 1, 4, 1]), np.array([0, 2])).tolist()
    [3, -1, 4, -1]
    """
    from kdkeras.targets import UNLABELLED

    marked = np.full(len(labels), UNLABELLED, dtype=np.asarray(labels).dtype)
    marked[labelled] = np.asarray(labels)[labelled]
    return marked


def hold_out(images, labels, count):
    """Splits off the last `count` examples as a validation set.

    Args:
        images: Array `(N, ...)`.
        labels: Array `(N,)`.
        count: Int in [1, N - 1], the number of examples held out.

    Returns:
        `((train_images, train_labels), (held_images, held_labels))`.

    Example:

    >>> (x, y), (x_held, y_held) = hold_out(np.arange(10), np.arange(10), 3)
    >>> y.tolist(), y_held.tolist()
    ([0, 1, 2, 3, 4, 5, 6], [7, 8, 9])
    """
    if not 1 <= count < len(labels):
        raise ValueError(
            f"`count` must be an int in [1, {len(labels) - 1}]. Received: count={count}"
        )
    split = len(labels) - count
    return (images[:split], labels[:split]), (images[split:], labels[split:])
