"""The candidates and their deployable variants: exported, verified, with lineage.

Each candidate student is exported to the float formats and to the quantised
`VARIANTS` (TFLite float16 / dynamic-range / int8, ONNX int8 from
`export.quantize_onnx`) through the verifying converters (`exported_entry`); an
int8 variant that misses the accuracy limits gets its per-layer quantisation
error and a selective variant keeping the fewest layers in float that pass
(`selective_entry`, the search of `export.float_fallback`). Inputs are checked
against every model first (`check_data_shapes`).
"""

import hashlib
import os

import numpy as np

from export import loading
from export import measure
from kdutils.digests import file_digest

# Quantised variants of each student: name -> (format, quantisation mode).
VARIANTS = {
    "tflite_float16": ("tflite", "float16"),
    "tflite_dynamic": ("tflite", "dynamic"),
    "tflite_int8": ("tflite", "int8"),
    "onnx_int8": ("onnx", "int8"),
}
CONVERTERS = {
    "keras": "the .keras file itself",
    "savedmodel": "keras.export.ExportArchive (export.to_savedmodel)",
    "tflite": "tf.lite.TFLiteConverter.from_saved_model (export.to_tflite)",
    "onnx": "tf2onnx.convert.from_function (export.to_onnx)",
    "numpy": "dense weights extracted (export.measure.floor)",
}


class DataShapeError(ValueError):
    """The accuracy or calibration data does not fit a model's input."""


def candidate_names(paths):
    """Report names of the students: `student` for one, else their file stems."""
    if len(paths) == 1:
        return ["student"]
    names = []
    for path in paths:
        stem = (
            os.path.splitext(os.path.basename(os.path.normpath(path)))[0] or "student"
        )
        name, count = stem, 2
        while name in names or name == "teacher":
            name, count = f"{stem}_{count}", count + 1
        names.append(name)
    return names


def check_data_shapes(models, x, flag, source):
    """Raises `DataShapeError` unless every model takes examples shaped like `x`'s.

    A model whose input has the same number of elements per example is accepted:
    the runtimes reshape each batch (a flat 784 input takes 28x28x1 images). Data
    for several inputs (a dict by input name) must fit every model's inputs
    (`export.inputs.InputSpec.check`).
    """
    if isinstance(x, dict):
        for name, model in models.items():
            try:
                loading.input_spec(model).check(x, flag, received=f"{flag}={source}")
            except ValueError as error:
                raise DataShapeError(
                    f"{loading.error_summary(error)} (the {name})"
                ) from None
        return
    example = tuple(x.shape[1:])
    for name, model in models.items():
        spec = loading.input_spec(model)
        if not spec.single:
            raise DataShapeError(
                f"`{flag}` must hold every input of the {name} ({spec.describe()}): "
                f"a .npz of x_<input name> arrays. Received: one array from {source}"
            )
        wanted = tuple(spec.shape[1:])
        if int(np.prod(wanted)) != int(np.prod(example)):
            hint = (
                " Pass `--labelled-data` with a .npz of x (N, "
                f"{', '.join(str(d) for d in wanted)}) and y"
                if flag == "--labelled-data" and source.startswith("Fashion-MNIST")
                else ""
            )
            raise DataShapeError(
                f"`{flag}` must hold examples of the {name}'s input shape {wanted}. "
                f"Received: examples of shape {example} from {source}.{hint}"
            )


