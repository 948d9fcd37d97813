"""Parity and accuracy of an exported artifact against its Keras model.

Every exporter calls `verify_artifact` on the artifact at its temporary path,
before it is moved into place. Two kinds of check:

Float formats (SavedModel, ONNX, TFLite `none`): on fresh random inputs
(uniform in [0, 1), `np.random.default_rng(seed)`, at several batch sizes so
the dynamic batch dimension is exercised) the relative error

    relative_error(a, b) = max|a - b| / max(max|b|, TINY)

between the artifact's outputs `a` and Keras' outputs `b` (`training=False`),
computed in float64 over the whole output array, must be below
`RELATIVE_TOLERANCE` (1e-5). The denominator is the largest reference
magnitude, so the figure is scale-free (logits of any size) and does not blow
up on individual near-zero outputs; `TINY` (float32's smallest normal
number) only guards the degenerate all-zero reference.

Quantised formats (TFLite `float16`, `dynamic`, `int8`): outputs legitimately
move, so the gate is the top-1 agreement (fraction of inputs where
`argmax(a) == argmax(b)`) on REAL inputs (labelled data, else the Fashion-MNIST
test slice when the input is 28x28x1, else the representative data), which
must reach `MIN_TOP1_AGREEMENT[quantize]`. The relative error on random inputs
is still measured and reported.

With labelled data `(x, y)`, accuracy of both Keras and the artifact is
reported, and the artifact may not lose more than `max_accuracy_drop`.

The artifact is run through `export.runtimes` (SavedModel signature, LiteRT
interpreter, ONNX Runtime); the inputs come from `load_inputs` /
`load_labelled` here.
"""

import os

import numpy as np

from export import loading
from export import runtimes

RELATIVE_TOLERANCE = 1e-5
TINY = float(np.finfo(np.float32).tiny)
# Top-1 agreement with Keras on real inputs required of quantised TFLite
# models: below what the test CNN (tests/export/trained_cnn.py) reaches in
# each mode, with room for larger models, and far above what a broken
# calibration (ranges too narrow) gives. A quantization-aware model is
# compared with itself in fake-quant form, whose ranges it learned.
MIN_TOP1_AGREEMENT = {"float16": 0.99, "dynamic": 0.98, "int8": 0.97, "qat": 0.95}
DEFAULT_BATCH_SIZES = (1, 16)
DEFAULT_MAX_ACCURACY_DROP = 0.01
DEFAULT_REAL_INPUTS = 500  # Fashion-MNIST test images for top-1 agreement.


class ParityError(ValueError):
    """The exported artifact does not reproduce the Keras model."""


def relative_error(actual, expected):
    """`max|actual - expected| / max(max|expected|, TINY)`, in float64.

    Args:
        actual: Array from the exported artifact.
        expected: Reference array (Keras), same shape.

    Returns:
        A Python float.

    Example:

    >>> relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.5]))
    0.2
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise ParityError(
            f"output shape {actual.shape} differs from Keras' {expected.shape}"
        )
    if not np.all(np.isfinite(actual)):
        return float("inf")
    scale = max(float(np.max(np.abs(expected), initial=0.0)), TINY)
    return float(np.max(np.abs(actual - expected), initial=0.0) / scale)


def top1_agreement(actual, expected):
    """Fraction of rows whose argmax agrees between two `(N, classes)` arrays."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    return float(np.mean(actual.argmax(-1) == expected.argmax(-1)))


