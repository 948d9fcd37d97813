"""`python -m export.report`: teacher against student, in every format.

    python -m export.report --teacher teacher.keras --student student.keras \\
        [--student pruned.keras ...] [--variants all|tflite_int8,onnx_int8,...] \\
        [--representative-data fashion-mnist:500] [--release-dir release/] \\
        [--formats keras,savedmodel,tflite,onnx] [--batch-sizes 1,64] \\
        [--budget budget.yaml] [--output-dir report/] [--json-only] \\
        [--labelled-data test.npz] [--threads N] [--unsafe] \\
        [--import my_package.layers]

`--import` names the modules registering the user's own Keras classes
(`@keras.saving.register_keras_serializable`): imported before any `.keras`
file is loaded, in this process and in every measurement process that loads
one. Module names only, never file paths.

Writes `report.md`, `report.json` and `report.html` (latency distributions,
accuracy against p99 latency and size with the Pareto fronts, PNGs embedded)
into `--output-dir`; see `export.report.build` for what is measured. Each
`--student` is a candidate; `--variants` adds its quantised variants.

With `--release-dir` (or a budget that sets `minimise`), the budget selects:
the best variant meeting every limit is the release, copied with its sidecar
to `--release-dir` with `release.json` (`export.report.choose`).

Exit status (`export.cli`): 0 every budget met (selecting: a variant meets
it); 1 a budget was violated (selecting: no variant meets it, each one's
shortfall listed on stderr), or an export or a measurement of a student
failed (the report is still written, with the error in place of the
figures); a quantised variant that fails its parity check is reported as
rejected, not a failure. A teacher's format that fails does not sink the
report: every other format is measured, the failed one is marked with its
one-line reason, and it counts only when the student's verdict depends on it
(a budget gating the teacher, or `max_accuracy_drop` with no teacher figure
left to compare with: then the budget is violated).
2 bad input (a flag, an unreadable budget or data file, data that does not
fit a model), found before any export. Errors are one line on stderr, without
a traceback unless `--verbose`; on an error nothing is left in `--output-dir`
that this run created. `--release-dir` is checked with the other flags (a
new or empty real folder, apart from `--output-dir`); the release is written
after the report, so a release that fails then (exit 1, the error naming
`--release-dir`) leaves the report in place, saying why.
"""

import contextlib
import json
import os
import shlex
import shutil
import sys

import numpy as np
from absl import flags

from export import cli
from export import loading
from export import measure
from export.report import budgets
from export.report import choose
from export.report.build import FORMATS
from export.report.build import build_report
from export.report.render import to_json
from export.report.render import write_report
from export.report.variants import VARIANTS
from kdutils import verbosity
from kdutils.echo import bounded

PROGRAM = "export.report"


def failures(report, role="student"):
    """Entries of `role` whose export or measurement failed (not n/a, not rejected).

    A teacher's format that fails does not sink the report: the student's verdict
    is decided on the student's formats. When it does depend on the teacher (a
    budget gating the teacher, or an accuracy drop with no teacher figure to
    compare with), the budget check reports it as a violation.
    """
    return [
        r
        for r in report["results"]
        if r.get("error")
        and not r.get("not_applicable")
        and not r.get("rejected")
        and r.get("role", r["model"]) == role
    ]


def exit_status(report, selecting=False):
    """0 ok; 1 a budget violated (selecting: nothing meets it) or a student failure."""
    if failures(report):
        return cli.EXIT_CHECK_FAILED
    if selecting and report.get("release") is not None:
        return cli.EXIT_OK if report["release"]["winner"] else cli.EXIT_CHECK_FAILED
    if report["budget"] and not report["budget"]["passed"]:
        return cli.EXIT_CHECK_FAILED
    return cli.EXIT_OK


def parse_variants(text):
    """`--variants` as distinct names of `VARIANTS` (`all`: every one)."""
    names = [part.strip() for part in text if part.strip()]
    if names == ["all"]:
        return list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or len(set(names)) != len(names):
        raise cli.UsageError(
            f"`--variants` must be distinct names from {','.join(VARIANTS)}, or all. "
            f"Received: --variants={bounded(','.join(text))}"
        )
    return names


