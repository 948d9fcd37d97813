"""Weight clustering of a Keras 3 student while it keeps distilling.

The student crosses the bridge to `tf_keras`; every layer whose weights
TFMOT's clustering registry clusters (`Dense`, convolution kernels, the
pointwise kernel of separable convolutions) is wrapped by
`tfmot.clustering.keras.cluster_weights` (k-means++ initial centroids), the
centroids are fine-tuned with the distillation loss, `strip_clustering`
writes each kernel as its centroids, and the student comes back as Keras 3
with at most `number_of_clusters` distinct values per kernel. Layers with
weights TFMOT does not cluster (`DepthwiseConv2D`, normalisations, ...) and
kernels with fewer values than clusters are left as they are and listed in
the returned model's `compression_report`.
"""

import functools

import numpy as np
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.clustering.keras import (
    clustering_registry,
)

from kdkeras._step import arguments
from kdkeras.compress import distill

CLUSTERABLE_LAYERS = (
    "Conv1D",
    "Conv1DTranspose",
    "Conv2D",
    "Conv2DTranspose",
    "Conv3D",
    "Dense",
    "Embedding",
)


def _planner(number_of_clusters):
    """`plan(layer)`: True to cluster it, a reason when it stays as it is."""
    registry = clustering_registry.ClusteringRegistry

    def plan(layer):
        if not layer.weights:
            return None
        if not registry.supports(layer):
            return "not in TFMOT's clustering registry"
        # The registry's own table of the weights it clusters, per class.
        names = registry._weight_names(layer)
        if not names:
            return "TFMOT clusters none of its weights"
        smallest = min(int(np.prod(getattr(layer, name).shape)) for name in names)
        if smallest < number_of_clusters:
            return f"its kernel has {smallest} values, fewer than the clusters"
        return True

    return plan


def unique_kernel_values(model):
    """Number of distinct values per clusterable kernel.

    Args:
        model: A Keras 3 or `tf_keras` model (without TFMOT wrappers).

    Returns:
        Dict `{layer name: number of distinct kernel values}`.
    """
    return distill.per_kernel(
        model, CLUSTERABLE_LAYERS, lambda kernel: int(np.unique(kernel).size)
    )


def cluster(
    student,
    teacher,
    x,
    y,
    *,
    teacher_logits=None,
    number_of_clusters=16,
    **fitting,
):
    """Clusters each kernel of a Keras 3 student while distilling.

    Args:
        student, teacher, x, y, teacher_logits: As in `distill.fine_tune`: the
            Keras 3 student and teacher (or the teacher's logits on `x`),
            the training inputs and their integer labels.
        number_of_clusters: Distinct values per kernel (>= 2).
        **fitting: Arguments of `fit_distilling`: `epochs` (default 1),
            `batch_size`, `temperature`, `alpha`, `learning_rate`,
            `validation_data`, `verbose`.

    Returns:
        The clustered Keras 3 student (wrappers stripped), with a
        `compression_report` (`CompressionReport`): the layers clustered and
        those left as they are.

    Example:

    ```python
    clustered = kdkeras.compress.cluster(student, teacher, x, y,
                                         number_of_clusters=16)
    kdkeras.compress.unique_kernel_values(clustered)  # {'hidden_1': 16, ...}
    ```
    """
    number_of_clusters = arguments.check_positive_int(
        "number_of_clusters", number_of_clusters
    )
    if number_of_clusters < 2:
        raise ValueError(
            "`number_of_clusters` must be >= 2. "
            f"Received: number_of_clusters={number_of_clusters}"
        )
    clustering = tfmot.clustering.keras
    wrapper = functools.partial(
        clustering.cluster_weights,
        number_of_clusters=number_of_clusters,
        cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
    )
    wrap = distill.wrap_layers(_planner(number_of_clusters), wrapper, "cluster")
    return distill.fine_tune(
        student,
        teacher,
        x,
        y,
        wrap,
        teacher_logits,
        strip=clustering.strip_clustering,
        **fitting,
    )
