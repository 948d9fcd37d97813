"""Build the report: export teacher and student, measure every runtime, compare.

`build_report` exports both models to each format (through `export.to_savedmodel`,
`export.to_tflite`, `export.to_onnx`, which verify parity before anything lands),
measures every artifact in its own subprocess with `export.measure` (all of them
in one interleaved run), adds the NumPy floor (a float32 NumPy forward pass of
the same weights, for dense networks), and returns the report dict that
`export.report.render` turns into Markdown, HTML and JSON. Every figure has its
student/teacher ratio.

Several candidate students may be given; each is exported to `formats` and to
the quantised `VARIANTS` asked for (TFLite float16 / dynamic-range / int8, ONNX
int8 from `export.quantize_onnx`), each verified by its converter before it is
measured. Every variant, the teacher's runtimes and the NumPy floors are timed
in the same interleaved rounds. Per variant the report holds its parity with
Keras on the held-out labelled inputs (max abs diff, top-1 agreement), load and
first-inference time, the latency distribution with a validity line per batch
size, its lineage, and whether it is on a Pareto front; with a budget, the
release is chosen (`export.report.choose`).
"""

import datetime
import hashlib
import os
import time

import numpy as np

from export import cli
from export import loading
from export import measure
from export import pipeline
from export.measure import environment
from export.measure import timing as timing_lib
from export.measure import worker
from export.report import budgets
from export.report import choose