def data_digest(x):
    """SHA-256 (first 16 hex digits) of float32 data and its shape.

    Data for several inputs (a dict) is digested input by input, by name.
    """
    if isinstance(x, dict):
        digest = hashlib.sha256()
        for name in sorted(x):
            array = np.ascontiguousarray(x[name], dtype=np.float32)
            digest.update(f"{name}:{array.shape!r}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()[:16]
    array = np.ascontiguousarray(x, dtype=np.float32)
    digest = hashlib.sha256(repr(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def export_verified(
    model, fmt, path, quantize="none", representative=None, labelled=None
):
    """Exports with the verified converters; returns their sidecar (parity etc.).

    Args:
        model: The `keras.Model`.
        fmt: `savedmodel`, `tflite` or `onnx`.
        path: Destination.
        quantize: `none`, or a TFLite mode (`float16`, `dynamic`, `int8`), or `int8`
            for ONNX (`export.quantize_onnx`).
        representative: Calibration inputs (int8): an array, or a dict by input name.
        labelled: Optional `(x, y)` held-out data, passed to every converter
            as `labelled_data`: its accuracy gate, the range the float parity
            check's random inputs are drawn in (`export.verify.random_batch`)
            and, for quantised modes, the real inputs of the top-1 agreement
            check (never the calibration data).
    """
    if fmt == "savedmodel":
        from export.to_savedmodel import export_savedmodel

        result = export_savedmodel(model, path, overwrite=True, labelled_data=labelled)
    elif fmt == "tflite":
        from export.to_tflite import export_tflite

        result = export_tflite(
            model,
            path,
            quantize=quantize,
            overwrite=True,
            representative_data=representative if quantize == "int8" else None,
            labelled_data=labelled,
        )
    elif fmt == "onnx" and quantize == "int8":
        from export.quantize_onnx import export_onnx_int8

        result = export_onnx_int8(
            model, path, representative, overwrite=True, labelled_data=labelled
        )
    elif fmt == "onnx":
        from export.to_onnx import export_onnx

        result = export_onnx(model, path, overwrite=True, labelled_data=labelled)
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(f"cannot export format {fmt!r}")
    return {
        "sidecar_path": result.sidecar_path,
        "parity": result.sidecar.get("parity"),
        "options": result.sidecar.get("options"),
        "versions": result.sidecar.get("versions"),
        "sidecar_sha256": file_digest(result.sidecar_path),
    }


def artifact_path(directory, model_name, fmt, quantize="none"):
    """Where `build_report` writes the artifact of `model_name` in `fmt`."""
    suffix = "" if quantize == "none" else f"_{quantize}"
    return os.path.join(
        directory,
        {
            "savedmodel": f"{model_name}_savedmodel",
            "tflite": f"{model_name}{suffix}.tflite",
            "onnx": f"{model_name}{suffix}.onnx",
            "numpy": f"{model_name}_dense_layers.npz",
        }[fmt],
    )


def int8_misses(entry, budget):
    """Whether an int8 variant failed its parity check or misses the accuracy limits.

    Judged on the converter's own verification on the held-out data (the sidecar's
    `accuracy`), before anything is measured: `min_accuracy`, and `max_accuracy_drop`
    against its own Keras model.
    """
    if entry.get("rejected"):
        return True
    accuracy = ((entry.get("export") or {}).get("parity") or {}).get("accuracy")
    if entry.get("error") or budget is None or not accuracy:
        return False
    if "min_accuracy" in budget and not accuracy["exported"] >= budget["min_accuracy"]:
        return True
    drop = accuracy["keras"] - accuracy["exported"]
    return "max_accuracy_drop" in budget and not drop <= budget["max_accuracy_drop"]


def selective_entry(int8_entry, model, artifacts, calibration, labelled, budget=None):
    """Per-layer quantisation error of an int8 variant, and its float fallback.

    Sets `int8_entry["layer_errors"]` (worst first, `export.report.layer_errors`)
    and returns the entry of `tflite_int8_selective`: int8 with the fewest layers
    kept in float that pass the converter's checks and, with a `budget`, its
    accuracy limits (`int8_misses`) -- the search of `export.to_tflite
    --float-fallback=auto` (`export.float_fallback`), verified like every
    variant; its sidecar records the layers and their size and latency cost.
    """
    from export import float_fallback
    from export.report import layer_errors
    from export.verify import ParityError

    name = int8_entry["model"]
    entry = {
        "model": name,
        "format": "tflite",
        "error": None,
        "export": None,
        "role": int8_entry["role"],
        "variant": "tflite_int8_selective",
        "quantize": "int8",
    }
    entry["lineage"] = dict(int8_entry["lineage"])

    def within_budget(report):
        return not int8_misses({"error": None, "export": {"parity": report}}, budget)

    try:
        int8_entry["layer_errors"] = layer_errors.layer_quantization_errors(
            model, calibration["inputs"]
        )
        entry["artifact"] = os.path.join(artifacts, f"{name}_int8_selective.tflite")
        result = float_fallback.export_with_fallback(
            model,
            entry["artifact"],
            calibration["inputs"],
            options={"selective": True},
            overwrite=True,
            labelled_data=labelled,
            accept=within_budget if budget is not None else None,
        )
        entry["export"] = {
            "sidecar_path": result.sidecar_path,
            "parity": result.sidecar.get("parity"),
            "options": result.sidecar.get("options"),
            "versions": result.sidecar.get("versions"),
            "sidecar_sha256": file_digest(result.sidecar_path),
        }
        record = result.sidecar["options"]["float_fallback"]
        entry["float_fallback"] = record
        entry["lineage"]["converter"] += " + QuantizationDebugger(denylisted_nodes)"
        entry["lineage"]["settings"] = dict(
            entry["lineage"]["settings"],
            float_layers=record["float_layers"],
            float_fallback=float_fallback.SEARCH,
        )
        entry["sha256"] = file_digest(entry["artifact"])
    except ParityError as error:
        entry.update(
            error=f"ParityError: {loading.error_summary(error)}", rejected=True
        )
    except Exception as error:  # Recorded in the report; exit status 1.
        entry["error"] = f"{type(error).__name__}: {loading.error_summary(error)}"
    return entry


def lineage(name, fmt, quantize, source, export, calibration):
    """Where a variant comes from: source model, converter, quantisation, data."""
    options = (export or {}).get("options") or {}
    versions = (export or {}).get("versions") or {}
    converter = CONVERTERS[fmt]
    if fmt == "onnx" and quantize == "int8":
        converter += (
            " + onnxruntime.quantization.quantize_static (export.quantize_onnx)"
        )
    tool_versions = {
        k: versions.get(k)
        for k in ("tensorflow", "tf2onnx", "onnxruntime", "litert")
        if versions.get(k)
    }
    settings = {
        k: v
        for k, v in options.items()
        if k not in ("representative_data", "providers", "delegate")
    }
    int8 = quantize == "int8" and calibration is not None
    return {
        "source_model": source,
        "model": name,
        "converter": converter,
        "versions": tool_versions,
        "quantize": quantize,
        "settings": settings,
        "calibration_data": calibration["source"] if int8 else None,
        "calibration_samples": calibration["samples"] if int8 else None,
        "calibration_digest": calibration["digest"] if int8 else None,
        "threads": None,
    }


def exported_entry(
    name,
    fmt,
    model,
    source,
    artifacts,
    quantize="none",
    calibration=None,
    labelled=None,
):
    """Exports `model` to `fmt` (verified); returns its report entry, `artifact` set.

    A quantised variant that fails its parity check is `rejected` (reported, never
    measured, not a failure of the report).
    """
    from export.verify import ParityError

    entry = {"model": name, "format": fmt, "error": None, "export": None}
    entry["lineage"] = lineage(name, fmt, quantize, source, None, calibration)
    if fmt == "keras" and os.path.isdir(source):
        entry.update(
            error="the model was given as a SavedModel, not a .keras file",
            not_applicable=True,
        )
        return entry
    try:
        if fmt == "keras":
            entry["artifact"] = source
        elif fmt == "numpy":
            try:
                layers = measure.dense_layers(model)
            except ValueError as error:
                entry.update(error=loading.error_summary(error), not_applicable=True)
                return entry
            entry["artifact"] = measure.save_dense_layers(
                layers, artifact_path(artifacts, name, fmt)
            )
        else:
            entry["artifact"] = artifact_path(artifacts, name, fmt, quantize)
            entry["export"] = export_verified(
                model,
                fmt,
                entry["artifact"],
                quantize,
                representative=None if calibration is None else calibration["inputs"],
                labelled=labelled,
            )
            entry["lineage"] = lineage(
                name, fmt, quantize, source, entry["export"], calibration
            )
        entry["sha256"] = file_digest(entry["artifact"])
    except ParityError as error:
        entry["error"] = f"ParityError: {loading.error_summary(error)}"
        entry["rejected"] = quantize != "none"
    except Exception as error:  # Recorded in the report; exit status 1.
        entry["error"] = f"{type(error).__name__}: {loading.error_summary(error)}"
    return entry