def accuracy(logits, labels):
    """Top-1 accuracy of `(N, classes)` logits against int or one-hot labels."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(-1)
    return float(np.mean(np.asarray(logits).argmax(-1) == labels.reshape(-1)))


def random_inputs(input_shape, batch_size, rng, dtype="float32"):
    """Uniform [0, 1) inputs of shape `(batch_size,) + input_shape[1:]`."""
    shape = (batch_size,) + tuple(input_shape[1:])
    return rng.random(shape, dtype=np.float64).astype(dtype)


# ---------------------------------------------------------------- data files


def load_inputs(source, input_shape, flag="--representative-data", limit=None):
    """Loads model inputs from an array, a `.npy`/`.npz` file or the dataset.

    Args:
        source: A NumPy array; a `.npy` path; a `.npz` path (array `x`, or its
            only array); or `"fashion-mnist"` / `"fashion-mnist:N"` for the
            first N (default 500) Fashion-MNIST training images.
        input_shape: The model input shape `(None, ...)`; the data must match.
        flag: Argument name for error messages.
        limit: Keep at most this many rows.

    Returns:
        A float32 array `(N,) + input_shape[1:]`.

    Raises:
        FileNotFoundError, ValueError: missing file, unknown format, or a
            shape that does not match the model.
    """
    if isinstance(source, str) and source.startswith("fashion-mnist"):
        array = _fashion_mnist(source, flag, split="train")
    elif isinstance(source, (str, os.PathLike)):
        array = _load_array_file(os.fspath(source), flag, key="x")
    else:
        array = np.asarray(source)
    return _check_inputs(array, input_shape, flag, limit)


def load_labelled(path, input_shape, flag="--labelled-data"):
    """Loads `(x, y)` from a `.npz` with arrays `x` and `y`.

    Returns:
        `(x, y)`: float32 inputs matching the model and labels (int or
        one-hot), same length.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{flag} {path} does not exist")
    if not path.endswith(".npz"):
        raise ValueError(f"{flag} {path}: expected a .npz with arrays x and y")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data or "y" not in data:
                raise ValueError(
                    f"{flag} {path} has arrays {sorted(data.files)}; "
                    "expected x and y"
                )
            x, y = data["x"], data["y"]
    except ValueError:
        raise
    except Exception as error:
        raise ValueError(f"{flag} {path} is not a readable .npz ({error})") from None
    x = _check_inputs(x, input_shape, flag)
    if len(y) != len(x):
        raise ValueError(
            f"{flag} {path}: {len(x)} inputs but {len(y)} labels"
        )
    return x, np.asarray(y)


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


def _check_inputs(array, input_shape, flag, limit=None):
    expected = tuple(input_shape[1:])
    if array.ndim != len(expected) + 1 or tuple(array.shape[1:]) != expected:
        raise ValueError(
            f"{flag}: inputs of shape {array.shape} do not match the model "
            f"input (N,) + {expected}"
        )
    if len(array) == 0:
        raise ValueError(f"{flag}: no inputs (0 rows)")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{flag}: expected numeric inputs, got {array.dtype}")
    if limit is not None:
        array = array[:limit]
    return np.ascontiguousarray(array, dtype=np.float32)


def takes_fashion_mnist(input_shape):
    """Whether a model with this input shape accepts Fashion-MNIST images."""
    return tuple(input_shape[1:]) == (28, 28, 1)


def default_real_inputs(input_shape, count=DEFAULT_REAL_INPUTS):
    """Fashion-MNIST test images when the model takes 28x28x1, else None."""
    if not takes_fashion_mnist(input_shape):
        return None
    return _fashion_mnist(f"fashion-mnist:{count}", "real inputs", split="test")


# -------------------------------------------------------------------- verify


