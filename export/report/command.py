"""`python -m export.report`: teacher against student, in every format.

    python -m export.report --teacher teacher.keras --student student.keras \\
        [--formats keras,savedmodel,tflite,onnx] [--batch-sizes 1,64] \\
        [--budget budget.yaml] [--output-dir report/] [--json-only] \\
        [--labelled-data test.npz] [--threads N]

Writes `report.md`, `report.json` and `report.html` (latency distributions and
accuracy versus latency, PNGs embedded) into `--output-dir`; see
`export.report.build` for what is measured.

Exit status (`export.cli`): 0 every budget met; 1 a budget was violated, or an
export or a measurement failed (the report is still written, with the error
in place of the figures, and the violations are listed on stderr); 2 bad
input (a flag, an unreadable budget or data file). Errors are one line on
stderr, without a traceback unless `--verbose`.
"""

import json
import os
import shlex
import sys

import numpy as np
from absl import flags

from export import cli
from export import measure
from export.report import budgets
from export.report.build import FORMATS
from export.report.build import build_report
from export.report.render import to_json
from export.report.render import write_report

PROGRAM = "export.report"


def exit_status(report):
    """0 ok; 1 a budget violated or an export/measurement failed."""
    if any(r.get("error") and not r.get("not_applicable") for r in report["results"]):
        return cli.EXIT_CHECK_FAILED
    if report["budget"] and not report["budget"]["passed"]:
        return cli.EXIT_CHECK_FAILED
    return cli.EXIT_OK


def parse_batch_sizes(text):
    """`--batch-sizes` as distinct positive integers."""
    try:
        sizes = [int(part) for part in text]
    except (TypeError, ValueError):
        sizes = []
    if not sizes or any(s < 1 for s in sizes) or len(set(sizes)) != len(sizes):
        raise cli.UsageError(
            "`--batch-sizes` must be distinct positive integers, e.g. 1,64. "
            f"Received: --batch-sizes={','.join(text)}"
        )
    return sizes


def parse_formats(text):
    """`--formats` as distinct names of `FORMATS`."""
    formats = [part.strip() for part in text if part.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown or len(set(formats)) != len(formats):
        raise cli.UsageError(
            f"`--formats` must be distinct names from {','.join(FORMATS)}. "
            f"Received: --formats={','.join(text)}"
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
            f"`--runtime-options` must be JSON. Received: {text!r} ({error})"
        ) from None
    if not isinstance(options, dict) or not all(
        key in FORMATS and isinstance(value, dict) for key, value in options.items()
    ):
        raise cli.UsageError(
            "`--runtime-options` must map format names "
            f"({','.join(FORMATS)}) to objects of settings. Received: {text}"
        )
    return options


def labelled_data(path, model_path):
    """`(x, y, source)`: `--labelled-data`, else the Fashion-MNIST test set."""
    if path:
        from export.loading import input_signature
        from export.loading import load_model
        from export.verify import load_labelled

        input_shape, _ = input_signature(load_model(model_path))
        try:
            x, y = load_labelled(path, input_shape)
        except (ValueError, OSError) as error:
            raise cli.UsageError(cli.one_line(error)) from None
        source = path
    else:
        from models.data import load_fashion_mnist

        _, (x, y) = load_fashion_mnist()
        source = "Fashion-MNIST test set (models.data)"
    y = np.asarray(y)
    if y.ndim == 2:  # One-hot.
        y = y.argmax(axis=1)
    return np.asarray(x, np.float32), y.astype(np.int64), source


def define_flags():
    """Defines the command-line flags on absl's global FLAGS."""
    flags.DEFINE_string(
        "teacher", None, "Teacher model: .keras file (or SavedModel directory)."
    )
    flags.DEFINE_string(
        "student", None, "Student model: .keras file (or SavedModel directory)."
    )
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
        ".npz with x, y for accuracy (default: Fashion-MNIST test set).",
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
    for name in ("teacher", "student"):
        path = value(name)
        if not path or not os.path.exists(path):
            raise cli.UsageError(
                f"`--{name}` must be an existing .keras file or SavedModel "
                f"directory. Received: --{name}={path}"
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
            f"Received: --search-threads={','.join(search_threads)}"
        )
    formats = parse_formats(value("formats"))
    batch_sizes = parse_batch_sizes(value("batch-sizes"))
    budget = None
    if value("budget"):
        try:
            budget = budgets.load_budget(value("budget"))
            budgets.check_requested(budget, formats, batch_sizes)
        except budgets.BudgetError as error:
            raise cli.UsageError(str(error)) from None
    output_dir = value("output-dir")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise cli.UsageError(
            "`--output-dir` must be a directory path. "
            f"Received: --output-dir={output_dir} (an existing file)"
        )
    parent = os.path.dirname(os.path.abspath(output_dir))
    if not os.path.isdir(parent):
        raise cli.UsageError(
            "`--output-dir` must be in an existing folder. "
            f"Received: --output-dir={output_dir} ({parent} does not exist)"
        )
    return {
        "formats": formats,
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
    teacher, student = value("teacher"), value("student")
    output_dir = value("output-dir")
    command = "python -m export.report " + shlex.join(argv[1:])
    if not value("verbose"):
        from absl import logging

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        logging.set_verbosity(logging.WARNING)
    # Everything the converters and runtimes print goes to stderr: stdout
    # carries only the JSON (with --json-only) or the list of files written.
    with cli.stdout_to_stderr():
        labelled = labelled_data(value("labelled-data"), student)
        os.makedirs(output_dir, exist_ok=True)
        report = build_report(
            teacher,
            student,
            output_dir,
            labelled=labelled,
            progress=True,
            command=command,
            **settings,
        )
        written = write_report(report, output_dir, json_only=value("json-only"))
    if value("json-only"):
        sys.stdout.write(to_json(report) + "\n")
    else:
        for path in written.values():
            sys.stdout.write(f"wrote {path}\n")
    sys.stdout.flush()
    if report["budget"]:
        for violation in report["budget"]["violations"]:
            cli.warn(PROGRAM, f"budget violated: {violation['message']}")
    failed = [
        r for r in report["results"] if r.get("error") and not r.get("not_applicable")
    ]
    if failed:
        sys.stderr.write(
            f"{PROGRAM}: error: {len(failed)} export(s)/measurement(s) failed, "
            f"first: {failed[0]['model']} {failed[0]['format']}: "
            f"{failed[0]['error']}\n"
        )
    return exit_status(report)


def main(argv=None):
    """Entry point of `python -m export.report` (flags defined here, not at import)."""
    if "teacher" not in flags.FLAGS:
        define_flags()
    argv = list(argv or sys.argv)
    cli.run_main(PROGRAM, lambda arguments: run(argv), argv)
