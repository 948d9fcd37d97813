"""Parity and accuracy of an exported artifact against its Keras model.

Every exporter calls `verify_artifact` on the artifact at its temporary path,
before it is moved into place. Two kinds of check:

Every input of the model is fed (`export.inputs.InputSpec`: float images,
int32 token ids, masks) and every output is compared; top-1 agreement and
accuracy read the first output in Keras' order (the logits).

Float formats (SavedModel, ONNX, TFLite `none`): on fresh random inputs
(seeded; at several batch sizes so the dynamic batch dimension is exercised)
the relative error

    relative_error(a, b) = max|a - b| / max(max|b|, TINY)

between the artifact's outputs `a` and Keras' outputs `b` (`training=False`),
computed in float64 over the whole output array, must be below
`RELATIVE_TOLERANCE` (1e-5). The denominator is the largest reference
magnitude, so the figure is scale-free (logits of any size) and does not blow
up on individual near-zero outputs; `TINY` (float32's smallest normal
number) only guards the degenerate all-zero reference. The random inputs are
drawn where the model's inputs lie: when held-out (labelled, real) or
calibration data is given, its float inputs are drawn like that data
(`random_batch`); without data, floats are uniform in [0, 1). Integer inputs
are uniform in their range (token ids below the vocabulary of the embedding
that reads them, 0/1 masks). A model taking pixels in [0, 255] (a
`Rescaling(1 / 255)` in front) fed [0, 1) sees one near-black image for every
"random" input: a degenerate check, off the inputs the model is used on.
The same holds for the formats whose activation ranges were calibrated on the
data (`int8`, and `qat`'s learned ranges: `DATA_RANGED`): off that range int8
saturates, by design. float16 and dynamic-range files have no activation
ranges and keep the uniform draw for their random inputs (a guard against a
broken conversion; their real check is the held-out agreement below), so their
gates measure what they always did.

Quantised formats (TFLite `float16`, `dynamic`, `int8`): outputs legitimately
move, so the gate is the top-1 agreement (fraction of inputs where
`argmax(a) == argmax(b)`) on held-out inputs, which must reach
`MIN_TOP1_AGREEMENT[quantize]`: the labelled data when given, else the
Fashion-MNIST test slice when the input is 28x28x1, else fresh seeded random
inputs drawn like the calibration data (`held_out_like`), never the calibration
batch itself. Every relative error recorded (on random and on held-out inputs)
must also stay below `MAX_QUANTIZED_RELATIVE_ERROR[quantize]`.

NaN and inf are failures, never agreement: a row in which either side has a
non-finite value counts as a disagreement, a non-finite output gives an
infinite relative error, and a Keras model whose own outputs are not finite
(e.g. NaN weights) cannot be verified (`NonFiniteOutputError`). Input data
(`load_inputs`, `load_labelled`) must be finite, numeric and of the model's
shape; labels must be class indices in range (or one-hot rows).

With labelled data `(x, y)`, accuracy of both Keras and the artifact is
reported, and the artifact may not lose more than `max_accuracy_drop`.

The artifact is run through `export.runtimes` (SavedModel signature, LiteRT
interpreter, ONNX Runtime); the inputs come from `load_inputs` /
`load_labelled` here.
"""

import os

import numpy as np

from export import inputs
from export import loading
from export import runtimes
from export.inputs import DEFAULT_REAL_INPUTS  # noqa: F401 (callers' old home)
from export.inputs import MIN_REPRESENTATIVE_EXAMPLES  # noqa: F401
from export.inputs import check_labelled  # noqa: F401
from export.inputs import load_inputs  # noqa: F401
from export.inputs import load_labelled  # noqa: F401
from export.inputs import load_representative  # noqa: F401
from export.inputs import scaled_like  # noqa: F401
from export.inputs import takes_fashion_mnist  # noqa: F401

RELATIVE_TOLERANCE = 1e-5
TINY = float(np.finfo(np.float32).tiny)
# Top-1 agreement with Keras on real inputs required of quantised TFLite
# models: below what the test CNN (tests/export/trained_cnn.py) reaches in
# each mode, with room for larger models, and far above what a broken
# calibration (ranges too narrow) gives. A quantization-aware model is
# compared with itself in fake-quant form, whose ranges it learned.
MIN_TOP1_AGREEMENT = {"float16": 0.99, "dynamic": 0.98, "int8": 0.97, "qat": 0.95}
# Largest relative error (max|a - b| / max|b|) a quantised model may show on
# the random and held-out inputs. Far above what a working conversion gives
# (tests/export/test_to_tflite.py), far below a broken one (a NaN/inf
# output is an infinite error).
MAX_QUANTIZED_RELATIVE_ERROR = {
    "float16": 0.01,
    "dynamic": 0.5,
    "int8": 1.0,
    "qat": 1.0,
}
DEFAULT_BATCH_SIZES = (1, 16)
# Modes whose random parity inputs are drawn like the model's data when it is
# given: float, and those whose activation ranges come from the data.
DATA_RANGED = ("none", "int8", "qat")
DEFAULT_MAX_ACCURACY_DROP = 0.01


