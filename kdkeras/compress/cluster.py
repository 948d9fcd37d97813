"""Weight clustering of a Keras 3 student while it keeps distilling.

The student crosses the bridge to `tf_keras`; every `Dense` and `Conv2D`
kernel is wrapped by `tfmot.clustering.keras.cluster_weights` (k-means++
initial centroids), the centroids are fine-tuned with the distillation
loss, `strip_clustering` writes each kernel as its centroids, and the student
comes back as Keras 3 with at most `number_of_clusters` distinct values per
kernel (`DepthwiseConv2D` kernels are not clusterable in TFMOT).
"""

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras

from kdkeras.compress import bridge
from kdkeras.compress import distill

CLUSTERABLE_LAYERS = ("Dense", "Conv2D")


def unique_kernel_values(model):
    """Number of distinct values per `Dense`/`Conv2D` kernel.

    Args:
        model: A Keras 3 or `tf_keras` model (without TFMOT wrappers).

    Returns:
        Dict `{layer name: number of distinct kernel values}`.
    """
    return {
        layer.name: int(np.unique(layer.get_weights()[0]).size)
        for layer in model.layers
        if type(layer).__name__ in CLUSTERABLE_LAYERS
    }


def cluster(
    student,
    teacher,
    x,
    y,
    *,
    teacher_logits=None,
    number_of_clusters=16,
    epochs=1,
    batch_size=128,
    temperature=3.0,
    alpha=0.1,
    learning_rate=1e-4,
    validation_data=None,
    verbose=0,
):
    """Clusters each kernel of a Keras 3 student while distilling.

    Args:
        student: Keras 3 student returning logits.
        teacher: Keras 3 teacher, run once in inference mode on `x`; `None`
            when `teacher_logits` are given.
        x: Training inputs `(N, ...)`.
        y: Integer labels `(N,)`.
        teacher_logits: Optional precomputed teacher logits `(N, classes)`.
        number_of_clusters: Distinct values per kernel (>= 2).
        epochs: Fine-tuning epochs.
        batch_size: Batch size.
        temperature: Softmax temperature of the soft-target loss.
        alpha: Weight of the hard-label loss.
        learning_rate: Adam learning rate.
        validation_data: Optional `(x_val, y_val)`.
        verbose: `fit` verbosity.

    Returns:
        The clustered Keras 3 student (wrappers stripped).

    Example:

    ```python
    clustered = kdkeras.compress.cluster(student, teacher, x, y,
                                         number_of_clusters=16)
    kdkeras.compress.unique_kernel_values(clustered)  # {'hidden_1': 16, ...}
    ```
    """
    number_of_clusters = distill._check_positive_int(
        "number_of_clusters", number_of_clusters
    )
    if number_of_clusters < 2:
        raise ValueError(
            "`number_of_clusters` must be >= 2. "
            f"Received: number_of_clusters={number_of_clusters}"
        )
    teacher_logits = distill.soft_targets(teacher, x, teacher_logits)
    legacy = bridge.to_tf_keras(student)
    init = tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS

    def wrap(layer):
        if type(layer).__name__ in CLUSTERABLE_LAYERS:
            return tfmot.clustering.keras.cluster_weights(
                layer,
                number_of_clusters=number_of_clusters,
                cluster_centroids_init=init,
            )
        return layer

    wrapped = tf_keras.models.clone_model(legacy, clone_function=wrap)
    distill.fit_distilling(
        wrapped,
        x,
        y,
        teacher_logits,
        epochs=epochs,
        batch_size=batch_size,
        temperature=temperature,
        alpha=alpha,
        learning_rate=learning_rate,
        validation_data=validation_data,
        verbose=verbose,
    )
    stripped = tfmot.clustering.keras.strip_clustering(wrapped)
    return bridge.from_tf_keras(stripped)
