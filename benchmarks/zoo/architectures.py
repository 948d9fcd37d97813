"""The architectures of the model zoo check, at a small width, with their data.

Each entry builds a fresh, untrained model (weights=None, 10 classes, logits
out) and draws synthetic *learnable* data for it: images are a class
prototype (a smooth random pattern) plus noise, so a few epochs reach well
above chance; token sequences carry their class in which marker tokens they
hold. Nothing is downloaded (no pretrained weights, no presets).
"""

import dataclasses

import keras
import numpy as np

IMAGE_SHAPE = (32, 32, 3)
CLASSES = 10
SEQUENCE_LENGTH = 16
VOCABULARY = 64


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One row of the zoo.

    Attributes:
        name: Row name (`--models`).
        build: `seed -> keras.Model` (the teacher's and the student's builder).
        data: `(seed, count) -> (x, y)`; `x` an array or a dict of arrays.
        description: How it is built, for the matrix's legend.
        build_student: Optional builder of a smaller student (default `build`).
        learning_rate: Adam's learning rate for this row (default
            `steps.LEARNING_RATE`); the transformers diverge at the CNNs' rate.
        student_learning_rate: Adam's learning rate when distilling the
            student (default: `learning_rate`).
        epochs_multiplier: This row trains and distils for this many times
            the run's epochs (a transformer from scratch needs more steps).
    """

    name: str
    build: object
    data: object
    description: str
    build_student: object = None
    learning_rate: float = None
    student_learning_rate: float = None
    epochs_multiplier: int = 1


def _head():
    return {
        "input_shape": IMAGE_SHAPE,
        "classes": CLASSES,
        "weights": None,
        "classifier_activation": None,
    }


def _application(constructor, **kwargs):
    def build(seed):
        keras.utils.set_random_seed(seed)
        return getattr(keras.applications, constructor)(**_head(), **kwargs)

    return build


def _efficientnet_small(seed):
    from keras.src.applications import efficientnet

    keras.utils.set_random_seed(seed)
    return efficientnet.EfficientNet(
        width_coefficient=0.1,
        depth_coefficient=0.1,
        default_size=32,
        name="efficientnet_w01",
        **_head(),
    )


def _convnext_small(seed):
    from keras.src.applications import convnext

    keras.utils.set_random_seed(seed)
    return convnext.ConvNeXt(
        depths=[1, 1, 1, 1],
        projection_dims=[8, 16, 32, 64],
        default_size=32,
        name="convnext_d1",
        **_head(),
    )


def image_data(seed, count):
    """Learnable images in [0, 255]: a class prototype plus noise; labels.

    A class's prototype is its colour (the same over the whole image, so a
    model that pools early still sees it) plus a smooth spatial pattern (4x4
    cells of 8x8 pixels); uniform noise covers 30% of the range.
    """
    rng = np.random.default_rng(1234)
    colours = rng.uniform(0, 255, (CLASSES, 1, 1, 3))
    patterns = rng.uniform(0, 255, (CLASSES, 4, 4, 3)).repeat(8, 1).repeat(8, 2)
    prototypes = 0.4 * colours + 0.3 * patterns
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, count)
    x = prototypes[y] + rng.uniform(0, 0.3 * 255, (count, *IMAGE_SHAPE))
    return x.astype(np.float32), y.astype(np.int32)


@keras.saving.register_keras_serializable(package="kdkeras_zoo")
class SubclassedCNN(keras.Model):
    """A subclassed model: convolution, pooling, dense head (logits)."""

    def __init__(self, filters=16, classes=CLASSES, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.classes = filters, classes
        self.scale = keras.layers.Rescaling(1 / 255)
        self.conv = keras.layers.Conv2D(filters, 3, activation="relu")
        self.norm = keras.layers.BatchNormalization()
        self.pool = keras.layers.GlobalAveragePooling2D()
        # 1,024+ weights: dynamic range quantisation keeps smaller kernels in float.
        self.hidden = keras.layers.Dense(64, activation="relu")
        self.head = keras.layers.Dense(classes)

    def call(self, inputs, training=False):
        x = self.norm(self.conv(self.scale(inputs)), training=training)
        return self.head(self.hidden(self.pool(x)))

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "classes": self.classes,
        }


def _subclassed(seed):
    keras.utils.set_random_seed(seed)
    model = SubclassedCNN(name="subclassed_cnn")
    model(np.zeros((1, *IMAGE_SHAPE), np.float32))  # built, with known inputs
    return model


def _two_input(seed):
    keras.utils.set_random_seed(seed)
    image = keras.Input(IMAGE_SHAPE, name="image")
    extra = keras.Input((8,), name="extra")
    x = keras.layers.Rescaling(1 / 255)(image)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Concatenate()([x, keras.layers.Dense(8, "relu")(extra)])
    # A kernel of 1,536 weights: TFLite's dynamic range quantisation keeps
    # kernels under 1,024 in float, and a model with none has nothing to show.
    x = keras.layers.Dense(64, activation="relu")(x)
    return keras.Model(
        {"image": image, "extra": extra},
        keras.layers.Dense(CLASSES)(x),
        name="two_input",
    )


def two_input_data(seed, count):
    """Images as `image_data`, plus an 8-vector that also carries the class."""
    x, y = image_data(seed, count)
    rng = np.random.default_rng(seed + 1)
    extra = rng.normal(0, 1, (count, 8)).astype(np.float32)
    extra[:, 0] += (y % 4).astype(np.float32)
    return {"image": x, "extra": extra}, y


def _bert(num_layers):
    def build(seed):
        import models

        return models.build_bert_classifier(
            num_layers=num_layers,
            num_classes=CLASSES,
            vocabulary_size=VOCABULARY,
            max_sequence_length=SEQUENCE_LENGTH,
            hidden_dim=32,
            seed=seed,
        )

    return build


def text_data(seed, count):
    """BERT inputs whose class is the keyword they hold; labels.

    Each sequence starts with token 1 ([CLS]) and holds `SEQUENCE_LENGTH // 2`
    to `SEQUENCE_LENGTH` tokens, then padding (id 0, mask false); one to three
    of its tokens after the first are its class's keyword (ids 2..11), the
    others random non-keyword tokens.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, count)
    token_ids = rng.integers(CLASSES + 2, VOCABULARY, (count, SEQUENCE_LENGTH))
    lengths = rng.integers(SEQUENCE_LENGTH // 2, SEQUENCE_LENGTH + 1, count)
    for row in range(count):
        used = lengths[row] - 1
        count_planted = rng.integers(used // 4, used // 2 + 1)
        planted = rng.permutation(np.arange(1, lengths[row]))[:count_planted]
        token_ids[row, planted] = y[row] + 2
    token_ids[:, 0] = 1
    padding_mask = np.arange(SEQUENCE_LENGTH)[None, :] < lengths[:, None]
    token_ids = np.where(padding_mask, token_ids, 0)
    x = {
        "token_ids": token_ids.astype(np.int32),
        "segment_ids": np.zeros_like(token_ids, dtype=np.int32),
        "padding_mask": padding_mask.astype(np.int32),
    }
    return x, y.astype(np.int32)


ARCHITECTURES = {
    a.name: a
    for a in (
        Architecture(
            "mobilenet_a025",
            _application("MobileNet", alpha=0.25),
            image_data,
            "keras.applications.MobileNet(alpha=0.25)",
        ),
        Architecture(
            "mobilenet_v2_a035",
            _application("MobileNetV2", alpha=0.35),
            image_data,
            "keras.applications.MobileNetV2(alpha=0.35)",
        ),
        Architecture(
            "mobilenet_v3_small_a075",
            _application("MobileNetV3Small", alpha=0.75),
            image_data,
            "keras.applications.MobileNetV3Small(alpha=0.75)",
        ),
        Architecture(
            "efficientnet_b0",
            _application("EfficientNetB0"),
            image_data,
            "keras.applications.EfficientNetB0",
        ),
        Architecture(
            "efficientnet_v2_b0",
            _application("EfficientNetV2B0"),
            image_data,
            "keras.applications.EfficientNetV2B0",
        ),
        Architecture(
            "resnet50",
            _application("ResNet50"),
            image_data,
            "keras.applications.ResNet50",
        ),
        Architecture(
            "densenet121",
            _application("DenseNet121"),
            image_data,
            "keras.applications.DenseNet121",
        ),
        Architecture(
            "convnext_tiny",
            _application("ConvNeXtTiny"),
            image_data,
            "keras.applications.ConvNeXtTiny",
        ),
        Architecture(
            "efficientnet_w01",
            _efficientnet_small,
            image_data,
            "the EfficientNet family (B0 blocks) at width 0.1, depth 0.1 "
            "(keras.src.applications.efficientnet.EfficientNet)",
        ),
        Architecture(
            "convnext_d1",
            _convnext_small,
            image_data,
            "the ConvNeXt family, one block per stage, widths 8-64 "
            "(keras.src.applications.convnext.ConvNeXt)",
        ),
        Architecture(
            "bert_4to1",
            _bert(4),
            text_data,
            "keras_hub BertTextClassifier from a config (hidden 32, 2 heads, "
            "vocabulary 64, length 16): 4-layer teacher, 1-layer student",
            build_student=_bert(1),
            learning_rate=1e-3,
            student_learning_rate=3e-3,  # The 1-layer student stalls at 1e-3.
            epochs_multiplier=2,
        ),
        Architecture(
            "subclassed",
            _subclassed,
            image_data,
            "a keras.Model subclass (conv, batch norm, pooling, dense)",
        ),
        Architecture(
            "two_input",
            _two_input,
            two_input_data,
            "a functional model with an image and an 8-vector input (dict)",
        ),
    )
}
# The fast subset CI runs: the smallest width of three families, and BERT.
CI_SUBSET = ("mobilenet_a025", "efficientnet_w01", "convnext_d1", "bert_4to1")
# The matrix (the default of `python -m benchmarks.zoo`).
DEFAULT_MODELS = (
    "mobilenet_a025",
    "mobilenet_v2_a035",
    "mobilenet_v3_small_a075",
    "efficientnet_b0",
    "efficientnet_v2_b0",
    "resnet50",
    "densenet121",
    "convnext_tiny",
    "bert_4to1",
    "subclassed",
    "two_input",
)
