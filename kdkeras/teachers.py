"""Teachers: ensembles of models, and models whose output is probabilities.

Everything in kdkeras works on LOGITS. Two helpers make other models fit:

- `outputs_probabilities(model)` tells whether a model ends in a softmax
  (`Dense(..., activation="softmax")`, `Softmax()`, `Activation("softmax")`),
  also when value-preserving layers follow it (`Identity`, dropout,
  `Activation("linear")`, `keras.ops.clip`: `kdkeras._model_graph`),
  and `logits_model(model)` returns a model that outputs logits for it: the
  exact pre-softmax values when the graph allows it, otherwise
  `log(clip(p, epsilon, 1))`, whose softmax is `p` again.
- `Ensemble(models, mean=...)` averages several members into one teacher (the
  "cumbersome model" of Hinton et al., 2015) and outputs the logits of the
  averaged distribution.
"""

import math

import keras
import numpy as np
from keras import ops

from kdkeras import _model_graph as model_graph

MEANS = ("arithmetic", "geometric")

# Smallest positive normal float32: `log` of it is -87.3, so clipping there
# keeps the soft targets' small probabilities (which matter at high
# temperature) instead of flooring them at `keras.config.epsilon()` (1e-7).
DEFAULT_EPSILON = float(np.finfo(np.float32).tiny)


def _is_softmax(activation):
    return getattr(activation, "__name__", None) == "softmax"


def _output_node(model):
    """`(operation, input_tensor)` producing a graph model's single output.

    Returns `(None, None)` when the model has no symbolic graph (a subclassed
    model) or several outputs.
    """
    try:
        _, output = model_graph.single_input_output(model, "model")
    except ValueError:
        return None, None
    # A softmax followed by an Identity, a clip, ...: still probabilities.
    output = model_graph.before_value_preserving(output)
    operation, inputs = model_graph.producer(output)
    if operation is None:
        return None, None
    return operation, (inputs[0] if len(inputs) == 1 else None)


