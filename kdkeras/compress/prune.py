"""Magnitude pruning of a Keras 3 student while it keeps distilling.

The student crosses the bridge to `tf_keras`; every layer whose weights
TFMOT's pruning registry prunes (`Dense`, `Conv1D`/`Conv2D`/`Conv3D` and
transposed kernels, the pointwise kernel of separable convolutions,
`Embedding`) is wrapped by `tfmot.sparsity.keras.prune_low_magnitude` on a
polynomial-decay schedule (sparsity rising from `initial_sparsity` to
`target_sparsity` over the first `pruning_end` fraction of the steps, then
held while the student recovers), it is fine-tuned with the distillation
loss, the wrappers are stripped and the student comes back as Keras 3.
Layers with weights TFMOT does not prune (`DepthwiseConv2D`,
normalisations, `LayerScale`, ...) stay dense and are listed in the returned
model's `compression_report`.
"""

import functools
import math

import numpy as np
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

from kdkeras._step import arguments
from kdkeras.compress import distill

PRUNABLE_LAYERS = (
    "Conv1D",
    "Conv2D",
    "Conv2DTranspose",
    "Conv3D",
    "Dense",
    "Embedding",
)


def _plan(layer):
    """True to prune `layer`; a reason when its weights stay dense."""
    registry = prune_registry.PruneRegistry
    if not layer.weights:
        return None
    if not registry.supports(layer):
        return "not in TFMOT's pruning registry"
    # The registry's own table of the weights it prunes, per layer class.
    if not registry._weight_names(layer):
        return "TFMOT prunes none of its weights"
    return True


def kernel_sparsity(model):
    """Fraction of exactly-zero kernel weights, per prunable layer.

    Args:
        model: A Keras 3 or `tf_keras` model (without TFMOT wrappers).

    Returns:
        Dict `{layer name: fraction of zeros}`.
    """
    return distill.per_kernel(
        model, PRUNABLE_LAYERS, lambda kernel: float(np.mean(kernel == 0))
    )


def pruning_schedule(
    num_examples,
    batch_size,
    epochs,
    target_sparsity=0.8,
    initial_sparsity=0.0,
    pruning_end=0.7,
    updates=10,
):
    """A `PolynomialDecay` schedule that reaches `target_sparsity` in time.

    The masks are updated `updates` times, every `frequency` steps, the last
    update at `end_step` (a multiple of `frequency`), so the final sparsity is
    exactly the target.

    Args:
        num_examples: Training examples per epoch.
        batch_size: Batch size.
        epochs: Number of fine-tuning epochs.
        target_sparsity: Final fraction of zero weights per kernel, in [0, 1).
        initial_sparsity: Sparsity at step 0, at most `target_sparsity`.
        pruning_end: Fraction in (0, 1] of the steps by which the target is
            reached; the remaining steps fine-tune at the target sparsity.
        updates: Number of mask updates.

    Returns:
        `tfmot.sparsity.keras.PolynomialDecay`.
    """
    target_sparsity = arguments.check_fraction(
        "target_sparsity", target_sparsity, upper_inclusive=False
    )
    initial_sparsity = arguments.check_fraction(
        "initial_sparsity", initial_sparsity, upper_inclusive=False
    )
    if initial_sparsity > target_sparsity:
        raise ValueError(
            "`initial_sparsity` must be <= `target_sparsity`. Received: "
            f"initial_sparsity={initial_sparsity}, "
            f"target_sparsity={target_sparsity}"
        )
    pruning_end = arguments.check_fraction("pruning_end", pruning_end)
    if pruning_end == 0:
        raise ValueError("`pruning_end` must be in (0, 1]. Received: 0")
    updates = arguments.check_positive_int("updates", updates)
    total_steps = math.ceil(num_examples / batch_size) * epochs
    # The pruning step counts from 0 to total_steps - 1.
    last_step = max(1, min(total_steps - 1, round(total_steps * pruning_end)))
    frequency = max(1, last_step // updates)
    end_step = max(frequency, (last_step // frequency) * frequency)
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=initial_sparsity,
        final_sparsity=target_sparsity,
        begin_step=0,
        end_step=end_step,
        frequency=frequency,
    )


def prune(
    student,
    teacher,
    x,
    y,
    *,
    teacher_logits=None,
    target_sparsity=0.8,
    initial_sparsity=0.0,
    pruning_end=0.7,
    epochs=2,
    batch_size=128,
    **fitting,
):
    """Prunes a Keras 3 student to `target_sparsity` while distilling.

    Args:
        student, teacher, x, y, teacher_logits: As in `distill.fine_tune`: the
            Keras 3 student and teacher (or the teacher's logits on `x`),
            the training inputs and their integer labels.
        target_sparsity: Final fraction of zero weights in each prunable
            kernel.
        initial_sparsity: Sparsity at the first step.
        pruning_end: Fraction of the steps by which the target is reached.
        epochs: Fine-tuning epochs.
        batch_size: Batch size.
        **fitting: Further arguments of `fit_distilling`: `temperature`,
            `alpha` (`1 - alpha` weighs `T² · KL`), `learning_rate`,
            `validation_data` (reported each epoch), `verbose`.

    Returns:
        The pruned Keras 3 student (wrappers stripped; zeros in the kernels),
        with a `compression_report` (`CompressionReport`): the layers pruned
        and those whose weights stay dense.

    Example:

    ```python
    pruned = kdkeras.compress.prune(student, teacher, x_train, y_train,
                                    target_sparsity=0.8, epochs=2)
    kdkeras.compress.kernel_sparsity(pruned)  # {'hidden_1': 0.8, ...}
    ```
    """
    schedule = pruning_schedule(
        len(x),
        arguments.check_positive_int("batch_size", batch_size),
        arguments.check_positive_int("epochs", epochs),
        target_sparsity,
        initial_sparsity,
        pruning_end,
    )
    sparsity = tfmot.sparsity.keras
    wrapper = functools.partial(sparsity.prune_low_magnitude, pruning_schedule=schedule)
    return distill.fine_tune(
        student,
        teacher,
        x,
        y,
        distill.wrap_layers(_plan, wrapper, "prune"),
        teacher_logits,
        callbacks=[sparsity.UpdatePruningStep()],
        strip=sparsity.strip_pruning,
        epochs=epochs,
        batch_size=batch_size,
        **fitting,
    )