class ParityError(ValueError):
    """The exported artifact does not reproduce the Keras model."""


class NonFiniteOutputError(ValueError):
    """The Keras model itself gives NaN or inf outputs: nothing to verify."""


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
    if not (np.all(np.isfinite(actual)) and np.all(np.isfinite(expected))):
        return float("inf")
    scale = max(float(np.max(np.abs(expected), initial=0.0)), TINY)
    return float(np.max(np.abs(actual - expected), initial=0.0) / scale)


def finite_rows(array):
    """Boolean `(N,)`: rows of an `(N, ...)` array holding no NaN or inf."""
    array = np.asarray(array)
    return np.isfinite(array).reshape(len(array), -1).all(axis=-1)


def top1_agreement(actual, expected):
    """Fraction of rows whose argmax agrees between two `(N, classes)` arrays.

    A row with a NaN or inf on either side counts as a disagreement.

    Example:

    >>> top1_agreement(np.array([[0.0, 1.0], [np.nan, 0.0]]),
    ...                np.array([[0.0, 2.0], [1.0, 0.0]]))
    0.5
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    same = actual.argmax(-1) == expected.argmax(-1)
    return float(np.mean(same & finite_rows(actual) & finite_rows(expected)))


def accuracy(logits, labels):
    """Top-1 accuracy of `(N, classes)` logits against int or one-hot labels.

    A row of logits with a NaN or inf counts as wrong.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(-1)
    logits = np.asarray(logits)
    right = (logits.argmax(-1) == labels.reshape(-1)) & finite_rows(logits)
    return float(np.mean(right))


