"""The NumPy floor: a float32 NumPy forward pass of a dense network.

The floor is the reference every runtime is compared with: the same weights,
run as plain `x @ W` GEMMs with preallocated buffers. `dense_layers` extracts
the `(kernel, bias, activation)` stack of a dense Keras network (and refuses
any other), `save_dense_layers` writes it for the measurement child, and
`NumpyDenseForward` runs it (`export.runtimes.NumpyRuntime` is its adapter).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> kernel = rng.standard_normal((4, 3)).astype(np.float32)
    >>> forward = NumpyDenseForward([(kernel, None, "relu")])
    >>> x = rng.random((2, 4), dtype=np.float32)
    >>> bool(np.allclose(forward(x), np.maximum(x @ kernel, 0), atol=1e-6))
    True
"""

import io

import numpy as np

from export import staging

# The activations the floor implements; `dense_layers` refuses any other.
SUPPORTED_ACTIVATIONS = ("linear", "relu", "relu6", "sigmoid", "tanh", "softmax")

# Layers that compute the identity at inference (training-only noise,
# augmentation): the floor skips them.
INFERENCE_IDENTITY_LAYERS = {
    "InputLayer",
    "Dropout",
    "AlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "ActivityRegularization",
    "RandomTranslation",
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "RandomContrast",
    "RandomBrightness",
}


class NumpyDenseForward:
    """A float32 NumPy forward pass of a stack of dense layers: the BLAS floor.

    Fair by construction: weights are contiguous float32 arrays, every intermediate
    buffer is preallocated per batch size, and the bias add and activation run in place,
    so one call is exactly `len(layers)` GEMMs plus elementwise passes over the outputs.

    By default every batch size runs `x @ W` with the kernels as Keras stores them
    (`(in, out)`): the straightforward NumPy forward pass. `transposed_gemv=True` makes
    one-example calls use `(out, in)` copies of the kernels and a matrix-vector product,
    OpenBLAS' faster non-transposed GEMV (BENCHMARKS.md has the gain): a tuned floor, which `benchmarks/inference_latency.py` reports beside the plain one.

    Args:
        layers: Sequence of `(kernel, bias, activation)`; `kernel` is `(in, out)`,
            `bias` is `(out,)` or None, `activation` one of `SUPPORTED_ACTIVATIONS`.
        transposed_gemv: Whether batch-1 calls use transposed kernels and GEMV.

    Example:
        >>> import numpy as np
        >>> w = np.eye(3, dtype=np.float32)
        >>> forward = NumpyDenseForward([(w, None, "relu"), (w, None, "linear")])
        >>> x = np.array([[1.0, -2.0, 3.0]], np.float32)
        >>> call = forward.bind(x)  # preallocates the buffers for batch 1
        >>> call().tolist()
        [[1.0, 0.0, 3.0]]
    """

    def __init__(self, layers, transposed_gemv=False):
        self.transposed_gemv = bool(transposed_gemv)
        self.layers = []
        for kernel, bias, activation in layers:
            if activation not in SUPPORTED_ACTIVATIONS:
                raise ValueError(
                    f"`activation` must be one of {SUPPORTED_ACTIVATIONS}. "
                    f"Received: activation={activation!r}"
                )
            kernel = np.ascontiguousarray(kernel, dtype=np.float32)
            bias = None if bias is None else np.ascontiguousarray(bias, np.float32)
            self.layers.append((kernel, bias, activation))
        if not self.layers:
            raise ValueError(
                "`layers` must hold at least one dense layer. Received: none"
            )
        self.input_units = self.layers[0][0].shape[0]
        self.transposed_kernels = None

    @classmethod
    def from_npz(cls, path, transposed_gemv=False):
        """Loads the layers written by `export.measure.save_dense_layers`."""
        with np.load(path, allow_pickle=False) as data:
            count = int(data["num_layers"])
            activations = [str(a) for a in data["activations"]]
            layers = []
            for i in range(count):
                bias = data[f"bias_{i}"] if f"bias_{i}" in data else None
                layers.append((data[f"kernel_{i}"], bias, activations[i]))
        return cls(layers, transposed_gemv=transposed_gemv)

    def parameters(self):
        """Number of weights and biases."""
        return int(
            sum(k.size + (0 if b is None else b.size) for k, b, _ in self.layers)
        )

    def bind(self, x):
        """Preallocates buffers for `x` (flattened to `(batch, in)`); returns the call."""
        batch = x.shape[0]
        flat = np.ascontiguousarray(x.reshape(batch, -1), dtype=np.float32)
        if flat.shape[1] != self.input_units:
            raise ValueError(
                f"x must have {self.input_units} features per example, "
                f"got shape {tuple(x.shape)}"
            )
        gemv = batch == 1 and self.transposed_gemv
        if gemv:
            # One example: a matrix-vector product with the kernel stored (out, in).
            # Built on first use; the floor then holds both layouts.
            if self.transposed_kernels is None:
                self.transposed_kernels = [
                    np.ascontiguousarray(k.T) for k, _, _ in self.layers
                ]
            kernels = self.transposed_kernels
            flat = flat[0]
            buffers = [np.empty(k.shape[1], np.float32) for k, _, _ in self.layers]
        else:
            kernels = [k for k, _, _ in self.layers]
            buffers = [
                np.empty((batch, k.shape[1]), np.float32) for k, _, _ in self.layers
            ]
        steps = [
            (kernel, bias, activation, buffer)
            for kernel, (_, bias, activation), buffer in zip(
                kernels, self.layers, buffers, strict=True
            )
        ]
        matmul, dot, add, maximum = np.matmul, np.dot, np.add, np.maximum

        def call():
            hidden = flat
            for kernel, bias, activation, buffer in steps:
                if gemv:
                    dot(kernel, hidden, out=buffer)
                else:
                    matmul(hidden, kernel, out=buffer)
                if bias is not None:
                    add(buffer, bias, out=buffer)
                if activation == "relu":
                    maximum(buffer, 0.0, out=buffer)
                elif activation != "linear":
                    apply_activation_in_place(buffer, activation)
                hidden = buffer
            return hidden.reshape(1, -1) if gemv else hidden

        return call

    def __call__(self, x):
        """Forward pass of `x`; returns a fresh `(batch, out)` float32 array."""
        return self.bind(x)().copy()


