"""Write -> verify -> sidecar -> rename: the path every exporter takes.

`export_artifact` receives a `write(temporary_path)` callable from a to_*
module, runs it on a temporary path beside the destination, checks the result
with `export.verify.verify_artifact`, stages the JSON sidecar, and only then
moves both into place. On any failure nothing appears at the destination and
no temporary file is left behind.
"""

import dataclasses
import os

from export import loading
from export import sidecar
from export import staging
from export import verify


class ConversionError(ValueError):
    """A converter (TFLite, tf2onnx) could not convert the model."""


@dataclasses.dataclass
class ExportResult:
    """What an exporter returns.

    Attributes:
        path: Final artifact path.
        sidecar_path: Path of the JSON sidecar.
        sidecar: The sidecar content (size, parity, accuracy, versions).
        summary: The one-line summary printed by the CLIs.
    """

    path: str
    sidecar_path: str
    sidecar: dict
    summary: str


def resolve_for_export(
    model, output_path, overwrite=False, unsafe=False, directory=False
):
    """Checks the destination first, then loads `model`: `(model, source)`.

    A bad destination is refused before the (slow) load and conversion.

    Args:
        model: A `keras.Model`, or a path to a `.keras` file / SavedModel.
        output_path: The export's destination.
        overwrite: Whether an existing destination may be replaced.
        unsafe: Allow Lambda layers when loading a `.keras` path.
        directory: Whether the artifact is a directory.

    Returns:
        The single-input, single-output `keras.Model` and the source path
        (None for an in-memory model).
    """
    check_destination(output_path, overwrite, directory=directory)
    source = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    model = loading.resolve_model(model, unsafe=unsafe)
    loading.check_logits_output(model)
    return model, source


def check_destination(output_path, overwrite=False, directory=False):
    """Checks the artifact's and its sidecar's paths before any work.

    Raises:
        staging.OutputExistsError, ValueError, PermissionError: see
            `export.staging.check_output_path`.
    """
    staging.check_output_path(output_path, overwrite, directory=directory)
    staging.check_output_path(
        sidecar.sidecar_path(output_path), overwrite=True, flag="--output sidecar"
    )


def load_labelled_data(labelled_data, model):
    """`(x, y)` of `labelled_data` (a `.npz` path or a tuple), validated.

    Inputs must match the model and be finite; labels finite class indices
    below the model's number of classes (or one-hot rows).
    """
    input_shape, _ = loading.input_signature(model)
    num_classes = loading.num_classes(model)
    if isinstance(labelled_data, (str, os.PathLike)):
        return verify.load_labelled(labelled_data, input_shape, num_classes=num_classes)
    x, y = labelled_data
    return verify.check_labelled(
        x, y, input_shape, flag="labelled_data", num_classes=num_classes
    )


def export_artifact(
    model,
    output_path,
    fmt,
    write,
    directory=False,
    quantize="none",
    options=None,
    overwrite=False,
    labelled_data=None,
    real_inputs=None,
    real_inputs_source=None,
    seed=0,
    min_agreement=None,
    source=None,
    calibration_inputs=None,
):
    """Writes, verifies and commits one artifact with its sidecar.

    Args:
        model: The `keras.Model` being exported (the parity reference).
        output_path: Final destination.
        fmt: `"savedmodel"`, `"tflite"` or `"onnx"`.
        write: `write(temporary_path) -> dict | None`, producing the artifact;
            a returned dict is merged into the sidecar options.
        directory: Whether the artifact is a directory.
        quantize: Quantisation mode (`"none"` for float formats).
        options: Export options recorded in the sidecar.
        overwrite: Replace an existing destination.
        labelled_data: Optional `.npz` path with `x`, `y`, or an `(x, y)`
            tuple, for accuracy.
        real_inputs: Optional float32 inputs for the quantised agreement.
        real_inputs_source: Description of `real_inputs`.
        seed: Seed of the random parity inputs.
        min_agreement: Override of the quantised top-1 agreement threshold.
        source: Description of the model for the sidecar.
        calibration_inputs: Representative data a quantised model was
            calibrated on (its held-out agreement inputs are drawn like it).

    Returns:
        An `ExportResult`.

    Raises:
        staging.OutputExistsError: destination exists, no `overwrite`.
        verify.ParityError: the artifact does not match Keras.
    """
    labelled = None
    if labelled_data is not None:
        labelled = load_labelled_data(labelled_data, model)
    with (
        staging.StagedOutput(
            output_path, overwrite=overwrite, directory=directory
        ) as artifact,
        staging.StagedOutput(
            sidecar.sidecar_path(output_path), overwrite=True, flag="sidecar"
        ) as side,
    ):
        extra = write(artifact.temporary_path) or {}
        report = verify.verify_artifact(
            model,
            artifact.temporary_path,
            fmt,
            quantize=quantize,
            real_inputs=real_inputs,
            real_inputs_source=real_inputs_source,
            labelled=labelled,
            seed=seed,
            min_agreement=min_agreement,
            calibration_inputs=calibration_inputs,
        )
        size = staging.artifact_size_bytes(artifact.temporary_path)
        content = sidecar.build_sidecar(
            artifact.path,
            size,
            source=source or getattr(model, "name", None),
            options={**(options or {}), **extra},
            parity=report,
        )
        sidecar.write_to(side.temporary_path, content)
        artifact.commit()
        side.commit()
    return ExportResult(
        path=artifact.path,
        sidecar_path=side.path,
        sidecar=content,
        summary=verify.summary_line(artifact.path, report, size),
    )


