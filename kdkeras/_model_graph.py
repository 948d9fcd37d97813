"""Reading the symbolic graph of a functional or sequential model.

Teachers (`outputs_probabilities`, `logits_model`), the output bias
(`kdkeras.bias`) and the `tf_keras` bridge (`kdkeras.compress`) all ask which
single input and output a model has and which layer call produced a tensor;
the Distiller asks the shapes its teacher and student take and give
(`known_shape`). Keras 3 has no public API for the second; this module is the one place that
reads Keras' graph records (`_keras_history`, `_inbound_nodes`).
"""


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
