"""Quantization-aware training (int8) of a Keras 3 student, still distilling.

The student crosses the bridge to `tf_keras`; each layer is annotated as
TFMOT's default 8-bit scheme decides (`quantize_annotate_layer`), and
`quantize_apply` inserts the fake-quantization wrappers; the wrapped student
is fine-tuned with the distillation loss. What is quantized:

- every layer TFMOT's default 8-bit registry supports with its activation
  (convolutions, `Dense`, `Add`, `Concatenate`, pooling, `ReLU`, the
  activations it knows, reshaping and padding layers);
- `BatchNormalization` directly after a convolution (TFMOT folds it into
  that layer);
- through TFMOT's `Default8BitOutputQuantizeConfig` (the output quantized,
  as TFLite computes them in int8): `Multiply` (squeeze-and-excite blocks),
  `Rescaling`, and `Activation` layers whose activation the registry does
  not list (`hard_silu`, `hard_sigmoid`, ...).

Every other layer (`LayerNormalization`, `Normalization`, a
`BatchNormalization` that follows no convolution, TensorFlow ops such as
`x + 3.0`, a convolution whose fused activation TFMOT cannot quantize) is
left in float and listed, with the reason, in the returned model's
`compression_report`. The result stays a `tf_keras` model:
`export.to_tflite.export_tflite(model, path, quantize="qat")` converts it to
an int8 TFLite file (weights and activations int8, float32 input and output).

`DepthwiseConv2D` kernels are fake-quantized per output channel, as TFLite
stores them. TFMOT's default quantizer takes one range per index of the
kernel's last axis, which for a `(kh, kw, channels, multiplier)` depthwise
kernel is the multiplier (1 in MobileNets and EfficientNets): one range for
every channel, while the converter folds the following `BatchNormalization`
into the kernel and quantizes it per channel. Per channel, quantizing the
kernel and scaling it by the folded normalization commute.
"""

import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras
from tensorflow_model_optimization.python.core.quantization.keras import (
    quantize_aware_activation,
)
from tensorflow_model_optimization.python.core.quantization.keras import quantizers
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (  # noqa: E501
    default_8bit_quantize_configs,
)
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (  # noqa: E501
    default_8bit_quantize_registry,
)

from kdkeras import _model_graph as model_graph
from kdkeras.compress import distill

# Layers TFMOT's registry leaves out whose TFLite kernels are int8 in and out.
_OUTPUT_QUANTIZED = (tf_keras.layers.Multiply, tf_keras.layers.Rescaling)
_FOLDED_INTO = (tf_keras.layers.Conv2D, tf_keras.layers.DepthwiseConv2D)


class DepthwiseKernelQuantizer(quantizers.LastValueQuantizer):
    """8-bit symmetric fake quantization of a depthwise kernel per channel.

    The `(kh, kw, channels, multiplier)` kernel is quantized with one range
    per output channel (`channel * multiplier + m`), TFLite's per-channel
    layout for `DEPTHWISE_CONV_2D`.
    """

    def __init__(self):
        super().__init__(num_bits=8, per_axis=True, symmetric=True, narrow_range=True)

    def build(self, tensor_shape, name, layer):
        channels = int(tensor_shape[-2]) * int(tensor_shape[-1])
        return {
            "min_var": layer.add_weight(
                name + "_min",
                shape=(channels,),
                initializer=tf_keras.initializers.Constant(-6.0),
                trainable=False,
            ),
            "max_var": layer.add_weight(
                name + "_max",
                shape=(channels,),
                initializer=tf_keras.initializers.Constant(6.0),
                trainable=False,
            ),
        }

    def __call__(self, inputs, training, weights, **kwargs):
        height, width, channels, multiplier = inputs.shape
        per_channel = tf.reshape(inputs, (height, width, 1, channels * multiplier))
        outputs = super().__call__(per_channel, training, weights, **kwargs)
        return tf.reshape(outputs, inputs.shape)

    def get_config(self):
        return {}


class DepthwiseQuantizeConfig(
    default_8bit_quantize_registry.Default8BitConvQuantizeConfig
):
    """TFMOT's `DepthwiseConv2D` config with `DepthwiseKernelQuantizer`."""

    def __init__(self, weight_attrs, activation_attrs, quantize_output):
        super().__init__(weight_attrs, activation_attrs, quantize_output)
        self.weight_quantizer = DepthwiseKernelQuantizer()


class _Registry(default_8bit_quantize_registry.Default8BitQuantizeRegistry):
    def __init__(self):
        super().__init__()
        self._layer_quantize_map[tf_keras.layers.DepthwiseConv2D] = (
            DepthwiseQuantizeConfig(["depthwise_kernel"], ["activation"], False)
        )


