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
from export.report.compare import add_floor_ratios
from export.report.compare import add_pareto
from export.report.compare import best_fp32
from export.report.compare import held_out_parity
from export.report.compare import ratios
from export.report.variants import VARIANTS
from export.report.variants import candidate_names
from export.report.variants import check_data_shapes
from export.report.variants import data_digest
from export.report.variants import exported_entry
from export.report.variants import int8_misses
from export.report.variants import selective_entry

FORMATS = ("keras", "savedmodel", "tflite", "onnx")
MODELS = ("teacher", "student")
SCHEMA_VERSION = 2


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

        calibration_inputs = representative[0]
        if isinstance(calibration_inputs, dict):  # Several inputs, by name.
            first = next(iter(calibration_inputs.values()))
            head = {
                k: v[:MAX_CALIBRATION_SAMPLES] for k, v in calibration_inputs.items()
            }
        else:
            calibration_inputs = np.ascontiguousarray(calibration_inputs, np.float32)
            first = head = calibration_inputs[:MAX_CALIBRATION_SAMPLES]
        calibration = {
            "inputs": calibration_inputs,
            "source": representative[1],
            "samples": int(min(len(first), MAX_CALIBRATION_SAMPLES)),
            "digest": data_digest(head),
        }
    artifacts = os.path.join(output_dir, "artifacts")
    try:
        os.makedirs(artifacts, exist_ok=True)
    except OSError as error:
        raise ValueError(
            "`--output-dir` must be a folder that can be created and written. "
            f"Received: --output-dir={output_dir} ({error.strerror})"
        ) from None
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
                    budget=budget,
                )
            )
    # The converters' child (one TensorFlow import for every conversion) is not
    # needed any more: its memory is freed before anything is measured.
    pipeline.stop_isolated()
    # Every runtime of every model in one interleaved measurement, so that the
    # student/teacher and floor ratios are taken under the same machine conditions.
    specs = {name: loading.input_spec(model) for name, model in models.items()}
    jobs, owners, job_specs = [], [], []
    for entry in results:
        if entry.get("error"):
            continue
        fmt = entry["format"]
        spec = specs[entry["model"]]
        counts = measure.thread_counts(threads) if fmt in searched else [threads]
        for count in counts:
            options = dict((runtime_options or {}).get(fmt) or {})
            if fmt == "keras" and unsafe:
                options["unsafe"] = True
            if len(spec.output_names) > 1 and fmt != "numpy":
                options["output"] = spec.output_names[0]  # The logits.
            job_specs.append(spec)
            # One accuracy pass per file: the first thread count's run gives it
            # (`best_of_threads` takes accuracy and outputs from the first run).
            jobs.append((entry["artifact"], fmt, count, options, count == counts[0]))
            owners.append(entry)
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
            input_spec=job_specs,
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

                references[name] = runtimes.keras_reference(models[name]).predict(x)
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
