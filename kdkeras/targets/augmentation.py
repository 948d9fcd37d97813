"""Random augmentation layers, and why cached targets cannot meet them.

Cached targets are the teacher's logits for the UNAUGMENTED inputs. A teacher
containing random augmentation layers (e.g. the paper teacher's
`RandomTranslation` jitter) is fine: those layers are inactive at inference,
which is how the targets are computed. But if the STUDENT's input is randomly
augmented during training (augmentation layers inside the student, or an
augmentation pipeline), each augmented example would be paired with the
targets of a different (clean) input. `check_no_augmentation` refuses that
combination; distil online (with the teacher) instead, so the teacher sees the
same augmented batch as the student.
"""

import keras

from kdkeras.targets import fingerprint

# Image-augmentation layers that draw random transforms in training mode.
AUGMENTATION_NAMES = ("AugMix", "CutMix", "MixUp", "RandAugment")


def _augmentation_classes():
    names = [n for n in dir(keras.layers) if n.startswith("Random")]
    names += [n for n in AUGMENTATION_NAMES if hasattr(keras.layers, n)]
    return tuple(getattr(keras.layers, n) for n in names)


def random_augmentation_layers(model):
    """The random image-augmentation layers inside `model` (recursively).

    `keras.layers.Random*` (RandomTranslation, RandomFlip, ...), `RandAugment`,
    `AugMix`, `MixUp` and `CutMix`. They are active in training only.

    Args:
        model: A `keras.layers.Layer` or `keras.Model`.

    Returns:
        List of layers (empty if none).

    Example:

    >>> model = keras.Sequential([keras.Input((4, 4, 1)),
    ...                           keras.layers.RandomFlip(), keras.layers.Flatten()])
    >>> [type(layer).__name__ for layer in random_augmentation_layers(model)]
    ['RandomFlip']
    """
    classes = _augmentation_classes()
    return [
        layer for layer in fingerprint.model_layers(model) if isinstance(layer, classes)
    ]


def inference_supports_jit(model):
    """Whether XLA can compile `model`'s inference-mode forward pass.

    Keras' `supports_jit` check vetoes XLA for random augmentation layers
    (`RandomTranslation`, ...), but at inference those return their input
    untouched, so they are left out; every other layer must support XLA.

    Args:
        model: A `keras.Model`.

    Returns:
        Bool.
    """
    inactive = {id(layer) for layer in random_augmentation_layers(model)}
    return all(
        layer.supports_jit
        for layer in fingerprint.model_layers(model)
        if id(layer) not in inactive
    )


def check_no_augmentation(student=None, augmentation=None):
    """Raises if cached soft targets would meet randomly augmented inputs.

    Args:
        student: Optional student `keras.Model`; refused if it contains
            random augmentation layers (they run in training mode).
        augmentation: What the caller will apply to the student's input:
            `None`/`False` (nothing), `True`, a layer, a list of layers or a
            callable. Anything but `None`/`False`/`[]` is refused.

    Raises:
        ValueError: with the reason and the alternative (online distillation).
    """
    reason = (
        "cached soft targets are the teacher's logits for the un-augmented "
        "inputs, so a randomly augmented example would be trained towards "
        "another input's targets; distil online (kdkeras.Distiller with the "
        "teacher) so the teacher sees the same augmented batch."
    )
    if augmentation is not None and augmentation is not False:
        if not (isinstance(augmentation, (list, tuple)) and not augmentation):
            raise ValueError(
                "`augmentation` must be None with cached soft targets: " + reason
            )
    if student is not None:
        found = random_augmentation_layers(student)
        if found:
            names = ", ".join(
                f"{type(layer).__name__}({layer.name!r})" for layer in found
            )
            raise ValueError(
                f"`student` contains random augmentation layers ({names}): " + reason
            )
