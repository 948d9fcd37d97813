"""What a model takes, and the data an export is checked and calibrated on.

`InputSpec` is what a model takes (names, dtypes, shapes of every input, in
Keras' order) and gives (output names): read once per export and passed
through the pipeline, the verification and the measurement.

`load_inputs` (arrays, dicts of arrays, `.npy`/`.npz` files, datasets,
`fashion-mnist:N`), `load_representative` (calibration data, with its own
checks) and `load_labelled` / `check_labelled` (held-out `(x, y)`) return
finite inputs of the model's shapes and dtypes, or raise a one-line error
naming the argument. `default_real_inputs` and `held_out_like` give the
held-out inputs of a quantised model's agreement check when no labelled data
is given (`export.verify`).

Data for a model with several inputs is a dict `{input name: array}`; a
`.npz` holds it as arrays `x_<input name>` (plus `y` for labelled data), e.g.
`x_token_ids`, `x_segment_ids`, `x_padding_mask`, `y`. A one-input model
takes an array, or a `.npz` with `x` (or `x_<input name>`, or its only
array). In the Python API a `tf.data.Dataset` or `keras.utils.PyDataset`
yielding `x` or `(x, y)` batches is accepted too.
"""

import os
import re

import numpy as np

# Fewest representative examples accepted for calibration.
MIN_REPRESENTATIVE_EXAMPLES = 16
DEFAULT_REAL_INPUTS = 500  # Fashion-MNIST test images for top-1 agreement.


def as_spec(spec_or_shape):
    """An `InputSpec`; a bare shape `(None, ...)` is one float32 input."""
    if isinstance(spec_or_shape, InputSpec):
        return spec_or_shape
    return InputSpec(["inputs"], [tuple(spec_or_shape)], ["float32"])


def load_inputs(
    source, input_shape, flag="--representative-data", limit=None, min_count=1
):
    """Loads model inputs from arrays, a `.npy`/`.npz` file, a dataset or Fashion-MNIST.

    Args:
        source: A NumPy array (one input) or a dict of arrays by input name;
            a `.npy` path; a `.npz` path (arrays `x_<input name>`; for one
            input also `x` or its only array); a `tf.data.Dataset` or
            `keras.utils.PyDataset` of `x` or `(x, y)` batches; or
            `"fashion-mnist"` / `"fashion-mnist:N"` for the first N (default
            500) Fashion-MNIST training images.
        input_shape: The model's `InputSpec` (or, for one float input, its
            shape `(None, ...)`); the data must match.
        flag: Argument name for error messages.
        limit: Keep at most this many rows.
        min_count: Fewest rows accepted.

    Returns:
        For one input a float32 (or the input's integer dtype) array
        `(N,) + shape[1:]`; for several, a dict of such arrays.

    Raises:
        FileNotFoundError, ValueError: missing file, unknown format, a
            shape that does not match the model, a non-numeric dtype, NaN or
            inf values, or fewer than `min_count` rows.
    """
    spec = as_spec(input_shape)
    if isinstance(source, str) and source.startswith("fashion-mnist"):
        data = _fashion_mnist(source, flag, split="train")
    elif isinstance(source, (str, os.PathLike)):
        data = _load_array_file(os.fspath(source), flag, spec)
    elif _is_dataset(source):
        data, _ = _from_dataset(source, spec, flag, limit)
    elif isinstance(source, dict):
        data = source
    else:
        data = np.asarray(source)
    received = f"{flag}={_describe(source)}"
    return spec.check(data, flag, limit, min_count, received)


def load_representative(source, input_shape, flag="--representative-data"):
    """Calibration inputs, validated: `load_inputs` plus calibration checks.

    At least `MIN_REPRESENTATIVE_EXAMPLES` finite rows; no float input all
    one value (a constant batch calibrates every range to a point).

    Returns:
        As `load_inputs`: an array for one input, a dict for several.
    """
    data = load_inputs(
        source, input_shape, flag=flag, min_count=MIN_REPRESENTATIVE_EXAMPLES
    )
    spec = as_spec(input_shape)
    for index, (name, array) in enumerate(spec.as_dict(data).items()):
        if _is_integer(spec.dtypes[index]):
            continue  # Token ids and masks are not calibrated.
        if float(np.max(array)) == float(np.min(array)):
            where = "" if spec.single else f"[{name}]"
            raise ValueError(
                f"`{flag}{where}` must vary: calibrating on a constant batch gives "
                f"meaningless ranges. Received: {flag}={_describe(source)} "
                f"(every value is {float(array.flat[0]):g})"
            )
    return data