def verify_artifact(
    model,
    path,
    fmt,
    quantize="none",
    real_inputs=None,
    real_inputs_source=None,
    labelled=None,
    seed=0,
    batch_sizes=DEFAULT_BATCH_SIZES,
    tolerance=RELATIVE_TOLERANCE,
    min_agreement=None,
    max_accuracy_drop=DEFAULT_MAX_ACCURACY_DROP,
    runner=None,
):
    """Checks an exported artifact against its Keras model.

    Args:
        model: The Keras model that was exported.
        path: Path of the artifact (usually still the temporary path).
        fmt: `"savedmodel"`, `"tflite"` or `"onnx"`.
        quantize: `"none"` for float formats; `"float16"`, `"dynamic"` or
            `"int8"` switch the gate to top-1 agreement.
        real_inputs: float32 inputs for the agreement check of quantised
            formats. Defaults to `labelled[0]`, else Fashion-MNIST test images
            for 28x28x1 models.
        real_inputs_source: Description of `real_inputs` for the report.
        labelled: Optional `(x, y)` for accuracy.
        seed: Seed of the random inputs.
        batch_sizes: Batch sizes of the random inputs (their sum is the
            number of random inputs); several sizes test the dynamic batch.
        tolerance: Maximum relative error for float formats.
        min_agreement: Minimum top-1 agreement for quantised formats
            (default `MIN_TOP1_AGREEMENT[quantize]`).
        max_accuracy_drop: With `labelled`, maximum accuracy the artifact may
            lose against Keras (absolute fraction, 0.01 = one point).
        runner: Optional `x -> outputs` callable standing for the artifact
            (default: `export.runtimes.load(path, fmt).predict`).

    Returns:
        A JSON-serialisable dict of the figures (`max_relative_error`,
        `top1_agreement`, `accuracy`, ...) with `"passed": True`.

    Raises:
        ParityError: a gate fails; the message gives the figure and the bound.
    """
    input_shape, dtype = loading.input_signature(model)
    reference = runtimes.KerasRuntime(model).predict
    if runner is None:
        options = {"providers": runtimes.onnx_providers()} if fmt == "onnx" else None
        runner = runtimes.load(path, fmt, options=options).predict
    exported = runner
    quantized = quantize != "none"
    rng = np.random.default_rng(seed)

    errors, abs_errors, agreements = [], [], []
    for batch_size in batch_sizes:
        x = random_inputs(input_shape, batch_size, rng, dtype)
        expected = reference(x)
        try:
            actual = exported(x)
        except Exception as error:
            raise ParityError(
                f"{fmt} artifact failed to run at batch size {batch_size}: "
                f"{str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
            ) from None
        errors.append(relative_error(actual, expected))
        abs_errors.append(
            float(np.max(np.abs(actual.astype(np.float64) - expected)))
        )
        if expected.ndim == 2:
            agreements.append(top1_agreement(actual, expected))
    report = {
        "format": fmt,
        "quantize": quantize,
        "random_inputs": {
            "distribution": "uniform[0, 1)",
            "seed": seed,
            "batch_sizes": list(batch_sizes),
            "count": int(sum(batch_sizes)),
        },
        "max_relative_error": max(errors),
        "max_abs_error": max(abs_errors),
        "relative_error_definition": "max|a-b| / max(max|b|, float32 tiny), "
        "a = artifact, b = Keras",
        "random_top1_agreement": min(agreements) if agreements else None,
    }
    if not quantized:
        report["relative_tolerance"] = tolerance
        if not report["max_relative_error"] < tolerance:
            raise ParityError(
                f"{fmt} parity failed: relative error "
                f"{report['max_relative_error']:.3g} >= {tolerance:g} against "
                "Keras on random inputs"
            )

    if labelled is not None and real_inputs is None:
        real_inputs, real_inputs_source = labelled[0], "labelled data"
    if quantized:
        if real_inputs is None:
            real_inputs = default_real_inputs(input_shape)
            real_inputs_source = (
                f"Fashion-MNIST test[:{DEFAULT_REAL_INPUTS}]"
                if real_inputs is not None
                else None
            )
        if real_inputs is None:
            raise ParityError(
                f"quantize={quantize} needs real inputs for the top-1 "
                "agreement check; pass --labelled-data or --representative-data"
            )
        threshold = (
            MIN_TOP1_AGREEMENT[quantize] if min_agreement is None else min_agreement
        )
        expected = reference(real_inputs)
        actual = exported(real_inputs)
        agreement = top1_agreement(actual, expected)
        report.update(
            top1_agreement=agreement,
            min_top1_agreement=threshold,
            real_inputs=real_inputs_source or "given array",
            real_inputs_count=int(len(real_inputs)),
            real_max_relative_error=relative_error(actual, expected),
        )
        if agreement < threshold:
            raise ParityError(
                f"{fmt} quantize={quantize} parity failed: top-1 agreement "
                f"{agreement:.4f} < {threshold} with Keras on "
                f"{len(real_inputs)} real inputs ({report['real_inputs']})"
            )

    if labelled is not None:
        x, y = labelled
        reference_accuracy = accuracy(reference(x), y)
        exported_accuracy = accuracy(exported(x), y)
        report["accuracy"] = {
            "keras": reference_accuracy,
            "exported": exported_accuracy,
            "count": int(len(x)),
            "max_drop": max_accuracy_drop,
        }
        if exported_accuracy < reference_accuracy - max_accuracy_drop:
            raise ParityError(
                f"{fmt} accuracy {exported_accuracy:.4f} is more than "
                f"{max_accuracy_drop} below Keras' {reference_accuracy:.4f} "
                f"on {len(x)} labelled examples"
            )
    report["passed"] = True
    return report


def summary_line(path, report, size_bytes):
    """One line: path, size, and the gating figure(s)."""
    parts = [f"{report['format']}", os.fspath(path), f"{size_bytes / 1024:.1f} KiB"]
    if report["quantize"] != "none":
        parts.append(f"quantize={report['quantize']}")
        parts.append(
            f"top-1 agreement {report['top1_agreement']:.4f} "
            f"(>= {report['min_top1_agreement']}) on {report['real_inputs_count']} real inputs"
        )
    parts.append(
        f"max rel. error {report['max_relative_error']:.2e}"
        + (
            f" (< {report['relative_tolerance']:g})"
            if "relative_tolerance" in report
            else ""
        )
    )
    if "accuracy" in report:
        acc = report["accuracy"]
        parts.append(f"accuracy {acc['exported']:.4f} (Keras {acc['keras']:.4f})")
    return "verified " + ", ".join(parts)
