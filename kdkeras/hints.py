"""Hint (feature) distillation in the FitNets style (Romero et al. 2015).

A `Hint` pairs an intermediate student layer with a teacher layer. The
student's features go through a learned projection when the widths differ
(a `Dense` for `(batch, features)` outputs, a 1×1 `Conv2D` for image
feature maps), and the loss is the mean squared error to the teacher's
features, multiplied by the hint's weight.
"""

import numbers

import keras
from keras import ops

from kdkeras import losses


class Hint:
    """Matches the output of `student_layer` to that of `teacher_layer`.

    Args:
        student_layer: Name of a layer of the (functional) student.
        teacher_layer: Name of a layer of the (functional) teacher.
        weight: Non-negative float, the weight of this term in the total loss.

    Example:

    >>> hint = Hint("dense", "dense_1", weight=0.5)
    >>> hint.get_config()
    {'student_layer': 'dense', 'teacher_layer': 'dense_1', 'weight': 0.5}
    """

    def __init__(self, student_layer, teacher_layer, weight=1.0):
        for argument, value in (
            ("student_layer", student_layer),
            ("teacher_layer", teacher_layer),
        ):
            if not isinstance(value, str) or not value:
                raise TypeError(
                    f"`{argument}` must be a layer name (a non-empty str). "
                    f"Received: {argument}={value!r}"
                )
        if (
            isinstance(weight, bool)
            or not isinstance(weight, numbers.Real)
            or not weight >= 0
        ):
            raise ValueError(
                f"`weight` must be a number >= 0. Received: weight={weight!r}"
            )
        self.student_layer = student_layer
        self.teacher_layer = teacher_layer
        self.weight = float(weight)

    def get_config(self):
        return {
            "student_layer": self.student_layer,
            "teacher_layer": self.teacher_layer,
            "weight": self.weight,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return (
            f"Hint({self.student_layer!r}, {self.teacher_layer!r}, "
            f"weight={self.weight})"
        )


def as_hints(hints):
    """Normalises `hints` (None, Hint, dict or tuple, or a list of them)."""
    if hints is None:
        return []
    if isinstance(hints, (Hint, dict)) or (
        isinstance(hints, tuple) and hints and isinstance(hints[0], str)
    ):
        hints = [hints]
    result = []
    for hint in hints:
        if isinstance(hint, dict):
            hint = Hint(**hint)
        elif isinstance(hint, tuple):
            hint = Hint(*hint)
        elif not isinstance(hint, Hint):
            raise TypeError(
                "`hints` must be Hint objects, dicts or "
                "(student_layer, teacher_layer[, weight]) tuples. "
                f"Received: {hint!r}"
            )
        result.append(hint)
    return result


def _layer_output(model, layer_name, role):
    if not getattr(model, "inputs", None):
        raise ValueError(
            f"Hints need a functional or Sequential {role} built on an Input "
            f"so that layer '{layer_name}' can be read; received a "
            f"{type(model).__name__} without symbolic inputs."
        )
    try:
        return model.get_layer(layer_name).output
    except ValueError:
        names = [layer.name for layer in model.layers]
        raise ValueError(
            f"The {role} has no layer named '{layer_name}' (layers: {names})."
        ) from None


def feature_model(model, layer_names, role):
    """A model returning `[model.output, *outputs of layer_names]`.

    It shares the layers (and so the weights) of `model`: one forward pass
    gives both the logits and the hint features.
    """
    outputs = [model.outputs[0]] + [
        _layer_output(model, name, role) for name in layer_names
    ]
    return keras.Model(model.inputs, outputs, name=f"{model.name}_features")


def feature_models(student, teacher, hints):
    """The student's and teacher's feature models and the hint projections.

    Args:
        student: The student's logits model (functional or Sequential).
        teacher: The teacher's logits model.
        hints: The `Hint`s (`as_hints`).

    Returns:
        `(student_features, teacher_features, projections)`: models returning
        `[logits, *features of each hint]` (`feature_model`), and one
        projection (or `None`) per hint (`make_projection`).
    """
    student_features = feature_model(
        student, [hint.student_layer for hint in hints], "student"
    )
    teacher_features = feature_model(
        teacher, [hint.teacher_layer for hint in hints], "teacher"
    )
    student_shapes = [output.shape for output in student_features.outputs]
    teacher_shapes = [output.shape for output in teacher_features.outputs]
    projections = [
        make_projection(
            student_shapes[index + 1],
            teacher_shapes[index + 1],
            name=f"hint_projection_{index}",
        )
        for index in range(len(hints))
    ]
    return student_features, teacher_features, projections


def make_projection(student_shape, teacher_shape, name):
    """A projection from student to teacher feature width, or None.

    Args:
        student_shape: Shape of the student features, batch first.
        teacher_shape: Shape of the teacher features, batch first.
        name: Layer name.

    Returns:
        An identity (None) when the shapes match, a built `Dense` layer for
        rank-2 features, or a built 1×1 `Conv2D` for rank-4 feature maps of
        the same spatial size.
    """
    student_shape, teacher_shape = tuple(student_shape), tuple(teacher_shape)
    if student_shape[1:] == teacher_shape[1:]:
        return None
    if len(student_shape) == 2 and len(teacher_shape) == 2:
        layer = keras.layers.Dense(teacher_shape[-1], name=name)
    elif (
        len(student_shape) == 4
        and len(teacher_shape) == 4
        and student_shape[1:3] == teacher_shape[1:3]
    ):
        layer = keras.layers.Conv2D(teacher_shape[-1], 1, name=name)
    else:
        raise ValueError(
            f"Cannot project student features of shape {student_shape} onto "
            f"teacher features of shape {teacher_shape}: hints need rank-2 "
            "features, or rank-4 feature maps with the same spatial size."
        )
    layer.build(student_shape)
    return layer


def hint_values(hints, projections, student_features, teacher_features):
    """Per-example weighted hint loss, summed over the hints.

    Args:
        hints: The `Hint`s.
        projections: One projection layer (or `None`, the identity) per hint
            (`make_projection`).
        student_features: One student feature tensor per hint.
        teacher_features: One teacher feature tensor per hint.

    Returns:
        float32 tensor `(batch,)`: `sum(hint.weight * hint loss)`, the hint
        loss `kdkeras.losses.hint_loss_per_example`.

    Example:

    >>> import numpy as np
    >>> features = np.ones((2, 3), "float32")
    >>> hint_values([Hint("a", "b", weight=0.5)], [None],
    ...             [features], [features + 2.0]).numpy().tolist()
    [2.0, 2.0]
    """
    total = 0.0
    for hint, projection, student_feature, teacher_feature in zip(
        hints, projections, student_features, teacher_features, strict=True
    ):
        if projection is not None:
            student_feature = projection(student_feature)
        total = total + hint.weight * losses.hint_loss_per_example(
            teacher_feature, ops.cast(student_feature, "float32")
        )
    return total
