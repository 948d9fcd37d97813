"""export: ship a Keras model as SavedModel, TFLite or ONNX, verified first.

Every exporter writes beside its destination, checks the artifact against
the Keras model (`export.verify`), writes a JSON sidecar (`export.sidecar`)
and only then renames it into place (`export.staging`).

    from export import export_onnx, export_savedmodel, export_tflite

    export_savedmodel(model, "student_savedmodel")
    export_tflite(model, "student.tflite", quantize="int8",
                  representative_data="fashion-mnist:500")
    export_onnx(model, "student.onnx")

Names are resolved lazily, so `import export` (and the measurement workers
that live in this package) do not import TensorFlow.
"""

import importlib

_LAZY = {
    "export_savedmodel": "export.to_savedmodel",
    "export_tflite": "export.to_tflite",
    "export_onnx": "export.to_onnx",
    "export_onnx_int8": "export.quantize_onnx",
    "load_model": "export.loading",
    "input_spec": "export.loading",
    "InputSpec": "export.inputs",
    "ModelLoadError": "export.loading",
    "verify_artifact": "export.verify",
    "relative_error": "export.verify",
    "ParityError": "export.verify",
    "NonFiniteOutputError": "export.verify",
    "ExportResult": "export.pipeline",
    "OutputExistsError": "export.staging",
    "measure_artifact": "export.measure",
    "measure_artifacts": "export.measure",
    "Job": "export.measure",
    "measure_best_threads": "export.measure",
    "measure_floor": "export.measure",
    "summarize": "export.measure",
    "build_report": "export.report",
    "load_budget": "export.report",
    "check_budget": "export.report",
    "BudgetError": "export.report",
    "ConversionError": "export.pipeline",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
