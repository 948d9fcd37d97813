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
    inputs, outputs = graph_inputs_outputs(model, name)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"`{name}` must have exactly one input and one output. Received: "
            f"{name}={model.name!r} with {len(inputs)} inputs and "
            f"{len(outputs)} outputs"
        )
    return inputs[0], outputs[0]


def graph_inputs_outputs(model, name):
    """The input and output tensors of a built graph model, or a one-line error.

    Args:
        model: A Keras 3 or `tf_keras` model.
        name: The argument's name, for the error message.

    Returns:
        `(inputs, outputs)`, lists of symbolic tensors.

    Raises:
        ValueError: the model has no symbolic graph (subclassed or unbuilt).
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
    return inputs, outputs


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


class Call:
    """One recorded call of a layer (or Keras 3 operation) in a model's graph.

    Attributes:
        operation: The layer or operation called.
        args: The call's positional arguments (symbolic tensors and
            constants, nested as given).
        kwargs: The call's keyword arguments.
        outputs: The flat list of symbolic tensors the call returned.
    """

    __slots__ = ("operation", "args", "kwargs", "outputs")

    def __init__(self, operation, args, kwargs, outputs):
        self.operation = operation
        self.args = tuple(args)
        self.kwargs = dict(kwargs)
        self.outputs = list(outputs)


def _node(tensor):
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    operation, node_index = history[0], history[1]
    return operation._inbound_nodes[node_index]


def _call_of(node):
    """The `Call` of a Keras 3 or `tf_keras` graph node, and its input tensors."""
    if hasattr(node, "arguments"):  # Keras 3 (`keras.src.ops.node.Node`).
        call = Call(
            node.operation, node.arguments.args, node.arguments.kwargs, node.outputs
        )
        return call, list(node.arguments.keras_tensors)
    import tensorflow as tf  # tf_keras (`tf_keras.src.engine.node.Node`).

    call = Call(
        node.layer, node.call_args, node.call_kwargs, tf.nest.flatten(node.outputs)
    )
    return call, list(node.keras_inputs)


def graph_calls(model):
    """The layer calls of a functional model, in an order that runs it.

    Works for Keras 3 and `tf_keras` functional models (a `Sequential` is a
    chain of its `layers`, and needs no graph). The calls are those that lead
    from `model.inputs` to `model.outputs`; a nested model appears as one call
    of that model. `InputLayer`s are not calls.

    Args:
        model: A built functional model.

    Returns:
        A list of `Call`s, each after the calls that produce its inputs.

    Raises:
        ValueError: a tensor on the way from the outputs back to the inputs
            was made by no layer call of the model (a disconnected graph).

    Example:

    >>> import keras
    >>> inputs = keras.Input((4,))
    >>> first = keras.layers.Dense(3, name="first")(inputs)
    >>> second = keras.layers.Dense(3, name="second")(inputs)
    >>> outputs = keras.layers.Add(name="merge")([first, second])
    >>> model = keras.Model(inputs, outputs)
    >>> [call.operation.name for call in graph_calls(model)]
    ['first', 'second', 'merge']
    """
    input_ids = {id(tensor) for tensor in model.inputs}
    done, order = set(), []
    stack = [(tensor, False) for tensor in reversed(model.outputs)]
    inputs_of = {}
    while stack:
        tensor, ready = stack.pop()
        if id(tensor) in input_ids:
            continue
        node = _node(tensor)
        if node is None or type(node_operation(node)).__name__ == "InputLayer":
            raise ValueError(
                f"`model` {model.name!r} is not connected: tensor "
                f"{getattr(tensor, 'name', tensor)!r} does not come from its "
                "inputs through its layers."
            )
        if id(node) in done:
            continue
        if ready:
            done.add(id(node))
            order.append(inputs_of.pop(id(node))[0])
            continue
        if id(node) not in inputs_of:
            inputs_of[id(node)] = _call_of(node)
        stack.append((tensor, True))
        for source in reversed(inputs_of[id(node)][1]):
            source_node = None if id(source) in input_ids else _node(source)
            if source_node is None or id(source_node) not in done:
                stack.append((source, False))
    return order


def node_operation(node):
    """The layer or operation of a Keras 3 or `tf_keras` graph node."""
    return node.operation if hasattr(node, "operation") else node.layer
