"""Label-preserving image augmentation for 28×28 images, in NumPy.

The same augmented batch goes through the teacher and the student (the
teacher's soft targets are computed on exactly the images the student sees),
so each epoch's augmented copy of the training set is drawn once from a
seed: the teachers' logits on it can be cached and shared by every student.
"""

import numpy as np

from experiments import checks


def shift_and_flip(images, rng, max_shift=2, flip=True):
    """Randomly translates (whole pixels, zero fill) and mirrors images.

    Args:
        images: Array `(batch, height, width, channels)`.
        rng: A `numpy.random.Generator`.
        max_shift: Int >= 0, the largest shift in pixels along each axis.
        flip: Whether to mirror left-right with probability 1/2 (clothes
            keep their class when mirrored).

    Returns:
        A new array of the same shape and dtype.

    Example:

    >>> import numpy as np
    >>> images = np.zeros((4, 28, 28, 1), "float32")
    >>> images[:, 14, 14] = 1.0
    >>> moved = shift_and_flip(images, np.random.default_rng(0))
    >>> moved.shape, float(moved.sum())
    ((4, 28, 28, 1), 4.0)
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            "`images` must have shape (batch, height, width, channels). "
            f"Received: shape {images.shape}"
        )
    checks.check_int("max_shift", max_shift, minimum=0)
    count, height, width, _ = images.shape
    padded = np.pad(
        images,
        ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)),
    )
    offset_rows = rng.integers(0, 2 * max_shift + 1, size=count)
    offset_cols = rng.integers(0, 2 * max_shift + 1, size=count)
    rows = offset_rows[:, None] + np.arange(height)[None, :]
    cols = offset_cols[:, None] + np.arange(width)[None, :]
    if flip:
        mirrored = rng.random(count) < 0.5
        cols[mirrored] = cols[mirrored, ::-1]
    return padded[np.arange(count)[:, None, None], rows[:, :, None], cols[:, None, :]]


def epoch_images(images, epoch, seed, max_shift=2, flip=True):
    """The augmented training images of one epoch, reproducible from a seed.

    Args:
        images: Array `(batch, height, width, channels)`.
        epoch: Int, the epoch index.
        seed: Int, the augmentation seed.
        max_shift: See `shift_and_flip`.
        flip: See `shift_and_flip`.

    Returns:
        The augmented copy; identical for identical `(epoch, seed)`.
    """
    return shift_and_flip(images, np.random.default_rng([seed, epoch]), max_shift, flip)


def mixup(images, labels, rng, fraction=0.5):
    """Mixes a random `fraction` of the images with random partners.

    Each mixed image is `lam * x + (1 - lam) * partner` with `lam` drawn
    uniformly in [0.5, 1] (the image keeps the larger share), and its label
    is mixed in the same proportions, as in function matching (Beyer et al.
    2022, "Knowledge distillation: a good teacher is patient and
    consistent"), where the teacher labels exactly these images.

    Args:
        images: Array `(batch, height, width, channels)`.
        labels: One-hot or soft labels `(batch, classes)`.
        rng: A `numpy.random.Generator`.
        fraction: Float in [0, 1], the share of images mixed.

    Returns:
        `(images, labels)`: new float32 arrays of the same shapes.

    Example:

    >>> import numpy as np
    >>> images = np.stack([np.zeros((2, 2, 1)), np.ones((2, 2, 1))])
    >>> labels = np.eye(2)
    >>> mixed, soft = mixup(images, labels, np.random.default_rng(0), 1.0)
    >>> bool(np.allclose(soft.sum(axis=1), 1.0)), soft.shape
    (True, (2, 2))
    """
    images = np.asarray(images, "float32")
    labels = np.asarray(labels, "float32")
    if images.ndim != 4 or labels.ndim != 2 or len(labels) != len(images):
        raise ValueError(
            "`images` must have shape (batch, height, width, channels) and "
            "`labels` shape (batch, classes). Received: shapes "
            f"{images.shape} and {labels.shape}"
        )
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"`fraction` must be in [0, 1]. Received: fraction={fraction}")
    count = len(images)
    share = rng.uniform(0.5, 1.0, size=count).astype("float32")
    share[rng.random(count) >= fraction] = 1.0
    partner = rng.permutation(count)
    mixed = share[:, None, None, None] * images
    mixed += (1.0 - share[:, None, None, None]) * images[partner]
    soft = share[:, None] * labels + (1.0 - share[:, None]) * labels[partner]
    return mixed, soft


def function_matching_copies(
    images, labels, copies, seed, num_classes, mixup_fraction=0.5, max_shift=2
):
    """The training set and `copies - 1` fixed augmented copies of it.

    Copy 0 is the images as they are; each further copy is shifted and
    mirrored (`shift_and_flip`) and then partly mixed (`mixup`). The copies
    are drawn once from `seed`, so a teacher's logits on them can be cached
    and every student trained on the same images.

    Args:
        images: Array `(batch, height, width, channels)`.
        labels: Int labels `(batch,)`.
        copies: Int >= 1, copies of the training set in the result.
        seed: Int seeding the augmentation.
        num_classes: Int, the number of classes of the one-hot labels.
        mixup_fraction: Share of each augmented copy that is mixed.
        max_shift: Largest shift in pixels.

    Returns:
        `(images, labels)`: `copies * batch` images (float32) and their
        one-hot or mixed labels `(copies * batch, num_classes)`.

    Example:

    >>> import numpy as np
    >>> images = np.random.default_rng(0).random((4, 28, 28, 1), "float32")
    >>> x, y = function_matching_copies(images, np.arange(4) % 2, 3, 0, 2)
    >>> x.shape, y.shape, bool(np.array_equal(x[:4], images))
    ((12, 28, 28, 1), (12, 2), True)
    """
    checks.check_int("copies", copies, minimum=1)
    one_hot = np.eye(num_classes, dtype="float32")[np.asarray(labels)]
    all_images, all_labels = [np.asarray(images, "float32")], [one_hot]
    for copy in range(1, copies):
        rng = np.random.default_rng([seed, copy])
        shifted = shift_and_flip(images, rng, max_shift)
        mixed, soft = mixup(shifted, one_hot, rng, mixup_fraction)
        all_images.append(mixed)
        all_labels.append(soft)
    return np.concatenate(all_images), np.concatenate(all_labels)
