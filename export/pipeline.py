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


def resolve_for_export(model, output_path, overwrite=False, unsafe=False, directory=False):
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
    staging.check_output_path(output_path, overwrite, directory=directory)
    source = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    return loading.resolve_model(model, unsafe=unsafe), source


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

    Returns:
        An `ExportResult`.

    Raises:
        staging.OutputExistsError: destination exists, no `overwrite`.
        verify.ParityError: the artifact does not match Keras.
    """
    input_shape, _ = loading.input_signature(model)
    labelled = None
    if labelled_data is not None:
        if isinstance(labelled_data, (str, os.PathLike)):
            labelled = verify.load_labelled(labelled_data, input_shape)
        else:
            x, y = labelled_data
            labelled = (
                verify.load_inputs(x, input_shape, flag="labelled_data"),
                y,
            )
    with staging.StagedOutput(
        output_path, overwrite=overwrite, directory=directory
    ) as artifact, staging.StagedOutput(
        sidecar.sidecar_path(output_path), overwrite=True, flag="sidecar"
    ) as side:
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