def max_abs_error(actual, expected):
    """`max|actual - expected|` in float64; inf if either side is not finite."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if not (np.all(np.isfinite(actual)) and np.all(np.isfinite(expected))):
        return float("inf")
    return float(np.max(np.abs(actual - expected), initial=0.0))


def random_inputs(input_shape, batch_size, rng, dtype="float32"):
    """Uniform [0, 1) inputs of shape `(batch_size,) + input_shape[1:]`."""
    shape = (batch_size,) + tuple(input_shape[1:])
    return rng.random(shape, dtype=np.float64).astype(dtype)


def outputs_in_order(result, spec, fmt="artifact"):
    """Output arrays in Keras' order from an array or a dict by output name.

    A one-output model's outputs may carry any name (the exported signature
    names it `logits`); several outputs are matched by their Keras names.
    """
    if not isinstance(result, dict):
        return [np.asarray(result)]
    if len(result) == 1 and len(spec.output_names) <= 1:
        return [np.asarray(next(iter(result.values())))]
    missing = [name for name in spec.output_names if name not in result]
    if missing:
        raise ParityError(
            f"{fmt} artifact has outputs {sorted(result)[:8]}; expected the "
            f"model's {list(spec.output_names)[:8]}"
        )
    return [np.asarray(result[name]) for name in spec.output_names]


def _reference_outputs(reference, x, what, spec):
    outputs = outputs_in_order(reference(x), spec, "keras")
    for output in outputs:
        if not np.all(np.isfinite(output)):
            bad = int(np.sum(~finite_rows(output)))
            raise NonFiniteOutputError(
                f"`model` must give finite outputs to be verified. Received: a "
                f"model whose outputs hold NaN or inf on {bad} of "
                f"{spec.count(x)} {what} (NaN/inf weights?)"
            )
    return outputs


def _relative_errors(actual, expected):
    return [relative_error(a, b) for a, b in zip(actual, expected, strict=True)]


def _varies(data, spec):
    """Whether some input of `data` holds more than one value."""
    return any(
        float(np.max(a)) != float(np.min(a)) for a in spec.as_dict(data).values()
    )


def _is_integer(dtype):
    return np.issubdtype(np.dtype(dtype), np.integer) or np.dtype(dtype) == bool


def _model_data(spec, real_inputs, calibration_inputs):
    """The data the model is used on, when given: held-out, else calibration.

    Only data with a float input that varies says where the model's inputs
    lie; without it (or for integer-only models) None.
    """
    floats = [i for i, d in enumerate(spec.dtypes) if not _is_integer(d)]
    for data in (real_inputs, calibration_inputs):
        if data is None or not floats:
            continue
        arrays = list(spec.as_dict(data).values())
        if any(float(np.max(arrays[i])) != float(np.min(arrays[i])) for i in floats):
            return data
    return None


def random_batch(spec, batch_size, rng, like=None, seed=0):
    """Fresh random inputs for the float-format parity check.

    Args:
        spec: The model's `export.inputs.InputSpec`.
        batch_size: Number of examples.
        rng: `np.random.Generator` of the uniform draw (used without `like`).
        like: The model's own data (held-out or calibration inputs), or None.
        seed: Seed of the draw like `like`.

    Returns:
        Without `like`, `spec.random`: floats uniform in [0, 1), integers in
        their range. With it, float inputs are drawn like that data
        (`inputs.held_out_like`: per element its mean and spread, clipped to
        its range), so a model whose inputs are e.g. pixels in [0, 255] is
        checked on that range, not on a near-constant sliver of it; integer
        inputs as `spec.random`.
    """
    if like is None:
        return spec.random(batch_size, rng)
    return inputs.held_out_like(like, batch_size, seed, spec)


def _random_distribution(spec, like):
    floats_only = all(not _is_integer(d) for d in spec.dtypes)
    floats = (
        "floats drawn like the model's held-out (else calibration) data: per "
        "element its mean and standard deviation, clipped to its range"
        if like is not None
        else "floats uniform[0, 1)"
    )
    if floats_only:
        return floats if like is not None else "uniform[0, 1)"
    return (
        f"{floats}; integers uniform in their range (token ids below the "
        "embedding's vocabulary; 0/1 masks, first position 1)"
    )


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
    calibration_inputs=None,
    batch_sizes=DEFAULT_BATCH_SIZES,
    tolerance=None,
    min_agreement=None,
    max_accuracy_drop=DEFAULT_MAX_ACCURACY_DROP,
    runner=None,
    spec=None,
):
    """Checks an exported artifact against its Keras model.

    Args:
        model: The Keras model that was exported.
        path: Path of the artifact (usually still the temporary path).
        fmt: `"savedmodel"`, `"tflite"` or `"onnx"`.
        quantize: `"none"` for float formats; `"float16"`, `"dynamic"` or
            `"int8"` switch the gate to top-1 agreement.
        real_inputs: Held-out inputs for the agreement check of quantised
            formats (an array, or a dict by input name). Defaults to
            `labelled[0]`, else Fashion-MNIST test images for 28x28x1 models,
            else `inputs.held_out_like(calibration_inputs)`.
        real_inputs_source: Description of `real_inputs` for the report.
        labelled: Optional `(x, y)` for accuracy.
        seed: Seed of the random inputs.
        calibration_inputs: The representative (calibration) data, if any;
            never used itself for the agreement, only its distribution.
        batch_sizes: Batch sizes of the random inputs (their sum is the
            number of random inputs); several sizes test the dynamic batch.
        tolerance: Maximum relative error (random and held-out inputs);
            default `RELATIVE_TOLERANCE` for float formats,
            `MAX_QUANTIZED_RELATIVE_ERROR[quantize]` for quantised ones.
        min_agreement: Minimum top-1 agreement for quantised formats
            (default `MIN_TOP1_AGREEMENT[quantize]`).
        max_accuracy_drop: With `labelled`, maximum accuracy the artifact may
            lose against Keras (absolute fraction, 0.01 = one point).
        runner: Optional `x -> outputs` callable standing for the artifact
            (an array, or a dict by output name; default:
            `export.runtimes.load(path, fmt).predict_all`).
        spec: The model's `export.inputs.InputSpec` (read here when None).

    Returns:
        A JSON-serialisable dict of the figures (`max_relative_error`, the
        largest over the outputs, `output_relative_errors` per output when
        there are several, `top1_agreement`, `accuracy`, ...) with
        `"passed": True`.

    Raises:
        ParityError: a gate fails; the message gives the figure and the bound.
        NonFiniteOutputError: the Keras model's own outputs are NaN or inf.
        ValueError: a quantised format without any held-out inputs.
    """
    spec = loading.input_spec(model) if spec is None else spec
    reference = runtimes.keras_reference(model).predict_all
    if runner is None:
        options = {"providers": runtimes.onnx_providers()} if fmt == "onnx" else None
        runner = runtimes.load(path, fmt, options=options).predict_all

    def exported(x):
        return outputs_in_order(runner(x), spec, fmt)

    quantized = quantize != "none"
    rng = np.random.default_rng(seed)
    if labelled is not None and real_inputs is None:
        real_inputs, real_inputs_source = labelled[0], "labelled data"
    if real_inputs is not None:
        real_inputs = spec.check(real_inputs, "real inputs")
    # Float and calibrated formats are checked where the model's data lies;
    # float16 and dynamic on the uniform draw (their gate is the agreement).
    like = (
        _model_data(spec, real_inputs, calibration_inputs)
        if quantize in DATA_RANGED
        else None
    )

    per_output, abs_errors, agreements = [], [], []
    for index, batch_size in enumerate(batch_sizes):
        x = random_batch(spec, batch_size, rng, like, seed + index)
        expected = _reference_outputs(reference, x, "random inputs", spec)
        try:
            actual = exported(x)
        except ParityError:
            raise
        except Exception as error:
            raise ParityError(
                f"{fmt} artifact failed to run at batch size {batch_size}: "
                f"{loading.error_summary(error)}"
            ) from None
        per_output.append(_relative_errors(actual, expected))
        abs_errors.append(
            max(max_abs_error(a, b) for a, b in zip(actual, expected, strict=True))
        )
        if expected[0].ndim == 2:
            agreements.append(top1_agreement(actual[0], expected[0]))
    errors = [max(row) for row in per_output]
    report = {
        "format": fmt,
        "quantize": quantize,
        "random_inputs": {
            "distribution": _random_distribution(spec, like),
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
    if len(spec.output_names) > 1:
        report["output_relative_errors"] = {
            name: max(row[i] for row in per_output)
            for i, name in enumerate(spec.output_names)
        }
    if not spec.single:
        report["inputs"] = spec.to_json()
    if tolerance is None:
        tolerance = (
            MAX_QUANTIZED_RELATIVE_ERROR[quantize] if quantized else RELATIVE_TOLERANCE
        )
    report["relative_tolerance"] = tolerance
    if not report["max_relative_error"] < tolerance:
        mode = f" quantize={quantize}" if quantized else ""
        raise ParityError(
            f"{fmt}{mode} parity failed: relative error "
            f"{report['max_relative_error']:.3g} >= {tolerance:g} against "
            "Keras on random inputs"
        )

    if quantized:
        if real_inputs is None:
            real_inputs = inputs.default_real_inputs(spec)
            real_inputs_source = (
                f"Fashion-MNIST test[:{DEFAULT_REAL_INPUTS}]"
                if real_inputs is not None
                else None
            )
        if real_inputs is None and calibration_inputs is not None:
            real_inputs = inputs.held_out_like(
                calibration_inputs, DEFAULT_REAL_INPUTS, seed, spec
            )
            real_inputs_source = (
                f"{DEFAULT_REAL_INPUTS} held-out random inputs scaled like "
                f"the representative data (seed {seed})"
            )
        if real_inputs is None:
            raise ValueError(
                f"`--labelled-data` or `--representative-data` must be given "
                f"with quantize={quantize}: held-out inputs are needed for the "
                "top-1 agreement check. Received: neither"
            )
        if not _varies(real_inputs, spec):
            raise ValueError(
                "`real_inputs` must vary (a constant batch cannot show a "
                f"disagreement). Received: {real_inputs_source or 'array'}"
            )
        threshold = (
            MIN_TOP1_AGREEMENT[quantize] if min_agreement is None else min_agreement
        )
        expected = _reference_outputs(reference, real_inputs, "held-out inputs", spec)
        actual = exported(real_inputs)
        agreement = top1_agreement(actual[0], expected[0])
        real_count = spec.count(real_inputs)
        report.update(
            top1_agreement=agreement,
            min_top1_agreement=threshold,
            real_inputs=real_inputs_source or "given array",
            real_inputs_count=int(real_count),
            real_max_relative_error=max(_relative_errors(actual, expected)),
        )
        if not report["real_max_relative_error"] < tolerance:
            raise ParityError(
                f"{fmt} quantize={quantize} parity failed: relative error "
                f"{report['real_max_relative_error']:.3g} >= {tolerance:g} "
                f"against Keras on {real_count} held-out inputs "
                f"({report['real_inputs']})"
            )
        if agreement < threshold:
            raise ParityError(
                f"{fmt} quantize={quantize} parity failed: top-1 agreement "
                f"{agreement:.4f} < {threshold} with Keras on "
                f"{real_count} real inputs ({report['real_inputs']})"
            )

    if labelled is not None:
        x, y = labelled
        reference_accuracy = accuracy(
            _reference_outputs(reference, x, "labelled inputs", spec)[0], y
        )
        exported_accuracy = accuracy(exported(x)[0], y)
        report["accuracy"] = {
            "keras": reference_accuracy,
            "exported": exported_accuracy,
            "count": int(spec.count(x)),
            "max_drop": max_accuracy_drop,
        }
        if exported_accuracy < reference_accuracy - max_accuracy_drop:
            raise ParityError(
                f"{fmt} accuracy {exported_accuracy:.4f} is more than "
                f"{max_accuracy_drop} below Keras' {reference_accuracy:.4f} "
                f"on {spec.count(x)} labelled examples"
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
        f" (< {report['relative_tolerance']:g})"
    )
    if "accuracy" in report:
        acc = report["accuracy"]
        parts.append(f"accuracy {acc['exported']:.4f} (Keras {acc['keras']:.4f})")
    return "verified " + ", ".join(parts)
