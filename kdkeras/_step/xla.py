"""When kdkeras compiles a step with XLA (`jit_compile="auto"`).

Keras' `"auto"` turns XLA off on every machine without a GPU or TPU. For the
networks distillation is most often benchmarked with, stacks of dense layers,
that leaves speed behind: on CPU, XLA runs the 800-800 MLP student's training
step faster (`benchmarks/train_throughput.py`; figures in BENCHMARKS.md). But
Keras has reasons for its rule, and on CPU they hold for two kinds of layers
(measured in BENCHMARKS.md, "XLA where it hurts"):

- convolutions and pooling: a small CNN student trains slower with XLA, and
  so does a CNN teacher's forward pass;
- random draws in training (`Dropout`, `GaussianNoise`, ...:
  `kdkeras._random_layers`): XLA's random number generation on CPU made the
  1200-1200 MLP teacher with dropout train slower.

So on a CPU-only machine, kdkeras' `"auto"` uses XLA only for models free of
both (`xla_helps_on_cpu`): the Distiller asks the models that train (student,
hint projections), and `online_soft_target_dataset` asks the teacher it runs
in inference (where dropout is the identity). With an accelerator, `"auto"`
uses XLA whenever every layer allows it, as Keras does.
"""

import keras
import tensorflow as tf

from kdkeras import _random_layers as random_layers

# Layers that XLA runs slower than TensorFlow's own CPU kernels (oneDNN).
CPU_SLOW_LAYERS = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
)


def cpu_only():
    """Whether TensorFlow sees no device but CPUs (no GPU, no TPU).

    Returns:
        Bool.
    """
    return all(
        device.device_type == "CPU" for device in tf.config.list_physical_devices()
    )


def xla_helps_on_cpu(trained=(), inference=()):
    """Whether XLA is expected to speed these models up on a CPU.

    Args:
        trained: Models (or layers) that train in the step: their random
            draws (dropout, noise) run.
        inference: Models (or layers) run in inference only (a teacher).

    Returns:
        False if any of them holds a convolution or pooling layer, or if a
        trained one holds a layer that draws random numbers; True otherwise.

    Example:

    >>> mlp = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> xla_helps_on_cpu(trained=[mlp])
    True
    >>> with_dropout = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dropout(0.5), keras.layers.Dense(3)])
    >>> xla_helps_on_cpu(trained=[with_dropout])
    False
    >>> xla_helps_on_cpu(inference=[with_dropout])
    True
    """
    for model in list(trained) + list(inference):
        layers = random_layers.sublayers(model)
        if any(isinstance(layer, CPU_SLOW_LAYERS) for layer in layers):
            return False
    return not any(random_layers.random_in_training(model) for model in trained)


def auto_jit(trained=(), inference=()):
    """Whether `jit_compile="auto"` should use XLA for these models.

    Always on a machine with an accelerator; on a CPU-only machine only where
    `xla_helps_on_cpu` says XLA is faster. (Layers XLA cannot compile and op
    determinism are the callers' checks.)

    Args:
        trained, inference: As in `xla_helps_on_cpu`.

    Returns:
        Bool.
    """
    return not cpu_only() or xla_helps_on_cpu(trained, inference)
