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
