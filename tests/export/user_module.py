"""A user's own module registering a subclassed model, written where they keep it.

The tests of `--import` write `SOURCE` as `<folder>/<name>.py` outside the
repository, import it from there and save models of its class: only a process
that imports the module again (`--import=<name>`) can load them.
"""

import importlib
import sys

import numpy as np

SOURCE = """
import keras


@keras.saving.register_keras_serializable(package="user_pkg")
class UserCNN(keras.Model):
    def __init__(self, width=8, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.conv = keras.layers.Conv2D(width, 3, activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(3)

    def call(self, images):
        return self.head(self.pool(self.conv(images)))

    def get_config(self):
        return {**super().get_config(), "width": self.width}
"""
SHAPE = (8, 8, 3)


def write_module(folder, name="user_layers"):
    """Writes the module into `folder` and imports it; returns the module."""
    (folder / f"{name}.py").write_text(SOURCE)
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def data(count, seed):
    """Images whose class is their brightest colour channel, and the labels."""
    rng = np.random.default_rng(seed)
    x = rng.random((count,) + SHAPE, dtype=np.float32)
    y = rng.integers(0, 3, count)
    x[np.arange(count), :, :, y] += 0.5
    return x, y


def save_trained(module, path, width, seed=0):
    """A `module.UserCNN(width)` fitted 8 batches, saved to `path`."""
    import keras

    keras.utils.set_random_seed(seed)
    model = module.UserCNN(width)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(128, seed)
    model.fit(x, y, batch_size=16, verbose=0)
    model.save(str(path))
    return model
