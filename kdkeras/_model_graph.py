"""Reading the symbolic graph of a functional or sequential model.

Teachers (`outputs_probabilities`, `logits_model`), the output bias
(`kdkeras.bias`) and the `tf_keras` bridge (`kdkeras.compress`) all ask which
single input and output a model has and which layer call produced a tensor;
the Distiller asks the shapes its teacher and student take and give
(`known_shape`). Keras 3 has no public API for the second; this module is the one place that
reads Keras' graph records (`_keras_history`, `_inbound_nodes`), and the one
that knows which layers keep a tensor's values (`preserves_values`).
"""

import keras


def single_input_output(model, name):
    """The one input and one output tensor of a built graph model.

    Works for Keras 3 and `tf_keras` models alike.

    Args:
        model: A functional or sequential model.
        name: The argument's name, for the error message.

    Returns:
        `(input tensor, output tensor)`.

    Raises:
        ValueError: the model has no symbolic graph (a subclassed or unbuilt
            model) or more than one input or output.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> [tuple(tensor.shape) for tensor in single_input_output(model, "model")]
    [(None, 4), (None, 3)]
    """
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(
            f"`{name}` must be a built functional or sequential model with a "
            "known input shape (give it a `keras.Input`). Received: "
            f"{name}={model.name!r} without inputs"
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"`{name}` must have exactly one input and one output. Received: "
            f"{name}={model.name!r} with {len(inputs)} inputs and "
            f"{len(outputs)} outputs"
        )
    return inputs[0], outputs[0]


def producer(tensor):
    """The layer call that produced a symbolic tensor.

    Args:
        tensor: A symbolic Keras tensor (e.g. a model's output).

    Returns:
        `(layer, input tensors of that call)`, or `(None, [])` for a tensor
        no layer produced.

    Example:

    >>> import keras
    >>> inputs = keras.Input((4,))
    >>> dense = keras.layers.Dense(3, name="logits")
    >>> layer, layer_inputs = producer(dense(inputs))
    >>> layer.name, layer_inputs[0] is inputs
    ('logits', True)
    """
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None, []
    operation = history.operation
    node = operation._inbound_nodes[history.node_index]
    return operation, list(node.input_tensors)


# Layers that return their input at inference, and ops that keep a row of
# probabilities one (a clip within [0, 1]): a softmax followed by them still
# outputs probabilities. A Lambda is never looked through (its code is opaque).
_IDENTITY_LAYERS = (
    "Identity",
    "Dropout",
    "AlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "ActivityRegularization",
)
_VALUE_PRESERVING_OPS = ("Clip",)


def preserves_values(operation):
    """Whether `operation` (a layer or a Keras op) returns its input's values.

    True for inference-identity layers (`Identity`, dropout and noise layers,
    `ActivityRegularization`), `Activation("linear")` and clipping ops
    (`keras.ops.clip`), which keep a probability row a probability row.

    Example:

    >>> import keras
    >>> preserves_values(keras.layers.Identity())
    True
    >>> preserves_values(keras.layers.Dense(2))
    False
    """
    kind = type(operation)
    if kind.__module__.startswith("keras.src.layers") and kind.__name__ in (
        _IDENTITY_LAYERS
    ):
        return True
    if kind is keras.layers.Activation:
        return getattr(operation.activation, "__name__", None) == "linear"
    return (
        kind.__module__.startswith("keras.src.ops")
        and kind.__name__ in _VALUE_PRESERVING_OPS
    )


def before_value_preserving(tensor):
    """`tensor`, walked back through the value-preserving layers producing it.

    Args:
        tensor: A symbolic Keras tensor (e.g. a model's output).

    Returns:
        The first tensor upstream that a value-preserving layer or op
        (`preserves_values`) did not produce; `tensor` itself if none did.

    Example:

    >>> import keras
    >>> inputs = keras.Input((4,))
    >>> probabilities = keras.layers.Dense(3, activation="softmax")(inputs)
    >>> output = keras.layers.Identity()(keras.ops.clip(probabilities, 0.0, 1.0))
    >>> before_value_preserving(output) is probabilities
    True
    """
    while True:
        operation, inputs = producer(tensor)
        if operation is None or len(inputs) != 1 or not preserves_values(operation):
            return tensor
        tensor = inputs[0]


def known_shape(model, attribute):
    """A model's `input_shape` or `output_shape`, where Keras knows it.

    Args:
        model: A Keras model.
        attribute: `"input_shape"` or `"output_shape"`.

    Returns:
        The shape as a tuple, or `None` for a model without a known shape (a
        subclassed or unbuilt model) or with several inputs or outputs.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> known_shape(model, "output_shape")
    (None, 3)
    """
    try:
        shape = getattr(model, attribute)
    except (AttributeError, ValueError):
        return None
    if isinstance(shape, list):
        shape = shape[0] if len(shape) == 1 else None
    return tuple(shape) if shape is not None else None
