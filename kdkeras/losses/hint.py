"""The FitNets hint loss (Romero et al. 2015): feature mean squared error."""

from keras import ops


def hint_loss_per_example(teacher_features, student_features):
    """Per-example FitNets hint loss: mean squared error over feature axes.

    Args:
        teacher_features: Tensor `(batch, ...)`, the teacher's hint layer.
        student_features: Tensor of the same shape (after any projection).

    Returns:
        Tensor `(batch,)`.
    """
    student_features = ops.convert_to_tensor(student_features)
    teacher_features = ops.cast(
        ops.stop_gradient(ops.convert_to_tensor(teacher_features)),
        student_features.dtype,
    )
    squared_error = ops.square(student_features - teacher_features)
    batch = ops.shape(squared_error)[0]
    return ops.mean(ops.reshape(squared_error, (batch, -1)), axis=-1)


def hint_loss(teacher_features, student_features):
    """FitNets hint loss (mean squared error), mean over the batch.

    Example:

    >>> import numpy as np
    >>> teacher_features = np.array([[1.0, 2.0]], "float32")
    >>> float(hint_loss(teacher_features, teacher_features + 1.0))
    1.0
    """
    return ops.mean(hint_loss_per_example(teacher_features, student_features))
