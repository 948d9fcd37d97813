"""Quantization-aware training (int8) of a Keras 3 student, still distilling.

The student crosses the bridge to `tf_keras`; every layer TFMOT's default
8-bit registry supports is annotated and `quantize_apply` inserts the
fake-quantization wrappers (`BatchNormalization` is folded into the
convolution before it; `Rescaling` only has its output quantized); the wrapped student is fine-tuned with the distillation loss. The
result stays a `tf_keras` model: `export.to_tflite.export_tflite(model, path,
quantize="qat")` converts it to an int8 TFLite file (weights and activations
int8, float32 input and output).
"""

import tensorflow_model_optimization as tfmot
import tf_keras

from kdkeras.compress import bridge
from kdkeras.compress import distill


class _OutputQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """Quantizes only a layer's output (8-bit, asymmetric, moving average)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [
            tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False
            )
        ]

    def get_config(self):
        return {}


def quantization_aware(
    student,
    teacher,
    x,
    y,
    *,
    teacher_logits=None,
    epochs=1,
    batch_size=128,
    temperature=3.0,
    alpha=0.1,
    learning_rate=1e-4,
    validation_data=None,
    verbose=0,
):
    """Fine-tunes a quantization-aware copy of a Keras 3 student, distilling.

    Args:
        student: Keras 3 student returning logits.
        teacher: Keras 3 teacher, run once in inference mode on `x`; `None`
            when `teacher_logits` are given.
        x: Training inputs `(N, ...)`.
        y: Integer labels `(N,)`.
        teacher_logits: Optional precomputed teacher logits `(N, classes)`.
        epochs: Fine-tuning epochs.
        batch_size: Batch size.
        temperature: Softmax temperature of the soft-target loss.
        alpha: Weight of the hard-label loss.
        learning_rate: Adam learning rate.
        validation_data: Optional `(x_val, y_val)`.
        verbose: `fit` verbosity.

    Returns:
        The quantization-aware `tf_keras` model (fake-quant wrappers); export
        it with `export.to_tflite.export_tflite(..., quantize="qat")`.

    Example:

    ```python
    qat_model = kdkeras.compress.quantization_aware(student, teacher, x, y)
    export.to_tflite.export_tflite(qat_model, "student_int8.tflite",
                                   quantize="qat")
    ```
    """
    teacher_logits = distill.soft_targets(teacher, x, teacher_logits)
    legacy = bridge.to_tf_keras(student)
    scheme = tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()
    registry = scheme.get_quantize_registry()

    def annotate(layer):
        # BatchNormalization is annotated so that TFMOT folds it into the
        # convolution before it; `Rescaling` gets an output quantizer only.
        if registry.supports(layer) or isinstance(
            layer, tf_keras.layers.BatchNormalization
        ):
            return tfmot.quantization.keras.quantize_annotate_layer(layer)
        if isinstance(layer, tf_keras.layers.Rescaling):
            return tfmot.quantization.keras.quantize_annotate_layer(
                layer, quantize_config=_OutputQuantizeConfig()
            )
        return layer

    annotated = tf_keras.models.clone_model(legacy, clone_function=annotate)
    with tfmot.quantization.keras.quantize_scope(
        {"_OutputQuantizeConfig": _OutputQuantizeConfig}
    ):
        quantized = tfmot.quantization.keras.quantize_apply(annotated)
    distill.fit_distilling(
        quantized,
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
    return quantized