def apply_activation_in_place(buffer, activation):
    """Applies a non-ReLU activation of `SUPPORTED_ACTIVATIONS` to `buffer`."""
    if activation == "relu6":
        np.clip(buffer, 0.0, 6.0, out=buffer)
    elif activation == "sigmoid":
        # 1 / (1 + exp(-x)) in place, computed stably via tanh.
        np.multiply(buffer, 0.5, out=buffer)
        np.tanh(buffer, out=buffer)
        np.multiply(buffer, 0.5, out=buffer)
        np.add(buffer, 0.5, out=buffer)
    elif activation == "tanh":
        np.tanh(buffer, out=buffer)
    elif activation == "softmax":
        buffer -= buffer.max(axis=-1, keepdims=True)
        np.exp(buffer, out=buffer)
        buffer /= buffer.sum(axis=-1, keepdims=True)


def _activation_name(function):
    name = getattr(function, "__name__", None)
    return {"linear": "linear", None: None}.get(name, name)


def dense_layers(model, verify=True):
    """The `(kernel, bias, activation)` stack of a dense Keras network, for NumPy.

    Accepts a single-input, single-output chain of `Flatten`, `Dense`, `Activation`,
    `ReLU`, `Softmax`, `BatchNormalization` directly after a linear `Dense` (folded into
    it), and layers that are the identity at inference (dropout, noise, augmentation).

    Args:
        model: A built `keras.Model`.
        verify: Check the extracted stack against `model(x)` on random inputs.

    Returns:
        A list of `(kernel, bias, activation)` with float32 arrays.

    Raises:
        ValueError: naming the first layer the NumPy floor cannot compute.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError("model must have one input and one output for the NumPy floor")
    import keras

    sequential = isinstance(model, keras.Sequential)
    stack = []
    flat = len(model.inputs[0].shape) == 2
    tensor = model.inputs[0]

    def refuse(layer, why):
        raise ValueError(
            f"model is not a dense network: the NumPy floor cannot compute layer "
            f"{layer.name!r} ({type(layer).__name__}): {why}"
        )

    def set_activation(layer, name):
        if name not in SUPPORTED_ACTIVATIONS:
            refuse(layer, f"activation {name!r} not in {SUPPORTED_ACTIVATIONS}")
        if not stack or stack[-1][2] != "linear":
            refuse(layer, "an activation must follow a Dense layer without one")
        kernel, bias, _ = stack[-1]
        stack[-1] = (kernel, bias, name)

    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        if not sequential and len(getattr(layer, "_inbound_nodes", ())) == 1:
            # Functional graph: each layer must consume the previous layer's output.
            if layer.input is not tensor:
                refuse(layer, "the model is not a single chain of layers")
            tensor = layer.output
        if kind in INFERENCE_IDENTITY_LAYERS:
            continue
        if kind == "Flatten" or (kind == "Reshape" and len(layer.output.shape) == 2):
            if stack:
                refuse(
                    layer, "flattening is only supported before the first Dense layer"
                )
            flat = True
        elif kind == "Dense":
            if not flat or len(layer.input.shape) != 2:
                refuse(layer, "Dense must see a flat (batch, features) input")
            kernel = np.asarray(layer.kernel, dtype=np.float32)
            bias = np.asarray(layer.bias, dtype=np.float32) if layer.use_bias else None
            if getattr(layer, "lora_enabled", False) or getattr(
                layer, "quantization_mode", None
            ):
                refuse(layer, "LoRA or quantized Dense layers are not supported")
            stack.append((kernel, bias, "linear"))
            set_activation(layer, _activation_name(layer.activation))
        elif kind == "Activation":
            name = _activation_name(layer.activation)
            if name != "linear":
                set_activation(layer, name)
        elif kind == "ReLU":
            if layer.negative_slope or layer.threshold:
                refuse(layer, "only plain ReLU (no slope, no threshold) is supported")
            set_activation(layer, "relu" if layer.max_value is None else "relu6")
            if layer.max_value not in (None, 6, 6.0):
                refuse(layer, "ReLU max_value must be None or 6")
        elif kind == "Softmax":
            set_activation(layer, "softmax")
        elif kind == "BatchNormalization":
            if (
                not stack
                or stack[-1][2] != "linear"
                or layer.axis not in (-1, 1, [-1], [1])
            ):
                refuse(
                    layer,
                    "BatchNormalization must directly follow a linear Dense layer",
                )
            kernel, bias, _ = stack[-1]
            mean = np.asarray(layer.moving_mean, np.float64)
            variance = np.asarray(layer.moving_variance, np.float64)
            gamma = np.asarray(layer.gamma, np.float64) if layer.scale else 1.0
            beta = np.asarray(layer.beta, np.float64) if layer.center else 0.0
            scale = gamma / np.sqrt(variance + layer.epsilon)
            bias64 = np.zeros_like(mean) if bias is None else bias.astype(np.float64)
            stack[-1] = (
                (kernel.astype(np.float64) * scale).astype(np.float32),
                ((bias64 - mean) * scale + beta).astype(np.float32),
                "linear",
            )
        else:
            refuse(
                layer,
                "only Flatten, Dense, activations, folded BatchNormalization "
                "and inference-time identity layers are supported",
            )
    if not stack:
        raise ValueError("model is not a dense network: it has no Dense layer")
    if verify:
        check_dense_layers(model, stack)
    return stack


def check_dense_layers(model, stack):
    """Checks the extracted stack against Keras on random inputs (catches graphs that
    are not a plain chain, custom call() methods, ...)."""
    shape = tuple(8 if d is None else int(d) for d in model.inputs[0].shape)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    expected = np.asarray(model(x, training=False), dtype=np.float64).reshape(
        len(x), -1
    )
    actual = NumpyDenseForward(stack)(x).astype(np.float64)
    scale = max(1.0, float(np.abs(expected).max()))
    if actual.shape != expected.shape or not np.allclose(
        actual, expected, rtol=1e-4, atol=1e-4 * scale
    ):
        raise ValueError(
            "model is not a dense network the NumPy floor reproduces: its forward pass differs "
            "from Keras on random inputs"
        )


def save_dense_layers(layers, path):
    """Writes `dense_layers(...)` output to `path` (`.npz`) atomically; returns `path`."""
    arrays = {
        "num_layers": np.asarray(len(layers)),
        "activations": np.asarray([a for _, _, a in layers]),
    }
    for i, (kernel, bias, _) in enumerate(layers):
        arrays[f"kernel_{i}"] = np.ascontiguousarray(kernel, np.float32)
        if bias is not None:
            arrays[f"bias_{i}"] = np.ascontiguousarray(bias, np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    staging.write_bytes_atomically(path, buffer.getvalue())
    return path


def numpy_forward(model, transposed_gemv=False):
    """A `NumpyDenseForward` of a dense Keras `model` (see `dense_layers`)."""
    return NumpyDenseForward(dense_layers(model), transposed_gemv=transposed_gemv)
