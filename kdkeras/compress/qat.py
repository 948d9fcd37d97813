"""Quantization-aware training (int8) of a Keras 3 student, still distilling.

The student crosses the bridge to `tf_keras`; every layer TFMOT's default
8-bit registry supports is annotated and `quantize_apply` inserts the
fake-quantization wrappers (`BatchNormalization` is folded into the
convolution before it; `Rescaling` only has its output quantized); the
wrapped student is fine-tuned with the distillation loss. The result stays a
`tf_keras` model: `export.to_tflite.export_tflite(model, path,
quantize="qat")` converts it to an int8 TFLite file (weights and activations
int8, float32 input and output).
"""

import tensorflow_model_optimization as tfmot
import tf_keras

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


def quantization_aware(student, teacher, x, y, *, teacher_logits=None, **fitting):
    """Fine-tunes a quantization-aware copy of a Keras 3 student, distilling.

    Args:
        student, teacher, x, y, teacher_logits: As in `distill.fine_tune`: the
            Keras 3 student and teacher (or the teacher's logits on `x`),
            the training inputs and their integer labels.
        **fitting: Arguments of `fit_distilling`: `epochs` (default 1),
            `batch_size`, `temperature`, `alpha`, `learning_rate`,
            `validation_data`, `verbose`.

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
    return distill.fine_tune(
        student, teacher, x, y, quantize, teacher_logits=teacher_logits, **fitting
    )


def quantize(model):
    """Annotates a `tf_keras` model for int8 QAT and applies the wrappers.

    Every layer TFMOT's default 8-bit registry supports is annotated;
    `BatchNormalization` too, so that TFMOT folds it into the convolution
    before it; `Rescaling` gets an output quantizer only.

    Args:
        model: A `tf_keras` model (e.g. from `to_tf_keras`).

    Returns:
        The `tf_keras` model with fake-quantization wrappers.
    """
    scheme = tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()
    registry = scheme.get_quantize_registry()

    def annotate(layer):
        if registry.supports(layer) or isinstance(
            layer, tf_keras.layers.BatchNormalization
        ):
            return tfmot.quantization.keras.quantize_annotate_layer(layer)
        if isinstance(layer, tf_keras.layers.Rescaling):
            return tfmot.quantization.keras.quantize_annotate_layer(
                layer, quantize_config=_OutputQuantizeConfig()
            )
        return layer

    annotated = tf_keras.models.clone_model(model, clone_function=annotate)
    with tfmot.quantization.keras.quantize_scope(
        {"_OutputQuantizeConfig": _OutputQuantizeConfig}
    ):
        return tfmot.quantization.keras.quantize_apply(annotated)