class _Scheme(tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme):
    """TFMOT's default 8-bit scheme, depthwise kernels quantized per channel."""

    def get_quantize_registry(self):
        return _Registry()


def _known_activations():
    activation = quantize_aware_activation.QuantizeAwareActivation
    return (
        activation._PRE_QUANT_ACTIVATIONS
        | activation._POST_QUANT_ACTIVATIONS
        | activation._NO_QUANTIZE_ACTIVATIONS
    )


def _activation_name(function):
    return getattr(function, "__name__", type(function).__name__)


def _folded_batch_norms(model):
    """Names of the `BatchNormalization` layers TFMOT folds into a layer."""
    calls = model_graph.graph_calls(model)
    consumers = {}
    for call in calls:
        for tensor in tf.nest.flatten((call.args, call.kwargs)):
            consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    producers = {
        id(tensor): call.operation for call in calls for tensor in call.outputs
    }
    folded = set()
    for call in calls:
        if not isinstance(call.operation, tf_keras.layers.BatchNormalization):
            continue
        source = call.args[0] if call.args else None
        producer = producers.get(id(source))
        if isinstance(producer, _FOLDED_INTO) and consumers.get(id(source)) == 1:
            folded.add(call.operation.name)
    return folded


def _planner(model):
    """`plan(layer)`: a `QuantizeConfig` or True to quantize, else a reason."""
    registry = tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme().get_quantize_registry()
    folded = _folded_batch_norms(model)
    known = _known_activations()

    def plan(layer):
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            if layer.name in folded:
                return True
            return (
                "a BatchNormalization after no convolution: TFMOT only folds it "
                "into the layer before"
            )
        if registry.supports(layer):
            if isinstance(layer, tf_keras.layers.Activation):
                try:
                    registry.get_quantize_config(layer).get_output_quantizers(layer)
                except ValueError:
                    return (
                        default_8bit_quantize_configs.Default8BitOutputQuantizeConfig()
                    )
                return True
            activation = getattr(layer, "activation", None)
            if activation is not None and _activation_name(activation) not in known:
                return (
                    f"its activation {_activation_name(activation)!r} has no "
                    "TFMOT quantizer"
                )
            return True
        if isinstance(layer, _OUTPUT_QUANTIZED):
            return default_8bit_quantize_configs.Default8BitOutputQuantizeConfig()
        return "not supported by TFMOT's default 8-bit scheme"

    return plan


def quantize(model):
    """Annotates a `tf_keras` model for int8 QAT and applies the wrappers.

    Args:
        model: A `tf_keras` functional model (e.g. from `to_tf_keras`).

    Returns:
        `(quantization-aware tf_keras model, CompressionReport)`.
    """
    plan = _planner(model)
    annotate = tfmot.quantization.keras.quantize_annotate_layer
    wrapped, left_as_is = [], {}

    def clone_function(layer):
        decision = plan(layer)
        if isinstance(decision, str):
            left_as_is[layer.name] = decision
            return layer
        wrapped.append(layer.name)
        if decision is True:
            return annotate(layer)
        return annotate(layer, quantize_config=decision)

    annotated = tf_keras.models.clone_model(model, clone_function=clone_function)
    with tfmot.quantization.keras.quantize_scope(
        {
            "Default8BitOutputQuantizeConfig": (
                default_8bit_quantize_configs.Default8BitOutputQuantizeConfig
            ),
            "DepthwiseQuantizeConfig": DepthwiseQuantizeConfig,
            "DepthwiseKernelQuantizer": DepthwiseKernelQuantizer,
        }
    ):
        quantized = tfmot.quantization.keras.quantize_apply(annotated, _Scheme())
    report = distill.CompressionReport("quantization_aware", tuple(wrapped), left_as_is)
    return quantized, report


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
        The quantization-aware `tf_keras` model (fake-quant wrappers), with a
        `compression_report` (`CompressionReport`) listing the layers left
        in float; export it with `export.to_tflite.export_tflite(...,
        quantize="qat")`.

    Example:

    ```python
    qat_model = kdkeras.compress.quantization_aware(student, teacher, x, y)
    qat_model.compression_report.left_as_is  # {'layer_normalization': ...}
    export.to_tflite.export_tflite(qat_model, "student_int8.tflite",
                                   quantize="qat")
    ```
    """
    return distill.fine_tune(
        student, teacher, x, y, quantize, teacher_logits=teacher_logits, **fitting
    )