def parse_batch_sizes(text):
    """`--batch-sizes` as distinct positive integers."""
    try:
        sizes = [int(part) for part in text]
    except (TypeError, ValueError):
        sizes = []
    if not sizes or any(s < 1 for s in sizes) or len(set(sizes)) != len(sizes):
        raise cli.UsageError(
            "`--batch-sizes` must be distinct positive integers, e.g. 1,64. "
            f"Received: --batch-sizes={bounded(','.join(text))}"
        )
    return sizes


def parse_formats(text):
    """`--formats` as distinct names of `FORMATS`."""
    formats = [part.strip() for part in text if part.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown or len(set(formats)) != len(formats):
        raise cli.UsageError(
            f"`--formats` must be distinct names from {','.join(FORMATS)}. "
            f"Received: --formats={bounded(','.join(text))}"
        )
    return formats


def parse_runtime_options(text):
    """`--runtime-options` JSON as `{format: {setting: value}}`."""
    if not text:
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as error:
        raise cli.UsageError(
            "`--runtime-options` must be JSON. "
            f"Received: {bounded(text, quote=True)} ({bounded(str(error))})"
        ) from None
    if not isinstance(options, dict) or not all(
        key in FORMATS and isinstance(value, dict) for key, value in options.items()
    ):
        raise cli.UsageError(
            "`--runtime-options` must map format names "
            f"({','.join(FORMATS)}) to objects of settings. Received: {bounded(text)}"
        )
    return options


def labelled_data(path, model_path, unsafe=False):
    """`(x, y, source)`: `--labelled-data`, else the Fashion-MNIST test set.

    For a model with several inputs `x` is a dict by input name (the `.npz`
    holds `x_<input name>` arrays and `y`).
    """
    if path:
        from export.inputs import load_labelled
        from export.loading import input_spec
        from export.loading import load_model

        try:
            spec = input_spec(load_model(model_path, unsafe=unsafe))
            x, y = load_labelled(path, spec)
        except (ValueError, OSError) as error:
            raise cli.UsageError(cli.one_line(error)) from None
        source = path
        y = np.asarray(y)
        if y.ndim == 2:  # One-hot.
            y = y.argmax(axis=1)
        if isinstance(x, dict):
            return x, y.astype(np.int64), source
    else:
        from models.data import load_fashion_mnist

        _, (x, y) = load_fashion_mnist()
        source = "Fashion-MNIST test set (models.data)"
    y = np.asarray(y)
    if y.ndim == 2:  # One-hot.
        y = y.argmax(axis=1)
    return np.asarray(x, np.float32), y.astype(np.int64), source


def representative_data(source, model_path, unsafe=False):
    """`(x, source)` calibration inputs of the int8 variants (`--representative-data`)."""
    from export.inputs import load_inputs
    from export.inputs import takes_fashion_mnist
    from export.loading import input_spec
    from export.loading import load_model

    try:
        spec = input_spec(load_model(model_path, unsafe=unsafe))
    except ValueError as error:
        raise cli.UsageError(cli.one_line(error)) from None
    if source is None:
        if not takes_fashion_mnist(spec):
            raise cli.UsageError(
                "`--representative-data` must be given for int8 variants of a model "
                f"whose input is {spec.describe()} (the default, "
                "fashion-mnist:500, is 28x28x1 images). Received: none"
            )
        source = DEFAULT_REPRESENTATIVE_DATA
    try:
        x = load_inputs(source, spec)
    except (ValueError, OSError) as error:
        raise cli.UsageError(cli.one_line(error)) from None
    if isinstance(x, dict):
        return x, source
    if not np.all(np.isfinite(x)):
        raise cli.UsageError(
            "`--representative-data` must hold finite inputs (no NaN or inf). "
            f"Received: --representative-data={bounded(source)}"
        )
    return x, source


DEFAULT_REPRESENTATIVE_DATA = "fashion-mnist:500"


def define_flags():
    """Defines the command-line flags on absl's global FLAGS."""
    flags.DEFINE_string(
        "teacher", None, "Teacher model: .keras file (or SavedModel directory)."
    )
    flags.DEFINE_multi_string(
        "student",
        None,
        "Student model: .keras file (or SavedModel directory). Repeat for several "
        "candidate students; each gets every format and --variants.",
    )
    flags.DEFINE_list(
        "variants",
        [],
        "Quantised variants of each student, from "
        f"{','.join(VARIANTS)}, or all (default: none).",
    )
    flags.DEFINE_string(
        "representative-data",
        None,
        "Calibration inputs of the int8 variants: .npy/.npz (several inputs: "
        "x_<input name> arrays) or fashion-mnist:N "
        f"(default {DEFAULT_REPRESENTATIVE_DATA} for 28x28x1 models).",
    )
    flags.DEFINE_string(
        "release-dir",
        None,
        "New folder receiving the variant the budget chooses, its sidecar and "
        "release.json; requires --budget.",
    )
    flags.DEFINE_boolean(
        "unsafe",
        False,
        "Load .keras files with safe_mode=False, allowing Lambda layers "
        "(arbitrary code). Only for files you trust.",
    )
    cli.define_import_flag()
    flags.DEFINE_list("formats", list(FORMATS), "Formats to export and measure.")
    flags.DEFINE_list("batch-sizes", ["1", "64"], "Batch sizes to time.")
    flags.DEFINE_string(
        "budget", None, "Budget file (.yaml/.yml/.json); violations exit 1."
    )
    flags.DEFINE_string(
        "output-dir", "report", "Folder for artifacts and report.{md,json,html}."
    )
    flags.DEFINE_boolean(
        "json-only",
        False,
        "Print only the JSON report on stdout (and write report.json).",
    )
    flags.DEFINE_string(
        "labelled-data",
        None,
        ".npz with x, y (several inputs: x_<input name> arrays and y) for accuracy "
        "(default: Fashion-MNIST test set).",
    )
    flags.DEFINE_integer(
        "threads", None, "Threads per runtime (default: all available cores)."
    )
    flags.DEFINE_float(
        "min-time",
        measure.DEFAULT_MIN_TIME_S,
        "Minimum seconds timed per batch size.",
    )
    flags.DEFINE_integer(
        "min-iterations",
        measure.DEFAULT_MIN_ITERATIONS,
        "Minimum timed calls per batch size.",
    )
    flags.DEFINE_integer(
        "rounds",
        measure.DEFAULT_ROUNDS,
        "Timing windows per runtime and batch size; every runtime's windows are "
        "interleaved with the others', so that all see the same machine "
        "conditions.",
    )
    flags.DEFINE_float(
        "max-time",
        measure.DEFAULT_MAX_TIME_S,
        "Maximum seconds timed per batch size (bounds slow calls).",
    )
    flags.DEFINE_string(
        "runtime-options",
        None,
        'JSON of per-format runtime settings, e.g. \'{"onnx": {"allow_spinning": '
        'false, "execution_mode": "sequential"}, "keras": {"jit_compile": true}}\'.',
    )
    flags.DEFINE_list(
        "search-threads",
        ["tflite", "onnx"],
        "Formats measured with 1 and with --threads threads, keeping the faster "
        "per batch size (the NumPy floor always is). Empty to disable.",
    )
    cli.define_verbose_flag()


def check_flags(value):
    """The checked settings of the command line (`cli.UsageError` otherwise)."""
    try:
        loading.parse_module_names(value("import"))
    except ValueError as error:
        raise cli.UsageError(str(error)) from None
    students = value("student") or [None]
    for name, path in [("teacher", value("teacher"))] + [
        ("student", p) for p in students
    ]:
        if not path or not os.path.exists(path):
            raise cli.UsageError(
                f"`--{name}` must be an existing .keras file or SavedModel "
                f"directory. Received: --{name}={bounded(path)}"
            )
    if len(set(map(os.path.abspath, students))) != len(students):
        raise cli.UsageError(
            "`--student` must name distinct models. "
            f"Received: --student={bounded(','.join(students))}"
        )
    threads = value("threads")
    if threads is not None and threads < 1:
        raise cli.UsageError(
            f"`--threads` must be a positive integer. Received: --threads={threads}"
        )
    if not value("min-time") > 0 or value("max-time") < value("min-time"):
        raise cli.UsageError(
            "`--min-time` must be > 0 and `--max-time` >= `--min-time`. Received: "
            f"--min-time={value('min-time')}, --max-time={value('max-time')}"
        )
    if value("rounds") < 1:
        raise cli.UsageError(
            f"`--rounds` must be >= 1. Received: --rounds={value('rounds')}"
        )
    search_threads = [f.strip() for f in value("search-threads") if f.strip()]
    if any(f not in FORMATS for f in search_threads):
        raise cli.UsageError(
            f"`--search-threads` must name formats from {','.join(FORMATS)}. "
            f"Received: --search-threads={bounded(','.join(search_threads))}"
        )
    formats = parse_formats(value("formats"))
    variants = parse_variants(value("variants"))
    batch_sizes = parse_batch_sizes(value("batch-sizes"))
    budget = None
    if value("budget"):
        try:
            budget = budgets.load_budget(value("budget"))
            budgets.check_requested(budget, formats, batch_sizes, variants)
        except budgets.BudgetError as error:
            raise cli.UsageError(str(error)) from None
    release_dir = value("release-dir")
    if release_dir:
        if budget is None:
            raise cli.UsageError(
                "`--release-dir` must come with --budget (the budget chooses the "
                f"release). Received: --release-dir={bounded(release_dir)} without --budget"
            )
        try:
            choose.check_release_dir(release_dir, value("output-dir"))
        except ValueError as error:
            raise cli.UsageError(str(error)) from None
    selecting = bool(release_dir) or bool(budget and budget.get("minimise"))
    output_dir = value("output-dir")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise cli.UsageError(
            "`--output-dir` must be a directory path. "
            f"Received: --output-dir={bounded(output_dir)} (an existing file)"
        )
    parent = os.path.dirname(os.path.abspath(output_dir))
    if not os.path.isdir(parent):
        raise cli.UsageError(
            "`--output-dir` must be in an existing folder. "
            f"Received: --output-dir={bounded(output_dir)} ({bounded(parent)} does "
            "not exist)"
        )
    return {
        "formats": formats,
        "variants": variants,
        "selecting": selecting,
        "batch_sizes": batch_sizes,
        "threads": threads,
        "runtime_options": parse_runtime_options(value("runtime-options")),
        "search_threads": search_threads,
        "budget": budget,
        "timing": {
            "min_time_s": value("min-time"),
            "min_iterations": value("min-iterations"),
            "max_time_s": value("max-time"),
            "rounds": value("rounds"),
        },
    }


def run(argv):
    """The report command; returns its exit status."""
    value = cli.flag_value
    settings = check_flags(value)
    selecting = settings.pop("selecting")
    teacher, students = value("teacher"), value("student")
    output_dir = value("output-dir")
    unsafe = value("unsafe")
    command = "python -m export.report " + shlex.join(argv[1:])
    if not value("verbose"):
        from absl import logging

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        logging.set_verbosity(logging.WARNING)
        # TensorFlow's start-up lines (CUDA probing on a CPU machine) are written
        # natively at import: dropped, so that an error stays one line.
        with verbosity.captured_native_stderr():
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
    # Everything the converters and runtimes print goes to stderr: stdout
    # carries only the JSON (with --json-only) or the list of files written.
    with cli.stdout_to_stderr():
        cli.import_modules_of_flag()  # Before any model is loaded.
        labelled = labelled_data(value("labelled-data"), students[0], unsafe)
        representative = None
        if any(VARIANTS[v][1] == "int8" for v in settings["variants"]):
            representative = representative_data(
                value("representative-data"), students[0], unsafe
            )
        with cleaned_up_on_error(output_dir):
            report = build_report(
                teacher,
                students if len(students) > 1 else students[0],
                output_dir,
                labelled=labelled,
                progress=True,
                command=command,
                representative=representative,
                unsafe=unsafe,
                **settings,
            )
            written = write_report(report, output_dir, json_only=value("json-only"))
        # After the report is in place: a release that fails now leaves it there.
        release_error = release_step(report, value("release-dir"))
        release = report.get("release") or {}
        if release.get("written") or release.get("error"):  # the report says so
            written = write_report(report, output_dir, json_only=value("json-only"))
    if value("json-only"):
        sys.stdout.write(to_json(report) + "\n")
    else:
        for path in written.values():
            sys.stdout.write(f"wrote {path}\n")
        if (report.get("release") or {}).get("written"):
            sys.stdout.write(f"wrote {report['release']['written']}\n")
    sys.stdout.flush()
    if report["budget"] and not selecting:
        for violation in report["budget"]["violations"]:
            cli.warn(PROGRAM, f"budget violated: {violation['message']}")
    if selecting and report.get("release"):
        release = report["release"]
        if release["winner"]:
            cli.warn(
                PROGRAM,
                f"release: {release['winner']['label']} "
                f"({release['objective']} {release['winner']['value']:.6g})",
            )
        else:
            cli.warn(PROGRAM, "no variant meets the budget:")
            for candidate in release["candidates"]:
                prefix = candidate["label"] + ": "
                shortfall = (
                    "; ".join(
                        v[len(prefix) :] if v.startswith(prefix) else v
                        for v in candidate["violations"]
                    )
                    or "objective not measured"
                )
                cli.warn(PROGRAM, f"  {candidate['label']}: {shortfall}")
    for entry in failures(report, role="teacher"):
        cli.warn(
            PROGRAM,
            f"teacher {entry.get('variant', entry['format'])} failed (measured "
            f"without it; the student's verdict does not depend on it unless the "
            f"budget says so): {entry['error']}",
        )
    if release_error:
        sys.stderr.write(f"{PROGRAM}: error: {release_error}\n")
        return cli.EXIT_CHECK_FAILED
    failed = failures(report)
    if failed:
        sys.stderr.write(
            f"{PROGRAM}: error: {len(failed)} export(s)/measurement(s) failed, "
            f"first: {failed[0]['model']} {failed[0].get('variant', failed[0]['format'])}: "
            f"{failed[0]['error']}\n"
        )
    return exit_status(report, selecting)


def release_step(report, release_dir):
    """Writes the release of `report` to `release_dir`, when it has a winner.

    Run once the report is written: a failure here (the artifact or its
    sidecar changed since it was measured, the folder taken meanwhile) is
    recorded in `report["release"]["error"]` and returned, and the report
    stays in place.

    Returns:
        None, or the one-line error (naming `--release-dir`).
    """
    release = report.get("release")
    if not (release and release["winner"] and release_dir):
        return None
    try:
        release["written"] = choose.write_release(report, release_dir)
    except (OSError, ValueError, RuntimeError) as error:
        release["error"] = (
            f"`--release-dir` was not written ({cli.one_line(error)}). "
            f"Received: --release-dir={bounded(release_dir)}; the report is kept"
        )
        return release["error"]
    return None


@contextlib.contextmanager
def cleaned_up_on_error(output_dir):
    """Removes what a failed run created in `output_dir` (the folder, or artifacts/)."""
    existed = os.path.exists(output_dir)
    artifacts = os.path.join(output_dir, "artifacts")
    artifacts_existed = os.path.exists(artifacts)
    try:
        yield
    except BaseException:
        if not existed:
            shutil.rmtree(output_dir, ignore_errors=True)
        elif not artifacts_existed:
            shutil.rmtree(artifacts, ignore_errors=True)
        raise


def main(argv=None):
    """Entry point of `python -m export.report` (flags defined here, not at import)."""
    if "teacher" not in flags.FLAGS:
        define_flags()
    argv = list(argv or sys.argv)
    cli.run_main(PROGRAM, lambda arguments: run(argv), argv)
