"""The data an export is checked and calibrated on: loaded, validated, drawn.

`load_inputs` (arrays, `.npy`/`.npz` files, `fashion-mnist:N`),
`load_representative` (calibration data, with its own checks) and
`load_labelled` / `check_labelled` (held-out `(x, y)`) return finite float32
inputs of the model's shape, or raise a one-line error naming the argument.
`default_real_inputs` and `scaled_like` give the held-out inputs of a quantised
model's agreement check when no labelled data is given (`export.verify`).
"""

import os

import numpy as np

# Fewest representative examples accepted for calibration.
MIN_REPRESENTATIVE_EXAMPLES = 16
DEFAULT_REAL_INPUTS = 500  # Fashion-MNIST test images for top-1 agreement.


def load_inputs(
    source, input_shape, flag="--representative-data", limit=None, min_count=1
):
    """Loads model inputs from an array, a `.npy`/`.npz` file or the dataset.

    Args:
        source: A NumPy array; a `.npy` path; a `.npz` path (array `x`, or its
            only array); or `"fashion-mnist"` / `"fashion-mnist:N"` for the
            first N (default 500) Fashion-MNIST training images.
        input_shape: The model input shape `(None, ...)`; the data must match.
        flag: Argument name for error messages.
        limit: Keep at most this many rows.
        min_count: Fewest rows accepted.

    Returns:
        A float32 array `(N,) + input_shape[1:]`.

    Raises:
        FileNotFoundError, ValueError: missing file, unknown format, a
            shape that does not match the model, a non-numeric dtype, NaN or
            inf values, or fewer than `min_count` rows.
    """
    if isinstance(source, str) and source.startswith("fashion-mnist"):
        array = _fashion_mnist(source, flag, split="train")
    elif isinstance(source, (str, os.PathLike)):
        array = _load_array_file(os.fspath(source), flag, key="x")
    else:
        array = np.asarray(source)
    received = f"{flag}={_describe(source)}"
    return check_inputs(array, input_shape, flag, limit, min_count, received)


def load_representative(source, input_shape, flag="--representative-data"):
    """Calibration inputs, validated: `load_inputs` plus calibration checks.

    At least `MIN_REPRESENTATIVE_EXAMPLES` finite rows, not all one value
    (a constant batch calibrates every range to a point).

    Returns:
        A float32 array `(N,) + input_shape[1:]`.
    """
    array = load_inputs(
        source, input_shape, flag=flag, min_count=MIN_REPRESENTATIVE_EXAMPLES
    )
    if float(np.max(array)) == float(np.min(array)):
        raise ValueError(
            f"`{flag}` must vary: calibrating on a constant batch gives "
            f"meaningless ranges. Received: {flag}={_describe(source)} "
            f"(every value is {float(array.flat[0]):g})"
        )
    return array


