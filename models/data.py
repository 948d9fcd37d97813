"""Default data: Fashion-MNIST through `keras.datasets`, seeded offline.

`keras.datasets.fashion_mnist.load_data()` reads four gzipped IDX files from
`$KERAS_HOME/datasets/fashion-mnist/` and downloads them only when missing.
Debian's `dataset-fashion-mnist` package ships the same four files in
`/usr/share/datasets/fashion-mnist/`; `seed_keras_cache()` copies them into
Keras' cache so that the Keras loader itself (no IDX parser here) works offline.
"""

import os
import shutil

import numpy as np

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def keras_cache_dir():
    """The folder `keras.datasets.fashion_mnist` reads from (as `get_file`).

    Keras fixes its home folder (`$KERAS_HOME`, else `~/.keras`) when it is
    imported; ask Keras for it rather than reading the environment again.
    """
    from keras.src.backend import config  # keras_home() is not public.

    home = os.path.expanduser(config.keras_home())
    if not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")  # Keras' own fallback.
    return os.path.join(home, "datasets", "fashion-mnist")


def seed_keras_cache(source_dir=DEBIAN_DIR):
    """Copies Debian's Fashion-MNIST files into Keras' cache if missing.

    Args:
        source_dir: Folder holding the four `*-ubyte.gz` files.

    Returns:
        The number of files copied (0 when the cache was already complete or
        the source is absent).
    """
    cache = keras_cache_dir()
    missing = [f for f in FILES if not os.path.exists(os.path.join(cache, f))]
    if not missing or not all(
        os.path.exists(os.path.join(source_dir, f)) for f in missing
    ):
        return 0
    os.makedirs(cache, exist_ok=True)
    for name in missing:
        temporary = os.path.join(cache, f".{name}.partial")
        shutil.copyfile(os.path.join(source_dir, name), temporary)
        os.replace(temporary, os.path.join(cache, name))
    return len(missing)


def load_fashion_mnist(limit_train=None, limit_test=None):
    """Loads Fashion-MNIST as float32 images in [0, 1], shape `(N, 28, 28, 1)`.

    Uses `keras.datasets.fashion_mnist.load_data()` after seeding its cache
    from Debian's files when they are installed.

    Args:
        limit_train: Optional int, keep the first `limit_train` training
            examples (for smoke runs).
        limit_test: Optional int, likewise for the test set.

    Returns:
        `((x_train, y_train), (x_test, y_test))`, labels as int32.

    Raises:
        RuntimeError: the data is neither cached, installed nor downloadable;
            the message says how to fix it.

    Example:

    >>> (x_train, y_train), (x_test, y_test) = load_fashion_mnist(100, 50)
    >>> x_train.shape, x_train.dtype.name, y_test.shape
    ((100, 28, 28, 1), 'float32', (50,))
    """
    import keras

    seed_keras_cache()
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except Exception as error:  # Network failures surface as many types.
        raise RuntimeError(
            "Fashion-MNIST is not in Keras' cache "
            f"({keras_cache_dir()}) and could not be downloaded ({error}). "
            "Install it offline with `apt-get install dataset-fashion-mnist` "
            f"(files in {DEBIAN_DIR}), or copy the four files {FILES} into "
            "that cache folder."
        ) from None

    def prepare(images, labels, limit):
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        images = (images.astype("float32") / 255.0)[..., np.newaxis]
        return images, labels.astype("int32")

    return (
        prepare(x_train, y_train, limit_train),
        prepare(x_test, y_test, limit_test),
    )
