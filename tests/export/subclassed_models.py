"""Subclassed Keras models as users write them, registered like theirs.

Importing this module registers the classes (`--import=` names such a module).
`train` fits one a few steps on a learnable task and returns it built (by
`fit`, as users build theirs), with fresh inputs to compare exports on.
"""

import keras
import numpy as np

PACKAGE = "kdkeras_tests"
IMAGE_SHAPE = (8, 8, 3)
META_WIDTH = 4
CLASSES = 3


@keras.saving.register_keras_serializable(package=PACKAGE)
class SubclassedCNN(keras.Model):
    """Two convolutions -> pooling -> dense logits, one image input.

    The second convolution's kernel (2304 weights) is large enough for
    TFLite's dynamic-range quantization to quantize it.
    """

    def __init__(self, classes=CLASSES, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.conv = keras.layers.Conv2D(16, 3, padding="same", activation="relu")
        self.norm = keras.layers.BatchNormalization()
        self.conv2 = keras.layers.Conv2D(16, 3, activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(classes)

    def call(self, images, training=False):
        hidden = self.norm(self.conv(images), training=training)
        return self.head(self.pool(self.conv2(hidden)))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SubclassedTwoBranch(keras.Model):
    """A dict input `{image, meta}`: image features concatenated with metadata."""

    def __init__(self, classes=CLASSES, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.conv = keras.layers.Conv2D(8, 3, activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.meta = keras.layers.Dense(8, activation="relu")
        self.head = keras.layers.Dense(classes)

    def call(self, inputs):
        image = self.pool(self.conv(inputs["image"]))
        return self.head(keras.ops.concatenate([image, self.meta(inputs["meta"])], -1))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SubclassedAroundFunctional(keras.Model):
    """A subclassed head around a nested functional backbone."""

    def __init__(self, classes=CLASSES, backbone=None, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        self.backbone = backbone or _functional_backbone()
        self.head = keras.layers.Dense(classes)

    def call(self, images):
        return self.head(self.backbone(images))

    def get_config(self):
        return {
            **super().get_config(),
            "classes": self.classes,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
        }


class TwoArguments(keras.Model):
    """`build(self, image_shape, meta_shape)` and `call(self, image, meta)`."""

    def build(self, image_shape, meta_shape):
        self.flat = keras.layers.Flatten()
        self.head = keras.layers.Dense(CLASSES)
        self.meta = keras.layers.Dense(CLASSES)

    def call(self, image, meta):
        return self.head(self.flat(image)) + self.meta(meta)


def _functional_backbone():
    images = keras.Input(IMAGE_SHAPE)
    hidden = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(images)
    hidden = keras.layers.LayerNormalization()(hidden)
    hidden = keras.layers.GlobalAveragePooling2D()(hidden)
    return keras.Model(images, keras.layers.Dense(16, activation="gelu")(hidden))


def data(kind, count, seed):
    """Learnable inputs and labels: the class is the brightest colour channel."""
    rng = np.random.default_rng(seed)
    images = rng.random((count,) + IMAGE_SHAPE, dtype=np.float32)
    labels = rng.integers(0, CLASSES, count)
    images[np.arange(count), :, :, labels] += 0.5
    if kind != "dict":
        return images, labels
    meta = rng.normal(size=(count, META_WIDTH)).astype(np.float32)
    return {"image": images, "meta": meta}, labels


MODELS = {
    "single": SubclassedCNN,
    "dict": SubclassedTwoBranch,
    "nested": SubclassedAroundFunctional,
}


def train(kind, seed=0, steps=12):
    """A `MODELS[kind]` model fitted `steps` batches (built by `fit`)."""
    keras.utils.set_random_seed(seed)
    model = MODELS[kind]()
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = data(kind, 16 * steps, seed)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    return model