def run_isolated(target, arguments, what):
    """Runs `target(**arguments)` in a fresh child process.

    For native converters that can crash the process (the TFLite converter
    segfaults on some calibration data): a crash becomes a one-line
    `ConversionError` here instead of killing the caller. The child is
    `python -m export.pipeline` (not a multiprocessing spawn, which would
    re-run a caller's unguarded `__main__` script); it inherits stderr, the
    environment and `sys.path`; its stdout goes to stderr.

    Args:
        target: A module-level function.
        arguments: Its keyword arguments (JSON-serialisable).
        what: What runs, for messages (e.g. `"the TFLite converter"`).

    Raises:
        ConversionError: `target` raised (its one-line message is kept), or
            the child died (the signal is named) or exited without a result.
    """
    import json
    import signal
    import subprocess
    import sys
    import tempfile

    module = target.__module__
    if module == "__main__":  # `python -m export.to_tflite`: its real name.
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else module
    request = json.dumps(
        {
            "target": f"{module}:{target.__qualname__}",
            "arguments": arguments,
        }
    )
    handle, result_path = tempfile.mkstemp(prefix="kdkeras-result-", suffix=".json")
    os.close(handle)
    path_entries = [entry for entry in sys.path if isinstance(entry, str) and entry]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(path_entries)}
    try:
        stderr_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # A replaced sys.stderr.
        stderr_fd = 2
    try:
        sys.stderr.flush()
        completed = subprocess.run(
            [sys.executable, "-m", "export.pipeline", request, result_path],
            stdin=subprocess.DEVNULL,
            stdout=stderr_fd,
            env=environment,
            check=False,
        )
        with open(result_path, encoding="utf-8") as result_file:
            text = result_file.read()
    finally:
        os.remove(result_path)
    if text:
        kind, message = json.loads(text)
        if kind == "ok":
            return
        raise ConversionError(
            message if kind == "ConversionError" else f"{what} failed: {message}"
        )
    code = completed.returncode
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        raise ConversionError(
            f"{what} crashed ({name}) on this model and data; nothing was "
            "written (check --representative-data, or rerun with --verbose)"
        )
    raise ConversionError(f"{what} exited with status {code} and no result")


def isolated_main(argv):
    """Child side of `run_isolated`: `python -m export.pipeline REQUEST RESULT`.

    Writes `["ok", null]` or `[error type, one-line message]` as JSON to
    RESULT.
    """
    import importlib
    import json

    request, result_path = json.loads(argv[1]), argv[2]
    module_name, _, function_name = request["target"].partition(":")
    try:
        function = importlib.import_module(module_name)
        for part in function_name.split("."):
            function = getattr(function, part)
        function(**request["arguments"])
    except Exception as error:  # Reported to the parent as one line.
        kind = type(error).__name__
        message = loading.error_summary(error)
        if kind != "ConversionError":
            message = f"{kind}: {message}"
        outcome = [kind, message]
    else:
        outcome = ["ok", None]
    with open(result_path, "w", encoding="utf-8") as result_file:
        json.dump(outcome, result_file)


if __name__ == "__main__":
    import sys

    isolated_main(sys.argv)