def load_labelled(path, input_shape, flag="--labelled-data", num_classes=None):
    """Loads `(x, y)` from a `.npz` with arrays `x` (or `x_<input name>`) and `y`.

    Args:
        path: The `.npz` file: `x` and `y` for a one-input model, `x_<input
            name>` for each input and `y` for several (`x_<input name>` is
            accepted for one input too).
        input_shape: The model's `InputSpec` (or its one input's shape); `x`
            must match it.
        flag: Argument name for error messages.
        num_classes: With it, labels must be in `[0, num_classes)` (or
            one-hot rows of that width).

    Returns:
        `(x, y)`: float32 inputs matching the model and labels (int or
        one-hot), same length.
    """
    spec = as_spec(input_shape)
    if _is_dataset(path):
        x, y = _from_dataset(path, spec, flag, None)
        if y is None:
            raise ValueError(
                f"`{flag}` must yield (x, y) batches. Received: a dataset of x only"
            )
        return check_labelled(x, y, spec, flag, num_classes, "dataset")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{flag} {path} does not exist")
    wanted = _npz_keys(spec)
    if not path.endswith(".npz"):
        raise ValueError(
            f"`{flag}` must be a .npz file with arrays {wanted} and y. "
            f"Received: {flag}={path}"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            x = _npz_inputs(data, spec)
            if x is None or "y" not in data:
                raise ValueError(
                    f"`{flag}` must be a .npz with arrays {wanted} and y. "
                    f"Received: {flag}={path} with arrays {sorted(data.files)[:12]}"
                )
            y = data["y"]
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
        x: Inputs (an array, or a dict by input name for several); must
            match `input_shape`, be numeric and finite.
        y: Class indices `(N,)` (integral values) or one-hot rows
            `(N, classes)`, finite.
        input_shape: The model's `InputSpec`, or its one input's shape.
        flag: Argument name for error messages.
        num_classes: With it, indices must be in `[0, num_classes)` and
            one-hot rows that wide.
        source: Description of the data for error messages.

    Returns:
        `(x, y)`: inputs in the model's dtypes (float32 for float inputs);
        int64 indices or the one-hot rows.

    Example:

    >>> x, y = check_labelled(np.zeros((2, 3)), [0, 1], (None, 3), num_classes=2)
    >>> y.tolist()
    [0, 1]
    """
    spec = as_spec(input_shape)
    if not isinstance(x, dict):
        x = np.asarray(x)
    x = spec.check(x, flag, received=f"{flag}={source}")
    count = spec.count(x)
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != count:
        raise ValueError(
            f"`{flag}` must have one label per input. Received: {flag}="
            f"{source} with {count} inputs and labels of shape {y.shape}"
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
        text = os.fspath(source)
        return text if len(text) <= 200 else text[:197] + "..."
    if isinstance(source, dict):
        return "dict"
    if _is_dataset(source):
        return "dataset"
    return "array"


def _is_dataset(source):
    """Whether `source` is a `tf.data.Dataset` or a `keras.utils.PyDataset`."""
    names = {cls.__name__ for cls in type(source).__mro__}
    return bool(names & {"DatasetV2", "PyDataset"})


def _from_dataset(source, spec, flag, limit):
    """`(x, y)` arrays from the batches of a dataset (`y` None without labels)."""
    xs, ys = [], []
    rows = 0
    batches = (
        source.as_numpy_iterator()
        if hasattr(source, "as_numpy_iterator")
        else (source[i] for i in range(len(source)))
    )
    for batch in batches:
        if isinstance(batch, tuple) and len(batch) in (2, 3):
            x, y = batch[0], batch[1]
        elif isinstance(batch, tuple) and len(batch) == 1:
            x, y = batch[0], None
        else:
            x, y = batch, None
        if isinstance(x, (list, tuple)) and not spec.single:
            x = dict(zip(spec.names, x, strict=False))
        xs.append(spec.as_dict(x) if isinstance(x, dict) or spec.single else x)
        if y is not None:
            ys.append(np.asarray(y))
        rows += len(next(iter(xs[-1].values()))) if isinstance(xs[-1], dict) else 0
        if limit is not None and rows >= limit:
            break
    if not xs:
        raise ValueError(
            f"`{flag}` must yield at least one batch. Received: empty dataset"
        )
    if not all(isinstance(x, dict) for x in xs):
        raise ValueError(
            f"`{flag}` must yield batches of the model inputs ({spec.describe()}). "
            f"Received: a dataset of {type(xs[0]).__name__}"
        )
    arrays = {name: np.concatenate([np.asarray(x[name]) for x in xs]) for name in xs[0]}
    y = np.concatenate(ys) if ys and len(ys) == len(xs) else None
    return spec.from_dict(arrays), y


def _npz_keys(spec):
    if spec.single:
        return "x"
    return ", ".join(f"x_{name}" for name in spec.names)


def _npz_inputs(data, spec):
    """The model inputs of an opened `.npz`, or None when they are not there."""
    prefixed = {name: f"x_{name}" for name in spec.names}
    if all(key in data for key in prefixed.values()):
        return spec.from_dict({name: data[key] for name, key in prefixed.items()})
    if spec.single and "x" in data:
        return data["x"]
    return None


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


def _load_array_file(path, flag, spec):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{flag} {path} does not exist")
    try:
        if path.endswith(".npy") and spec.single:
            return np.load(path, allow_pickle=False)
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as data:
                found = _npz_inputs(data, spec)
                if found is not None:
                    return found
                if spec.single and len(data.files) == 1:
                    return data[data.files[0]]
                wanted = "one named 'x'" if spec.single else _npz_keys(spec)
                raise ValueError(
                    f"{flag} {path} has arrays {sorted(data.files)[:12]}; expected "
                    f"{wanted}"
                )
    except ValueError as error:
        if str(error).startswith(flag):
            raise
        raise ValueError(f"{flag} {path} is not a readable array ({error})") from None
    if spec.single:
        raise ValueError(
            f"{flag} {path}: expected a .npy or .npz file, or 'fashion-mnist[:N]'"
        )
    raise ValueError(
        f"{flag} {path}: expected a .npz file with arrays {_npz_keys(spec)}"
    )


def check_inputs(
    array,
    input_shape,
    flag,
    limit=None,
    min_count=1,
    received=None,
    dtype="float32",
    value_range=None,
):
    """Validates one input's data; returns it as `dtype` (float32 by default).

    Args:
        array: The data, `(N,) + input_shape[1:]` (unknown dims any size).
        input_shape: The input's shape, batch first.
        flag: Argument name for error messages.
        limit: Keep at most this many rows.
        min_count: Fewest rows accepted.
        received: Description of the data for error messages.
        dtype: The input's dtype; an integer input must hold integers.
        value_range: `(low, high)` the integer values must lie in, or None.

    Data is taken as Keras takes it (`model(x)`, `predict`, `evaluate`):
    bool data for a float input is 0.0/1.0, for an integer input 0/1; integer
    values for a bool input are `!= 0`.

    Raises:
        ValueError: naming `flag` and what was wrong.
    """
    received = received or flag
    array = np.asarray(array)
    expected = tuple(input_shape[1:])
    integer = _is_integer(dtype)
    if array.dtype.kind not in "biuf":  # bool, int, uint, float.
        raise ValueError(
            f"`{flag}` must hold real numbers (float, int or bool). "
            f"Received: {received} of dtype {array.dtype}"
        )
    if array.ndim != len(expected) + 1 or any(
        want is not None and int(want) >= 0 and got != want
        for got, want in zip(array.shape[1:], expected, strict=True)
    ):
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
    if integer:
        return _check_integers(array, flag, received, dtype, value_range)
    with np.errstate(over="ignore", invalid="ignore"):
        converted = np.ascontiguousarray(array, dtype=np.float32)
    if not np.all(np.isfinite(converted)):
        raise ValueError(
            f"`{flag}` must fit in float32. Received: {received} with values up "
            f"to {float(np.max(np.abs(array))):g}"
        )
    return converted


def _check_integers(array, flag, received, dtype, value_range):
    """Integer or bool data for an integer or bool input, in the input's dtype.

    As Keras takes them: bool data for an integer input is 0/1 (a keras_hub
    `padding_mask`); integer values for a bool input are `!= 0`.
    """
    if array.dtype == np.bool_:
        array = array.astype(np.int64)
    if not np.all(array == np.round(array)):
        raise ValueError(
            f"`{flag}` must hold integers (the model input is {dtype}). "
            f"Received: {received} with non-integral values"
        )
    if value_range is not None and array.size:
        low, high = value_range
        if float(np.min(array)) < low or float(np.max(array)) >= high:
            raise ValueError(
                f"`{flag}` must hold values in [{low}, {high}) (the vocabulary of "
                f"the embedding reading it). Received: {received} with values in "
                f"[{float(np.min(array)):g}, {float(np.max(array)):g}]"
            )
    if dtype == "bool":
        return np.ascontiguousarray(array != 0)
    target = np.dtype(dtype)
    info = np.iinfo(target)
    if array.size and (np.min(array) < info.min or np.max(array) > info.max):
        raise ValueError(
            f"`{flag}` must fit in {target.name}. Received: {received} with "
            f"values up to {float(np.max(np.abs(array))):g}"
        )
    return np.ascontiguousarray(array, dtype=target)


def takes_fashion_mnist(input_shape):
    """Whether a model with this input shape (or spec) accepts Fashion-MNIST images."""
    if isinstance(input_shape, InputSpec):
        if not input_shape.single or _is_integer(input_shape.dtypes[0]):
            return False
        input_shape = input_shape.shape
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


def held_out_like(calibration, count, seed, spec):
    """Held-out inputs like the calibration data, for every input of `spec`.

    Float inputs are drawn by `scaled_like`; integer inputs (token ids, masks)
    are drawn fresh in their range (`InputSpec.random`), at the calibration
    data's length.
    """
    spec = as_spec(spec)
    if spec.single and not _is_integer(spec.dtypes[0]):
        return scaled_like(calibration, count, seed)
    arrays = spec.as_dict(calibration)
    lengths = [
        a.shape[1]
        for a, s in zip(arrays.values(), spec.shapes, strict=True)
        if len(s) > 1 and s[1] is None
    ]
    fresh = spec.as_dict(
        spec.random(
            count, np.random.default_rng([seed, 2]), lengths[0] if lengths else None
        )
    )
    for index, name in enumerate(spec.names):
        if not _is_integer(spec.dtypes[index]):
            fresh[name] = scaled_like(arrays[name], count, seed + index)
    return spec.from_dict(fresh)


# ------------------------------------------------------------- the input spec

# Length drawn for an unknown (None) non-batch dimension of an integer input
# (a token sequence) when no data says otherwise.
DEFAULT_SEQUENCE_LENGTH = 8
_SIGNATURE_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")


class InputSpec:
    """What a model takes and gives: every input's name, dtype and shape.

    Read once per export (`InputSpec.of(model)`) and passed along: the
    exporters name the SavedModel, TFLite and ONNX inputs after it, the
    verification and the measurement draw inputs from it, the data loaders
    check data against it. Inputs are in Keras' order (`model.inputs`).

    Data for a one-input model is an array; for several inputs, a dict
    `{input name: array}` (a `.npz` stores it as `x_<input name>` arrays).

    Attributes:
        names: Input names; for a model called on a dict, its keys.
        shapes: Input shapes, batch dimension `None` first.
        dtypes: Input dtype names (`"float32"`, `"int32"`, ...).
        structure: How the model is called: `"single"`, `"list"` or `"dict"`.
        ranges: Per input, `(low, high)` of its valid integer values (token
            ids below the vocabulary of the embedding that reads them), or
            None.
        output_names: Output names in Keras' order.
    """

    def __init__(
        self, names, shapes, dtypes, structure="single", ranges=None, output_names=()
    ):
        self.names = tuple(names)
        self.shapes = tuple(tuple(shape) for shape in shapes)
        self.dtypes = tuple(dtypes)
        self.structure = structure
        self.ranges = tuple(ranges or (None,) * len(self.names))
        self.output_names = tuple(output_names)

    @classmethod
    def of(cls, model):
        """The spec of a built `keras.Model` (one pass over its graph).

        Raises:
            ValueError: a float input has an unknown non-batch dimension, or
                several inputs have names a TF signature cannot take.
        """
        struct = getattr(model, "_inputs_struct", None)
        tensors = list(model.inputs)
        if isinstance(struct, dict) and len(tensors) > 1:
            keys = sorted(struct)  # model.inputs flattens a dict by sorted key.
            structure, names = "dict", keys
        elif len(tensors) > 1:
            structure, names = "list", [t.name for t in tensors]
        else:
            structure, names = "single", [tensors[0].name]
        shapes, dtypes = [], []
        for name, tensor in zip(names, tensors, strict=True):
            dtype = tensor.dtype if isinstance(tensor.dtype, str) else tensor.dtype.name
            shape = (None,) + tuple(tensor.shape[1:])
            if any(d is None for d in shape[1:]) and not _is_integer(dtype):
                raise ValueError(
                    f"the model input {name!r} has shape {shape} with unknown "
                    "non-batch dimensions; expected a fixed shape such as "
                    "(None, 28, 28, 1)"
                )
            if structure != "single" and not _SIGNATURE_NAME.match(name):
                raise ValueError(
                    f"the model input name {name[:60]!r} cannot name a signature "
                    "input; expected letters, digits, '_', '.', '-' or '/'"
                )
            shapes.append(shape)
            dtypes.append(dtype)
        ranges = [
            _integer_range(model, t) if _is_integer(d) else None
            for t, d in zip(tensors, dtypes, strict=True)
        ]
        return cls(names, shapes, dtypes, structure, ranges, _output_names(model))

    @property
    def single(self):
        """Whether the model takes one input (its data is an array)."""
        return self.structure == "single"

    @property
    def shape(self):
        """The shape of the only input (one-input models)."""
        return self.shapes[0]

    def to_json(self):
        """A JSON-serialisable dict (`from_json` reads it back)."""
        return {
            "names": list(self.names),
            "shapes": [list(s) for s in self.shapes],
            "dtypes": list(self.dtypes),
            "structure": self.structure,
            "ranges": [None if r is None else list(r) for r in self.ranges],
            "output_names": list(self.output_names),
        }

    @classmethod
    def from_json(cls, data):
        return cls(
            data["names"],
            data["shapes"],
            data["dtypes"],
            data["structure"],
            [None if r is None else tuple(r) for r in data["ranges"]],
            data.get("output_names", ()),
        )

    def __repr__(self):
        inputs = ", ".join(
            f"{n}: {d}{tuple(s)}"
            for n, d, s in zip(self.names, self.dtypes, self.shapes, strict=True)
        )
        return f"InputSpec({inputs})"

    def describe(self):
        """Short description for messages: `token_ids int32 (None, None), ...`."""
        return ", ".join(
            f"{n} {d} {tuple(s)}"
            for n, d, s in zip(self.names, self.dtypes, self.shapes, strict=True)
        )[:300]

    # Data -----------------------------------------------------------------

    def as_dict(self, x):
        """`{name: array}` of data for this model (an array for one input)."""
        if isinstance(x, dict):
            return {name: x[name] for name in self.names}
        if self.single:
            return {self.names[0]: x}
        return dict(zip(self.names, x, strict=True))

    def from_dict(self, arrays):
        """The data form of this model: the array for one input, else the dict."""
        return arrays[self.names[0]] if self.single else dict(arrays)

    def for_model(self, x):
        """Data as the Keras model is called with it (array, list or dict)."""
        arrays = self.as_dict(x)
        if self.structure == "dict":
            return arrays
        if self.structure == "list":
            return [arrays[name] for name in self.names]
        return arrays[self.names[0]]

    def count(self, x):
        """Number of examples in data for this model."""
        return len(next(iter(self.as_dict(x).values())))

    def take(self, x, start, stop=None):
        """Rows `start:stop` of data for this model (every input)."""
        arrays = self.as_dict(x)
        return self.from_dict({k: v[start:stop] for k, v in arrays.items()})

    def concrete_shape(self, index, batch_size, length=None):
        """Shape of input `index` for `batch_size`; unknown dims get `length`."""
        length = DEFAULT_SEQUENCE_LENGTH if length is None else int(length)
        return (int(batch_size),) + tuple(
            length if d is None or int(d) < 0 else int(d)
            for d in self.shapes[index][1:]
        )

    def random(self, batch_size, rng, length=None):
        """Fresh random data: floats uniform in [0, 1), integers in their range.

        An integer input whose range is unknown (a mask) holds 0/1 values with
        its first position 1 (no example is masked out entirely).

        Args:
            batch_size: Number of examples.
            rng: A `np.random.Generator`.
            length: Size of unknown non-batch dimensions (default
                `DEFAULT_SEQUENCE_LENGTH`).
        """
        arrays = {}
        for index, name in enumerate(self.names):
            shape = self.concrete_shape(index, batch_size, length)
            dtype = self.dtypes[index]
            if not _is_integer(dtype):
                arrays[name] = rng.random(shape, dtype=np.float64).astype(dtype)
                continue
            low, high = self.ranges[index] or (0, 2)
            values = rng.integers(low, high, size=shape)
            if self.ranges[index] is None and len(shape) > 1:
                values[(slice(None), 0)] = 1
            arrays[name] = values.astype(dtype)
        return self.from_dict(arrays)

    def check(self, x, flag, limit=None, min_count=1, received=None):
        """Validates data for this model; returns it converted to the input dtypes.

        Every input must be present, numeric, finite, of its shape (unknown
        dimensions any size), one row per example; float inputs become float32,
        integer inputs must hold integers (within their range when known).

        Raises:
            ValueError: naming `flag` and what was wrong.
        """
        received = received or flag
        if self.single:
            if isinstance(x, dict):
                x = _only_array(x, self.names[0], flag, received)
            return check_inputs(
                x, self.shape, flag, limit, min_count, received, self.dtypes[0]
            )
        if not isinstance(x, dict):
            raise ValueError(
                f"`{flag}` must be a dict of arrays named after the model inputs "
                f"({', '.join(self.names)}), or a .npz of x_<input name> arrays. "
                f"Received: {received} of type {type(x).__name__}"
            )
        missing = [name for name in self.names if name not in x]
        if missing:
            raise ValueError(
                f"`{flag}` must hold every model input ({', '.join(self.names)}). "
                f"Received: {received} without {', '.join(missing)}"
            )
        arrays = {
            name: check_inputs(
                x[name],
                self.shapes[index],
                f"{flag}[{name}]",
                limit,
                min_count,
                received,
                self.dtypes[index],
                self.ranges[index],
            )
            for index, name in enumerate(self.names)
        }
        counts = {len(a) for a in arrays.values()}
        if len(counts) != 1:
            raise ValueError(
                f"`{flag}` must have as many rows in every input. Received: "
                f"{received} with {', '.join(f'{k}: {len(v)}' for k, v in arrays.items())}"
            )
        return arrays


def _is_integer(dtype):
    return np.issubdtype(np.dtype(dtype), np.integer) or dtype == "bool"


def _only_array(x, name, flag, received):
    if len(x) != 1:
        raise ValueError(
            f"`{flag}` must be one array for a one-input model. Received: "
            f"{received} with arrays {sorted(x)[:8]}"
        )
    return next(iter(x.values()))


def _output_names(model):
    struct = getattr(model, "_outputs_struct", None)
    if isinstance(struct, dict) and len(model.outputs) > 1:
        return tuple(sorted(struct))
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(model.outputs) or len(set(names)) != len(names):
        names = [f"output_{i}" for i in range(len(model.outputs))]
    return tuple(names)


def _integer_range(model, tensor, depth=0):
    """`(0, vocabulary)` of the embedding(s) reading `tensor`, else None.

    Looks through nested functional models (a keras_hub task calling its
    backbone): a dict argument is matched to the inner model's inputs by key.
    """
    highs = []
    for layer in getattr(model, "layers", ()):
        for node in getattr(layer, "_inbound_nodes", ()):
            if not any(t is tensor for t in node.input_tensors):
                continue
            inner = _inner_input(layer, node, tensor)
            # An embedding reads one tensor; a nested model (a backbone) may
            # carry a `vocabulary_size` for inputs other than the token ids.
            size = getattr(layer, "input_dim", None) or getattr(
                layer, "vocabulary_size", None
            )
            embedding = len(node.input_tensors) == 1 and not hasattr(
                layer, "_inputs_struct"
            )
            if embedding and isinstance(size, int) and size > 0:
                highs.append(size)
            if depth < 4 and inner is not None:
                found = _integer_range(layer, inner, depth + 1)
                if found is not None:
                    highs.append(found[1])
    return (0, min(highs)) if highs else None


def _inner_input(layer, node, tensor):
    """The input of a nested model `layer` that `tensor` feeds at `node`, or None."""
    struct = getattr(layer, "_inputs_struct", None)
    arguments = getattr(node, "arguments", None)
    args = getattr(arguments, "args", ()) if arguments is not None else ()
    if isinstance(struct, dict) and args and isinstance(args[0], dict):
        key = next((k for k, v in args[0].items() if v is tensor), None)
        return struct.get(key)
    inner = getattr(layer, "inputs", None)
    if not inner or len(inner) != len(node.input_tensors):
        return None
    position = next(i for i, t in enumerate(node.input_tensors) if t is tensor)
    return inner[position]