def load_labelled(path, input_shape, flag="--labelled-data", num_classes=None):
    """Loads `(x, y)` from a `.npz` with arrays `x` and `y`.

    Args:
        path: The `.npz` file.
        input_shape: The model input shape; `x` must match it.
        flag: Argument name for error messages.
        num_classes: With it, labels must be in `[0, num_classes)` (or
            one-hot rows of that width).

    Returns:
        `(x, y)`: float32 inputs matching the model and labels (int or
        one-hot), same length.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{flag} {path} does not exist")
    if not path.endswith(".npz"):
        raise ValueError(
            f"`{flag}` must be a .npz file with arrays x and y. Received: {flag}={path}"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data or "y" not in data:
                raise ValueError(
                    f"`{flag}` must be a .npz with arrays x and y. "
                    f"Received: {flag}={path} with arrays {sorted(data.files)}"
                )
            x, y = data["x"], data["y"]
    except ValueError as error:
        if str(error).startswith(f"`{flag}`"):
            raise
        raise ValueError(
            f"`{flag}` must be a readable .npz file. Received: {flag}={path} "
            f"({_first_line(error)})"
        ) from None
    except Exception as error:
        raise ValueError(
            f"`{flag}` must be a readable .npz file. Received: {flag}={path} "
            f"({_first_line(error)})"
        ) from None
    return check_labelled(x, y, input_shape, flag, num_classes, path)


def check_labelled(
    x, y, input_shape, flag="--labelled-data", num_classes=None, source="array"
):
    """Validates labelled data `(x, y)`.

    Args:
        x: Inputs; must match `input_shape`, be numeric and finite.
        y: Class indices `(N,)` (integral values) or one-hot rows
            `(N, classes)`, finite.
        input_shape: The model input shape.
        flag: Argument name for error messages.
        num_classes: With it, indices must be in `[0, num_classes)` and
            one-hot rows that wide.
        source: Description of the data for error messages.

    Returns:
        `(x, y)`: float32 inputs; int64 indices or the one-hot rows.

    Example:

    >>> x, y = check_labelled(np.zeros((2, 3)), [0, 1], (None, 3), num_classes=2)
    >>> y.tolist()
    [0, 1]
    """
    x = check_inputs(np.asarray(x), input_shape, flag, received=f"{flag}={source}")
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != len(x):
        raise ValueError(
            f"`{flag}` must have one label per input. Received: {flag}="
            f"{source} with {len(x)} inputs and labels of shape {y.shape}"
        )
    if not (np.issubdtype(y.dtype, np.number) and not np.iscomplexobj(y)):
        raise ValueError(
            f"`{flag}` labels must be numeric. Received: {flag}={source} "
            f"with y of dtype {y.dtype}"
        )
    if not np.all(np.isfinite(y)):
        raise ValueError(
            f"`{flag}` labels must be finite. Received: {flag}={source} with "
            f"{int(np.sum(~np.isfinite(y)))} NaN/inf label values"
        )
    if y.ndim == 2 and y.shape[1] > 1:  # One-hot (or probabilities).
        if num_classes is not None and y.shape[1] != num_classes:
            raise ValueError(
                f"`{flag}` one-hot labels must have {num_classes} columns (the "
                f"model's classes). Received: {flag}={source} with y of shape "
                f"{y.shape}"
            )
        return x, y
    labels = y.reshape(len(y), -1)
    if labels.shape[1] != 1:
        raise ValueError(
            f"`{flag}` labels must be class indices (N,) or one-hot (N, "
            f"classes). Received: {flag}={source} with y of shape {y.shape}"
        )
    labels = labels[:, 0]
    bad = labels != np.round(labels)
    if num_classes is not None:
        bad |= (labels < 0) | (labels >= num_classes)
    else:
        bad |= labels < 0
    if np.any(bad):
        first = labels[np.argmax(bad)]
        classes = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
        raise ValueError(
            f"`{flag}` labels must be class indices in {classes}. Received: "
            f"{flag}={source} with {int(np.sum(bad))} labels out of range "
            f"(e.g. {first:g})"
        )
    return x, labels.astype(np.int64)


def _describe(source):
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return "array"


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _fashion_mnist(source, flag, split):
    count = DEFAULT_REAL_INPUTS
    if ":" in source:
        name, _, text = source.partition(":")
        if name != "fashion-mnist" or not text.isdigit() or int(text) < 1:
            raise ValueError(
                f"{flag} {source!r}: expected 'fashion-mnist' or "
                "'fashion-mnist:N' with N >= 1"
            )
        count = int(text)
    elif source != "fashion-mnist":
        raise ValueError(f"{flag} {source!r}: expected 'fashion-mnist[:N]'")
    from models.data import load_fashion_mnist

    (x_train, _), (x_test, _) = load_fashion_mnist(
        limit_train=count if split == "train" else 1,
        limit_test=count if split == "test" else 1,
    )
    return x_train if split == "train" else x_test


def _load_array_file(path, flag, key):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{flag} {path} does not exist")
    try:
        if path.endswith(".npy"):
            return np.load(path, allow_pickle=False)
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as data:
                if key in data:
                    return data[key]
                if len(data.files) == 1:
                    return data[data.files[0]]
                raise ValueError(
                    f"{flag} {path} has arrays {sorted(data.files)}; expected "
                    f"one named {key!r}"
                )
    except ValueError as error:
        if str(error).startswith(flag):
            raise
        raise ValueError(f"{flag} {path} is not a readable array ({error})") from None
    raise ValueError(
        f"{flag} {path}: expected a .npy or .npz file, or 'fashion-mnist[:N]'"
    )


def check_inputs(array, input_shape, flag, limit=None, min_count=1, received=None):
    received = received or flag
    array = np.asarray(array)
    expected = tuple(input_shape[1:])
    if (
        not np.issubdtype(array.dtype, np.number)
        or np.iscomplexobj(array)
        or array.dtype == np.bool_
    ):
        raise ValueError(
            f"`{flag}` must hold real numbers (float or int). "
            f"Received: {received} of dtype {array.dtype}"
        )
    if array.ndim != len(expected) + 1 or tuple(array.shape[1:]) != expected:
        raise ValueError(
            f"`{flag}` must have shape (N,) + {expected} (the model input). "
            f"Received: {received} of shape {array.shape}, which does not "
            "match the model input"
        )
    if len(array) < max(min_count, 1):
        raise ValueError(
            f"`{flag}` must have at least {max(min_count, 1)} examples. "
            f"Received: {received} with {len(array)}"
        )
    if limit is not None:
        array = array[:limit]
    finite = np.isfinite(array)
    if not np.all(finite):
        raise ValueError(
            f"`{flag}` must be finite. Received: {received} with "
            f"{int(np.sum(np.isnan(array)))} NaN and "
            f"{int(np.sum(np.isinf(array)))} inf values"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        converted = np.ascontiguousarray(array, dtype=np.float32)
    if not np.all(np.isfinite(converted)):
        raise ValueError(
            f"`{flag}` must fit in float32. Received: {received} with values up "
            f"to {float(np.max(np.abs(array))):g}"
        )
    return converted


def takes_fashion_mnist(input_shape):
    """Whether a model with this input shape accepts Fashion-MNIST images."""
    return tuple(input_shape[1:]) == (28, 28, 1)


def default_real_inputs(input_shape, count=DEFAULT_REAL_INPUTS):
    """Fashion-MNIST test images when the model takes 28x28x1, else None."""
    if not takes_fashion_mnist(input_shape):
        return None
    return _fashion_mnist(f"fashion-mnist:{count}", "real inputs", split="test")


def scaled_like(calibration, count, seed):
    """Fresh seeded random inputs distributed like `calibration`, held out.

    Each element is drawn from a normal distribution with that element's
    mean and standard deviation over the calibration rows, clipped to its
    range there: inputs the calibration has not seen, in the ranges it
    calibrated. Never constant: elements that do not vary in the calibration
    data get noise of the data's overall spread.

    Args:
        calibration: float32 array `(N, ...)` (finite, validated).
        count: Number of rows.
        seed: Seed of the draw.

    Returns:
        A float32 array `(count, ...)`.
    """
    calibration = np.asarray(calibration, dtype=np.float64)
    rng = np.random.default_rng([seed, 1])
    mean = calibration.mean(axis=0)
    std = calibration.std(axis=0)
    low, high = calibration.min(axis=0), calibration.max(axis=0)
    spread = max(float(calibration.std()), float(np.finfo(np.float32).tiny))
    flat = std == 0
    std = np.where(flat, spread, std)
    low = np.where(flat, low - 2 * spread, low)
    high = np.where(flat, high + 2 * spread, high)
    draws = rng.normal(mean, std, size=(count,) + calibration.shape[1:])
    return np.clip(draws, low, high).astype(np.float32)