FORMATS = ("keras", "savedmodel", "tflite", "onnx")
MODELS = ("teacher", "student")
SCHEMA_VERSION = 2
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
    the runtimes reshape each batch (a flat 784 input takes 28x28x1 images).
    """
    example = tuple(x.shape[1:])
    for name, model in models.items():
        shape, _ = loading.input_signature(model)
        wanted = tuple(shape[1:])
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
    """SHA-256 (first 16 hex digits) of float32 data and its shape."""
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
        representative: float32 calibration inputs (int8).
        labelled: Optional `(x, y)` held-out data, passed to the converter as
            `labelled_data`: its accuracy gate and, for quantised modes, the real
            inputs of the top-1 agreement check (never the calibration data).
    """
    if fmt == "savedmodel":
        from export.to_savedmodel import export_savedmodel

        result = export_savedmodel(model, path, overwrite=True)
    elif fmt == "tflite":
        from export.to_tflite import export_tflite

        result = export_tflite(
            model,
            path,
            quantize=quantize,
            overwrite=True,
            representative_data=representative if quantize == "int8" else None,
            labelled_data=labelled if quantize != "none" else None,
        )
    elif fmt == "onnx" and quantize == "int8":
        from export.quantize_onnx import export_onnx_int8

        result = export_onnx_int8(
            model, path, representative, overwrite=True, labelled_data=labelled
        )
    elif fmt == "onnx":
        from export.to_onnx import export_onnx

        result = export_onnx(model, path, overwrite=True)
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(f"cannot export format {fmt!r}")
    return {
        "sidecar_path": result.sidecar_path,
        "parity": result.sidecar.get("parity"),
        "options": result.sidecar.get("options"),
        "versions": result.sidecar.get("versions"),
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


def build_report(
    teacher_path,
    student_path,
    output_dir,
    formats=FORMATS,
    batch_sizes=(1, 64),
    labelled=None,
    budget=None,
    threads=None,
    timing=None,
    progress=True,
    command=None,
    runtime_options=None,
    search_threads=("tflite", "onnx"),
    variants=(),
    representative=None,
    unsafe=False,
):
    """Exports and measures the teacher and the candidate students; returns the report.

    Args:
        teacher_path: `.keras` file (or SavedModel directory) of the teacher.
        student_path: `.keras` file (or SavedModel directory) of the student, or a
            list of them (candidate students, each with every variant).
        output_dir: Folder for the exported artifacts (`artifacts/`); created here,
            after every input was checked.
        formats: Subset of `FORMATS` to export and measure (float32).
        batch_sizes: Batch sizes to time.
        labelled: Optional `(x, y, source)` for test-set accuracy and held-out parity.
        budget: Optional budget from `export.budgets.load_budget`.
        threads: Threads per runtime; None: all available cores.
        timing: Optional dict of `export.measure.measure_artifacts` timing keywords
            (`min_time_s`, `min_iterations`, `max_time_s`, `warmup_s`, `rounds`).
        progress: Show a progress bar on stderr.
        command: The command line, recorded for reproduction.
        runtime_options: Optional `{format: options}` passed to `measure_artifact`
            (e.g. `{"onnx": {"allow_spinning": False}}`).
        search_threads: Formats measured with 1 and with `threads` threads, keeping the
            faster per batch size (`export.measure.best_of_threads`). The NumPy
            floor is always searched. TensorFlow formats are left out by default: each
            extra process pays TensorFlow's import (seconds).
        variants: Names of `VARIANTS` built for each student.
        representative: `(x, source)` calibration inputs of the int8 variants.
        unsafe: Load `.keras` files with `safe_mode=False` (Lambda layers), as the
            `to_*` tools' `unsafe`.

    Returns:
        The report dict (see `report.json`); `samples_ms` stay in each result for the
        plots and are dropped from the JSON file.

    Raises:
        DataShapeError: the labelled or calibration data does not fit a model
            (before any export).
        ValueError: an int8 variant without calibration data.
    """
    started = time.perf_counter()
    threads = measure.available_threads() if threads is None else int(threads)
    machine = environment.describe_machine(threads)  # the load average at the start
    timing = dict(timing or {})
    students = (
        [student_path]
        if isinstance(student_path, (str, os.PathLike))
        else list(student_path)
    )
    names = candidate_names(students)
    sources = {"teacher": teacher_path, **dict(zip(names, students, strict=True))}
    roles = {name: ("teacher" if name == "teacher" else "student") for name in sources}
    variants = list(variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(
            f"`variants` must be among {', '.join(VARIANTS)}. Received: {unknown}"
        )
    models = {
        name: loading.load_model(path, unsafe=unsafe) for name, path in sources.items()
    }
    x, y = (labelled[0], labelled[1]) if labelled else (None, None)
    # Every input is checked against every model before any work.
    if labelled:
        check_data_shapes(models, x, "--labelled-data", labelled[2])
    calibration = None
    if any(VARIANTS[v][1] == "int8" for v in variants):
        if representative is None:
            raise ValueError(
                "`--representative-data` must be given for int8 variants (calibration "
                "inputs: .npy/.npz or fashion-mnist:N). Received: none"
            )
        student_models = {n: m for n, m in models.items() if roles[n] == "student"}
        check_data_shapes(
            student_models,
            representative[0],
            "--representative-data",
            representative[1],
        )
        from export.to_tflite import MAX_CALIBRATION_SAMPLES

        calibration = {
            "inputs": np.ascontiguousarray(representative[0], np.float32),
            "source": representative[1],
            "samples": int(min(len(representative[0]), MAX_CALIBRATION_SAMPLES)),
            "digest": data_digest(representative[0][:MAX_CALIBRATION_SAMPLES]),
        }
    artifacts = os.path.join(output_dir, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    plan = []
    for name in sources:
        plan += [(name, fmt, "none", fmt) for fmt in formats]
        if roles[name] == "student":
            plan += [(name, VARIANTS[v][0], VARIANTS[v][1], v) for v in variants]
        plan.append((name, "numpy", "none", "numpy"))
    exports = len(plan)
    settings_of_timing = timing_settings(timing)
    searched = set(search_threads) | {
        "numpy"
    }  # the floor is the reference: always searched
    bar = (
        cli.Progress(exports) if progress else None
    )  # the measurement's steps are added below
    results = []
    for name, fmt, quantize, variant in plan:
        if bar:
            bar.step(f"{name} {variant}: exporting")
        entry = exported_entry(
            name,
            fmt,
            models[name],
            sources[name],
            artifacts,
            quantize=quantize,
            calibration=calibration,
            labelled=(x, y) if labelled else None,
        )
        entry.update(role=roles[name], variant=variant, quantize=quantize)
        results.append(entry)
        if bar:
            bar.advance()
        if variant == "tflite_int8" and int8_misses(entry, budget):
            if bar:
                bar.step(f"{name} tflite_int8: per-layer quantisation error")
            results.append(
                selective_entry(
                    entry,
                    models[name],
                    artifacts,
                    calibration,
                    (x, y) if labelled else None,
                )
            )
    # The converters' child (one TensorFlow import for every conversion) is not
    # needed any more: its memory is freed before anything is measured.
    pipeline.stop_isolated()
    # Every runtime of every model in one interleaved measurement, so that the
    # student/teacher and floor ratios are taken under the same machine conditions.
    jobs, owners, evaluate = [], [], []
    for entry in results:
        if entry.get("error"):
            continue
        fmt = entry["format"]
        counts = measure.thread_counts(threads) if fmt in searched else [threads]
        for count in counts:
            options = dict((runtime_options or {}).get(fmt) or {})
            if fmt == "keras" and unsafe:
                options["unsafe"] = True
            jobs.append((entry["artifact"], fmt, count, options))
            owners.append(entry)
            # One accuracy pass per file: the first thread count's run gives it
            # (`best_of_threads` takes accuracy and outputs from the first run).
            evaluate.append(count == counts[0])
    if bar:  # loading the runtimes, the timing rounds, one finish per process
        bar.total = exports + 1 + settings_of_timing["rounds"] + len(jobs)
    outcomes = []
    if jobs:
        outcomes = measure.measure_artifacts(
            jobs,
            batch_sizes,
            x=x,
            y=y,
            on_step=(bar.next_step if bar else None),
            return_outputs=labelled is not None,
            evaluate=evaluate,
            **timing,
        )
    references = {}
    for entry in results:
        runs = [
            outcome
            for owner, outcome in zip(owners, outcomes, strict=True)
            if owner is entry
        ]
        if not runs:
            continue
        failed = [run for run in runs if isinstance(run, Exception)]
        if failed:
            entry["error"] = (
                f"{type(failed[0]).__name__}: {loading.error_summary(failed[0])}"
            )
            continue
        outputs = [run.pop("outputs", None) for run in runs][0]
        artifact = entry["artifact"]
        entry.update(
            measure.best_of_threads(runs) if entry["format"] in searched else runs[0]
        )
        entry["artifact"] = artifact
        entry["lineage"]["threads"] = entry["latency"][str(batch_sizes[0])].get(
            "threads", entry["threads"]
        )
        if outputs is not None:
            name = entry["model"]
            if name not in references:
                from export import runtimes

                references[name] = runtimes.KerasRuntime(models[name]).predict(x)
            entry["parity"] = held_out_parity(outputs, references[name], labelled[2])
    if bar:
        bar.finish()
    add_floor_ratios(results, batch_sizes)
    add_pareto(results, batch_sizes)
    report = {
        "schema_version": SCHEMA_VERSION,
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(
            timespec="seconds"
        ),
        "command": command,
        "environment": machine,
        "settings": {
            "formats": list(formats),
            "variants": variants,
            "batch_sizes": [int(b) for b in batch_sizes],
            "threads": threads,
            "runtime_options": dict(runtime_options or {}),
            "thread_search": sorted(searched),
            "timing": settings_of_timing,
            "unsafe": bool(unsafe),
        },
        "data": {
            "source": labelled[2] if labelled else None,
            "examples": int(len(labelled[1])) if labelled else 0,
            "digest": data_digest(x) if labelled else None,
            "calibration": None
            if calibration is None
            else {k: calibration[k] for k in ("source", "samples", "digest")},
        },
        "models": {
            name: {
                "path": sources[name],
                "role": roles[name],
                "parameters": int(models[name].count_params()),
            }
            for name in sources
        },
        "results": results,
        "ratios": ratios(results, formats, batch_sizes),
        "best_fp32": best_fp32(results, batch_sizes),
        "budget": None,
        "release": None,
    }
    if budget is not None:
        violations = budgets.check_budget(budget, results)
        report["budget"] = {
            "limits": [list(row) for row in budgets.describe(budget)],
            "violations": violations,
            "passed": not violations,
        }
        report["release"] = choose.choose_release(budget, results)
    report["environment"]["load_average_end"] = list(os.getloadavg())
    report["wall_time_s"] = time.perf_counter() - started
    return report


# Layers kept in float by the selective int8 variant: the worst by quantisation error.
SELECTIVE_FLOAT_LAYERS = 2


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


def selective_entry(int8_entry, model, artifacts, calibration, labelled):
    """Per-layer quantisation error of an int8 variant, and the selective variant.

    Sets `int8_entry["layer_errors"]` (worst first, `export.report.layer_errors`) and
    returns the entry of `tflite_int8_selective`: int8 with the worst
    `SELECTIVE_FLOAT_LAYERS` layers kept in float, verified like every variant.
    """
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
    try:
        errors = layer_errors.layer_quantization_errors(model, calibration["inputs"])
        int8_entry["layer_errors"] = errors
        float_layers = [row["layer"] for row in errors[:SELECTIVE_FLOAT_LAYERS]]
        entry["artifact"] = os.path.join(artifacts, f"{name}_int8_selective.tflite")
        result = layer_errors.export_selective_int8(
            model,
            entry["artifact"],
            calibration["inputs"],
            float_layers,
            labelled_data=labelled,
        )
        entry["export"] = {
            "sidecar_path": result.sidecar_path,
            "parity": result.sidecar.get("parity"),
            "options": result.sidecar.get("options"),
            "versions": result.sidecar.get("versions"),
        }
        entry["lineage"]["converter"] += " + QuantizationDebugger(denylisted_nodes)"
        entry["lineage"]["settings"] = dict(
            entry["lineage"]["settings"], float_layers=float_layers
        )
        entry["sha256"] = choose.file_digest(entry["artifact"])
    except ParityError as error:
        entry.update(
            error=f"ParityError: {loading.error_summary(error)}", rejected=True
        )
    except Exception as error:  # Recorded in the report; exit status 1.
        entry["error"] = f"{type(error).__name__}: {loading.error_summary(error)}"
    return entry


def held_out_parity(outputs, reference, source):
    """Max abs diff and top-1 agreement of a runtime's outputs with Keras'."""
    outputs = np.asarray(outputs, np.float64).reshape(len(reference), -1)
    reference = np.asarray(reference, np.float64).reshape(len(reference), -1)
    finite = bool(np.all(np.isfinite(outputs)))
    return {
        "inputs": source,
        "examples": int(len(reference)),
        "max_abs_diff": float(np.max(np.abs(outputs - reference)))
        if finite
        else float("inf"),
        "top1_agreement": float(np.mean(outputs.argmax(1) == reference.argmax(1))),
        "reference": "Keras tf.function(model(x, training=False)) in the report's process",
    }


def add_pareto(results, batch_sizes):
    """Sets `pareto` on each measured entry: the fronts it is on.

    Fronts: accuracy (maximised) against p99 latency at each batch size, and against
    size on disk; every measured runtime but the NumPy floor takes part.
    """
    points, entries = [], []
    for entry in results:
        if not measured(entry) or entry["format"] == "numpy":
            continue
        accuracy = entry.get("accuracy")
        point = {
            "loss": None if accuracy is None else -accuracy,
            "size": entry.get("size_bytes"),
        }
        for b in batch_sizes:
            point[f"p99@{b}"] = entry["latency"][str(b)]["p99_ms"]
        points.append(point)
        entries.append(entry)
    fronts = {f"p99_ms@{b}": ("loss", f"p99@{b}") for b in batch_sizes}
    fronts["size_mb"] = ("loss", "size")
    for entry in entries:
        entry["pareto"] = []
    for front, keys in fronts.items():
        for entry, on in zip(entries, choose.pareto_front(points, keys), strict=True):
            if on:
                entry["pareto"].append(front)


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
        entry["sha256"] = choose.file_digest(entry["artifact"])
    except ParityError as error:
        entry["error"] = f"ParityError: {loading.error_summary(error)}"
        entry["rejected"] = quantize != "none"
    except Exception as error:  # Recorded in the report; exit status 1.
        entry["error"] = f"{type(error).__name__}: {loading.error_summary(error)}"
    return entry


def timing_settings(timing):
    """The timing keywords of `measure_artifacts`, defaults filled in."""
    return {
        "min_time_s": timing.get("min_time_s", measure.DEFAULT_MIN_TIME_S),
        "min_iterations": timing.get("min_iterations", measure.DEFAULT_MIN_ITERATIONS),
        "max_time_s": timing.get("max_time_s", measure.DEFAULT_MAX_TIME_S),
        "warmup_s": timing.get("warmup_s", measure.DEFAULT_WARMUP_S),
        "rounds": timing.get("rounds", measure.DEFAULT_ROUNDS),
        "rewarm_s": min(
            timing.get("warmup_s", measure.DEFAULT_WARMUP_S), worker.REWARM_S
        ),
        "min_sample_s": timing_lib.MIN_SAMPLE_S,
    }


def measured(entry):
    """Whether a report entry holds figures (no error, latency measured)."""
    return not entry.get("error") and "latency" in entry


def add_floor_ratios(results, batch_sizes):
    """Sets each entry's `floor_ratio`: its p50 over its model's NumPy floor p50."""
    floors = {r["model"]: r for r in results if r["format"] == "numpy" and measured(r)}
    for entry in results:
        floor = floors.get(entry["model"])
        if not measured(entry) or floor is None:
            entry["floor_ratio"] = None
            continue
        entry["floor_ratio"] = {
            str(b): entry["latency"][str(b)]["p50_ms"]
            / floor["latency"][str(b)]["p50_ms"]
            for b in batch_sizes
        }


def ratio(student, teacher):
    """`student / teacher`, None when either is missing or the teacher is 0."""
    if student is None or teacher is None or teacher == 0:
        return None
    return student / teacher


def ratios(results, formats, batch_sizes):
    """Student/teacher ratio of every figure, per student and format (floor included)."""
    by_key = {
        (r["model"], r["format"]): r
        for r in results
        if r.get("quantize", "none") == "none"
    }
    students = []
    for r in results:
        if r.get("role", r["model"]) == "student" and r["model"] not in students:
            students.append(r["model"])
    rows = []
    for name in students:
        for fmt in tuple(formats) + ("numpy",):
            student, teacher = by_key.get((name, fmt)), by_key.get(("teacher", fmt))
            if (
                not student
                or not teacher
                or not measured(student)
                or not measured(teacher)
            ):
                continue
            row = {"model": name, "format": fmt}
            for field in (
                "parameters",
                "size_bytes",
                "gzip_bytes",
                "peak_rss_bytes",
                "accuracy",
            ):
                row[field] = ratio(student.get(field), teacher.get(field))
            row["latency"] = {
                str(b): {
                    key: ratio(
                        student["latency"][str(b)][key], teacher["latency"][str(b)][key]
                    )
                    for key in (
                        "p50_ms",
                        "p90_ms",
                        "p99_ms",
                        "max_ms",
                        "throughput_sps",
                    )
                }
                for b in batch_sizes
            }
            rows.append(row)
    return rows


def best_fp32(results, batch_sizes):
    """Per model and batch size: the fastest float runtime (p50) and its ratio to the floor."""
    best = {}
    names = []
    for r in results:
        if r["model"] not in names:
            names.append(r["model"])
    for name in names:
        floor = next(
            (
                r
                for r in results
                if r["model"] == name and r["format"] == "numpy" and measured(r)
            ),
            None,
        )
        candidates = [
            r
            for r in results
            if r["model"] == name
            and r["format"] != "numpy"
            and measured(r)
            and r.get("quantize", "none") == "none"
        ]
        per_batch = {}
        for b in batch_sizes:
            if not candidates:
                continue
            winner = min(candidates, key=lambda r: r["latency"][str(b)]["p50_ms"])
            p50 = winner["latency"][str(b)]["p50_ms"]
            floor_p50 = floor["latency"][str(b)]["p50_ms"] if floor else None
            per_batch[str(b)] = {
                "format": winner["format"],
                "p50_ms": p50,
                "floor_p50_ms": floor_p50,
                "floor_ratio": ratio(p50, floor_p50),
                "threads": winner["latency"][str(b)].get("threads", winner["threads"]),
                "runtime_settings": winner["runtime_settings"],
            }
        best[name] = per_batch
    return best
