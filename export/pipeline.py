"""Write -> verify -> sidecar -> rename: the path every exporter takes.

`export_artifact` receives a `write(temporary_path)` callable from a to_*
module, runs it on a temporary path beside the destination, checks the result
with `export.verify.verify_artifact`, stages the JSON sidecar, and only then
moves both into place. On any failure nothing appears at the destination and
no temporary file is left behind.
"""

import atexit
import dataclasses
import json
import os

from export import inputs
from export import loading
from export import sidecar
from export import staging
from export import verify
from kdutils.digests import file_digest


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
        The built `keras.Model` and the source path (None for an in-memory
        model).
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


def load_labelled_data(labelled_data, model, spec=None):
    """`(x, y)` of `labelled_data` (a `.npz` path, a dataset or a tuple), validated.

    Inputs must match the model (`spec`, read from it when None) and be
    finite; labels finite class indices below the model's number of classes
    (or one-hot rows).
    """
    spec = loading.input_spec(model) if spec is None else spec
    num_classes = loading.num_classes(model)
    if isinstance(labelled_data, (str, os.PathLike)) or not isinstance(
        labelled_data, (tuple, list)
    ):
        return inputs.load_labelled(labelled_data, spec, num_classes=num_classes)
    x, y = labelled_data
    return inputs.check_labelled(
        x, y, spec, flag="labelled_data", num_classes=num_classes
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
    spec=None,
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
        labelled_data: Optional `.npz` path with `x` (or `x_<input name>`)
            and `y`, an `(x, y)` tuple or a dataset, for accuracy.
        real_inputs: Optional inputs for the quantised agreement.
        real_inputs_source: Description of `real_inputs`.
        seed: Seed of the random parity inputs.
        min_agreement: Override of the quantised top-1 agreement threshold.
        source: Description of the model for the sidecar.
        calibration_inputs: Representative data a quantised model was
            calibrated on (its held-out agreement inputs are drawn like it).
        spec: The model's `export.inputs.InputSpec` (read here when None).

    Returns:
        An `ExportResult`.

    Raises:
        staging.OutputExistsError: destination exists, no `overwrite`.
        verify.ParityError: the artifact does not match Keras.
    """
    spec = loading.input_spec(model) if spec is None else spec
    labelled = None
    if labelled_data is not None:
        labelled = load_labelled_data(labelled_data, model, spec)
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
            spec=spec,
        )
        size = staging.artifact_size_bytes(artifact.temporary_path)
        content = sidecar.build_sidecar(
            artifact.path,
            size,
            source=source or getattr(model, "name", None),
            options={**(options or {}), **extra},
            parity=report,
            sha256=file_digest(artifact.temporary_path),
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


class IsolatedRunner:
    """A child process that runs converter calls, kept alive between calls.

    `python -m export.pipeline --serve FD` reads one JSON request per line on its
    stdin and writes one JSON outcome per line to the pipe `FD`; its stdout goes
    to the caller's stderr. The child pays TensorFlow's import once, not once per
    conversion. A crash kills only the child: the call reports it, and the next
    call starts a new child. One runner per process (`run_isolated`).
    """

    def __init__(self):
        self.process = None
        self.outcomes = None

    def start(self):
        import subprocess
        import sys

        path_entries = [e for e in sys.path if isinstance(e, str) and e]
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(path_entries)}
        try:
            stderr_fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # A replaced sys.stderr.
            stderr_fd = 2
        read_fd, write_fd = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "export.pipeline", "--serve", str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=stderr_fd,
                env=environment,
                pass_fds=(write_fd,),
                text=True,
            )
        finally:
            os.close(write_fd)
        self.outcomes = os.fdopen(read_fd, "r", encoding="utf-8")

    def call(self, request):
        """Sends one request; returns its outcome list, or None if the child died.

        Returns:
            `(outcome, returncode)`: the child's `[kind, message]` and None, or None
            and the dead child's exit code.
        """
        import sys

        if self.process is None or self.process.poll() is not None:
            self.start()
        sys.stderr.flush()
        try:
            self.process.stdin.write(request + "\n")
            self.process.stdin.flush()
            line = self.outcomes.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if line:
            return json.loads(line), None
        code = self.process.wait()
        self.stop()
        return None, code

    def stop(self):
        """Ends the child (it exits when its stdin closes)."""
        if self.process is None:
            return
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=30)
        except Exception:  # A child that does not exit is killed.
            self.process.kill()
            self.process.wait()
        self.outcomes.close()
        self.process = self.outcomes = None


ISOLATED = IsolatedRunner()
atexit.register(ISOLATED.stop)


def stop_isolated():
    """Ends the converter child of `run_isolated`, if one runs (frees its memory)."""
    ISOLATED.stop()


def run_isolated(target, arguments, what):
    """Runs `target(**arguments)` in a child process, not in the caller's.

    For native converters that can crash the process (the TFLite converter
    segfaults on some calibration data): a crash becomes a one-line
    `ConversionError` here instead of killing the caller. The child is
    `python -m export.pipeline` (not a multiprocessing spawn, which would
    re-run a caller's unguarded `__main__` script); it inherits stderr, the
    environment and `sys.path`; its stdout goes to stderr. It stays alive for
    the next call (`IsolatedRunner`), so that several conversions pay one
    TensorFlow import; `stop_isolated` ends it.

    Args:
        target: A module-level function.
        arguments: Its keyword arguments (JSON-serialisable).
        what: What runs, for messages (e.g. `"the TFLite converter"`).

    Raises:
        ConversionError: `target` raised (its one-line message is kept), or
            the child died (the signal is named) or exited without a result.
    """
    import signal
    import sys

    module = target.__module__
    if module == "__main__":  # `python -m export.to_tflite`: its real name.
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else module
    request = json.dumps(
        {"target": f"{module}:{target.__qualname__}", "arguments": arguments}
    )
    outcome, code = ISOLATED.call(request)
    if outcome is not None:
        kind, message = outcome
        if kind == "ok":
            return
        raise ConversionError(
            message if kind == "ConversionError" else f"{what} failed: {message}"
        )
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


def run_request(request):
    """Runs one request of `run_isolated` here; returns `["ok", None]` or the error.

    The error is `[error type, one-line message]`.
    """
    import importlib

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
        return [kind, message]
    return ["ok", None]


def serve_isolated(outcome_fd, requests):
    """Child side of `run_isolated`: runs each request line, answers on `outcome_fd`."""
    with os.fdopen(outcome_fd, "w", encoding="utf-8") as outcomes:
        for line in requests:
            if not line.strip():
                continue
            outcomes.write(json.dumps(run_request(json.loads(line))) + "\n")
            outcomes.flush()


def import_tensorflow_quietly_if_asked():
    """Child side: drops TensorFlow's import noise if the caller's logging is quiet.

    TensorFlow's start-up lines (`failed call to cuInit`, absl's "All log
    messages before absl::InitializeLog()") are written natively to file
    descriptor 2 whatever `TF_CPP_MIN_LOG_LEVEL` says; when it is set above 0
    (the CLIs set it unless `--verbose`), they are dropped here, so that the
    child, which writes to the caller's stderr, is as quiet as the caller.
    """
    import sys
    import tempfile

    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip() in ("", "0"):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow  # noqa: F401  (imported for its side effect)
        except ImportError:
            pass
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--serve"] and len(sys.argv) == 3:
        import_tensorflow_quietly_if_asked()
        serve_isolated(int(sys.argv[2]), sys.stdin)
    else:
        sys.stderr.write("usage: python -m export.pipeline --serve FD\n")
        sys.exit(2)