def outputs_probabilities(model):
    """Whether `model`'s output layer applies a softmax (outputs probabilities).

    Detects a final `Dense`/`Conv`/... layer with `activation="softmax"`, a
    `keras.layers.Softmax` layer and `keras.layers.Activation("softmax")`,
    also when the output layer is itself a nested functional/sequential model.
    Subclassed models (no symbolic graph) and `Ensemble`s, which output
    logits, return `False`.

    Args:
        model: A `keras.Model`.

    Returns:
        bool.

    Example:

    >>> import keras
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    >>> outputs_probabilities(model)
    True
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: model={type(model).__name__}"
        )
    if isinstance(model, Ensemble):
        return False
    operation, _ = _output_node(model)
    if operation is None and isinstance(model, keras.Sequential):
        # An unbuilt Sequential has no graph yet, but its last layer is known.
        layers = list(model.layers)
        while layers and model_graph.preserves_values(layers[-1]):
            layers.pop()
        operation = layers[-1] if layers else None
    if operation is None:
        return False
    if isinstance(operation, keras.Model):
        return outputs_probabilities(operation)
    if isinstance(operation, keras.layers.Softmax):
        return True
    return _is_softmax(getattr(operation, "activation", None))


@keras.saving.register_keras_serializable(package="kdkeras")
class DenseLogits(keras.layers.Layer):
    """Pre-activation output `x @ kernel + bias` of a `Dense` layer.

    Shares the `Dense` layer's weights (no copy); used by `logits_model` to
    recover the exact logits under a `Dense(..., activation="softmax")`.

    Args:
        dense: A `keras.layers.Dense` layer.
        **kwargs: Base layer arguments (`name`, ...).
    """

    def __init__(self, dense, **kwargs):
        kwargs.setdefault("dtype", dense.dtype_policy)
        super().__init__(**kwargs)
        self.dense = dense

    def build(self, input_shape):
        if not self.dense.built:
            self.dense.build(input_shape)

    def call(self, inputs):
        # Same ops, same order as `Dense.call`, minus the activation.
        outputs = ops.matmul(inputs, self.dense.kernel)
        if self.dense.bias is not None:
            outputs = ops.add(outputs, self.dense.bias)
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.dense.units,)

    def get_config(self):
        config = super().get_config()
        config["dense"] = keras.saving.serialize_keras_object(self.dense)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["dense"] = keras.saving.deserialize_keras_object(config["dense"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="kdkeras")
class ProbabilityLogits(keras.layers.Layer):
    """`log(clip(probabilities, epsilon, 1))`: logits whose softmax is `p`.

    Computed in float32 at least.

    Args:
        epsilon: Positive float, the smallest probability kept.
        **kwargs: Base layer arguments.
    """

    def __init__(self, epsilon=DEFAULT_EPSILON, **kwargs):
        super().__init__(**kwargs)
        if not (isinstance(epsilon, (int, float)) and 0 < epsilon < 1):
            raise ValueError(
                f"`epsilon` must be a float in (0, 1). Received: epsilon={epsilon!r}"
            )
        self.epsilon = float(epsilon)

    def call(self, probabilities):
        if probabilities.dtype in ("float16", "bfloat16"):
            probabilities = ops.cast(probabilities, "float32")
        return ops.log(ops.clip(probabilities, self.epsilon, 1.0))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["epsilon"] = self.epsilon
        return config


def logits_model(model, epsilon=DEFAULT_EPSILON):
    """A model that outputs logits (log-probabilities) for `model`.

    - Output layer `Softmax()` or `Activation("softmax")`: the model up to
      that layer's input, i.e. the exact logits.
    - Output layer `Dense(..., activation="softmax")`: the same graph with the
      last layer replaced by `DenseLogits`, which shares the `Dense` weights
      and returns its exact pre-activation values.
    - Any other softmax output (e.g. a `Conv` with a softmax activation, a
      quantized `Dense`, a nested model): `log(clip(p, epsilon, 1))`.

    The returned model shares all weights with `model` (training one trains
    the other). A model that does not output probabilities is returned
    unchanged, so `logits_model` can be applied to any teacher or student.

    Args:
        model: A `keras.Model` (functional or sequential for the exact paths).
        epsilon: Smallest probability kept by the `log(clip(...))` fallback.
            Default: the smallest normal float32, `log` of which is -87.3.

    Returns:
        A `keras.Model` outputting logits.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    >>> x = np.ones((2, 4), "float32")
    >>> logits = logits_model(model)(x)
    >>> np.allclose(keras.ops.softmax(logits), model(x), atol=1e-6)
    True
    """
    if not outputs_probabilities(model):
        return model
    operation, operation_input = _output_node(model)
    if operation is None:
        raise ValueError(
            f"`model` ({model.name}) outputs probabilities but is not built; "
            "give it a keras.Input (or call it once) before `logits_model`."
        )
    name = f"{model.name}_logits"
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    if operation_input is not None:
        if isinstance(operation, keras.layers.Activation) or (
            isinstance(operation, keras.layers.Softmax)
            and operation.axis in (-1, len(operation_input.shape) - 1)
        ):
            return keras.Model(inputs, operation_input, name=name)
        if (
            type(operation) is keras.layers.Dense
            and getattr(operation, "quantization_mode", None) is None
        ):
            outputs = DenseLogits(operation, name=f"{operation.name}_logits")(
                operation_input
            )
            return keras.Model(inputs, outputs, name=name)
    outputs = ProbabilityLogits(epsilon, name="probability_logits")(model.outputs[0])
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="kdkeras")
class EnsembleMean(keras.layers.Layer):
    """Combines members' logits into the logits of their mean distribution.

    Input: a list of `n` logits tensors `(batch, classes)`, stacked to
    `(n, batch, classes)` and turned into log-probabilities in one op.

    - `"arithmetic"`: `log(mean_i softmax(z_i))`
      `= logsumexp_i(log_softmax(z_i)) - log(n)`.
    - `"geometric"`: `log_softmax(mean_i log_softmax(z_i))` (the normalised
      geometric mean of the members' distributions).

    Both are computed from log-softmax in float32 (at least), so large logits
    stay finite. The output is itself normalised log-probabilities.

    Args:
        mean: `"arithmetic"` or `"geometric"`.
        **kwargs: Base layer arguments.
    """

    def __init__(self, mean="arithmetic", **kwargs):
        super().__init__(**kwargs)
        self.mean = _check_mean(mean)

    def call(self, member_logits):
        stacked = ops.stack(list(member_logits), axis=0)
        if stacked.dtype in ("float16", "bfloat16"):
            stacked = ops.cast(stacked, "float32")
        log_probabilities = ops.log_softmax(stacked, axis=-1)
        if self.mean == "arithmetic":
            count = len(member_logits)
            return ops.logsumexp(log_probabilities, axis=0) - math.log(count)
        return ops.log_softmax(ops.mean(log_probabilities, axis=0), axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config["mean"] = self.mean
        return config


def _check_mean(mean):
    if mean not in MEANS:
        raise ValueError(f"`mean` must be one of {MEANS}. Received: mean={mean!r}")
    return mean


def _check_members(models):
    if isinstance(models, keras.Model) or not isinstance(models, (list, tuple)):
        raise TypeError(
            "`models` must be a non-empty list of keras.Model. "
            f"Received: models={type(models).__name__}"
        )
    if not models:
        raise ValueError(
            "`models` must be a non-empty list of keras.Model. Received: []"
        )
    reference = None
    for index, model in enumerate(models):
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"`models[{index}]` must be a keras.Model. "
                f"Received: {type(model).__name__}"
            )
        model_input, model_output = model_graph.single_input_output(
            model, f"models[{index}]"
        )
        signature = (tuple(model_input.shape[1:]), model_output.shape[-1])
        if reference is None:
            reference = signature
        elif signature != reference:
            raise ValueError(
                f"`models[{index}]` ({model.name}) has input shape "
                f"{signature[0]} and {signature[1]} classes; `models[0]` has "
                f"{reference[0]} and {reference[1]}. All members must match."
            )
    return list(models)


@keras.saving.register_keras_serializable(package="kdkeras")
class Ensemble(keras.Model):
    """An ensemble of models used as one teacher; outputs LOGITS.

    All members run on the same input in one forward pass; their outputs are
    stacked and combined by `EnsembleMean`:

    - `mean="arithmetic"`: logits `log(mean_i softmax(z_i))`, the log of the
      averaged probabilities (Hinton et al.'s ensemble).
    - `mean="geometric"`: logits `log_softmax(mean_i log_softmax(z_i))`, the
      renormalised geometric mean of the members' distributions.

    Members may output logits or probabilities (a final softmax); the latter
    are converted with `logits_model`. An `Ensemble` is a functional model:
    it has `inputs`/`outputs`, can be called, `predict`-ed, saved to `.keras`
    and loaded back (`safe_mode=True` works), and used as a teacher anywhere
    a logits model is expected.

    Args:
        models: Non-empty list of built `keras.Model`s with one input of the
            same shape and one output with the same number of classes.
        mean: `"arithmetic"` (default) or `"geometric"`.
        name: Model name.
        **kwargs: Other `keras.Model` arguments (e.g. `trainable`).

    Example:

    >>> import keras, numpy as np
    >>> def member(seed):
    ...     keras.utils.set_random_seed(seed)
    ...     return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> teacher = Ensemble([member(1), member(2)], mean="arithmetic")
    >>> probabilities = keras.ops.softmax(teacher(np.ones((2, 4), "float32")))
    >>> np.allclose(keras.ops.sum(probabilities, axis=-1), 1.0, atol=1e-6)
    True
    """

    def __init__(self, models, mean="arithmetic", name="ensemble", **kwargs):
        members = _check_members(models)
        mean = _check_mean(mean)
        reference = members[0].inputs[0]
        inputs = keras.Input(
            shape=tuple(reference.shape[1:]),
            dtype=reference.dtype,
            name=f"{name}_input",
        )
        member_logits = [
            logits_model(member)(inputs)
            if outputs_probabilities(member)
            else member(inputs)
            for member in members
        ]
        outputs = EnsembleMean(mean, name=f"{name}_{mean}_mean")(member_logits)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.members = members
        self.mean = mean

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "mean": self.mean,
            "models": [
                keras.saving.serialize_keras_object(member) for member in self.members
            ],
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["models"] = [
            keras.saving.deserialize_keras_object(member, custom_objects=custom_objects)
            for member in config["models"]
        ]
        return cls(**config)
