"""Shared absl plumbing for the `python -m export.to_*` command-line tools.

Every tool takes one positional MODEL (a `.keras` file or a SavedModel
directory) and these common flags (defined by `define_common_flags`, called
from each tool's `main`, never at import, so importing the Python API does
not touch absl's global flags):

    --output PATH          destination (tool-specific default)
    --overwrite            replace an existing destination
    --unsafe               load .keras with safe_mode=False (Lambda layers)
    --labelled-data PATH   .npz with x, y: report and gate accuracy
    --seed N               seed of the random parity inputs
    --measure              after export, run export.measure on the artifact
    --verbose              show converter logs and full tracebacks

Errors print ONE line, `<tool>: error: <what is wrong>`, on stderr and exit
with status 1 (2 for command-line usage errors), without a traceback unless
`--verbose`. The converters' native (C++) logging is captured and dropped
unless `--verbose`, so stderr holds only that line and our warnings.
"""

import contextlib
import os
import sys
import tempfile
import warnings

from absl import app
from absl import flags

FLAGS = flags.FLAGS
USAGE_EXIT_CODE = 2
ERROR_EXIT_CODE = 1
# Exceptions whose message already says what is wrong; others get their type.
EXPECTED_ERRORS = (ValueError, TypeError, OSError)


def define_common_flags(output_help):
    """Defines the flags shared by all export tools (see module docstring)."""
    flags.DEFINE_string("output", None, output_help)
    flags.DEFINE_boolean(
        "overwrite", False, "Replace the output if it already exists."
    )
    flags.DEFINE_boolean(
        "unsafe",
        False,
        "Load .keras files with safe_mode=False, allowing Lambda layers "
        "(arbitrary code). Only for files you trust.",
    )
    flags.DEFINE_string(
        "labelled-data",
        None,
        ".npz with arrays x (inputs) and y (labels): accuracy of Keras and "
        "of the export are reported, and the export may lose at most 1 point.",
    )
    flags.DEFINE_integer("seed", 0, "Seed of the random parity inputs.")
    flags.DEFINE_boolean(
        "measure",
        False,
        "After exporting, measure size/latency with export.measure "
        "(batch sizes 1 and 64).",
    )
    flags.DEFINE_boolean(
        "verbose",
        False,
        "Show converter logs and full tracebacks on errors.",
    )


def flag_value(name):
    """Value of a flag by its command-line name (dashes allowed)."""
    return FLAGS[name].value


def one_line(error):
    """A one-line description of an exception."""
    from export.loading import error_summary

    text = error_summary(error)
    if isinstance(error, KeyError) and text.startswith(("'", '"')):
        text = text[1:-1]
    if isinstance(error, EXPECTED_ERRORS + (flags.Error,)) or not str(error).strip():
        return text
    return f"{type(error).__name__}: {text}"


def fail(program, message, code=ERROR_EXIT_CODE):
    """Prints `<program>: error: <message>` on stderr and exits."""
    sys.stderr.write(f"{program}: error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


@contextlib.contextmanager
def captured_native_stderr():
    """Redirects file descriptor 2 (Python and C++ writers) to a temp file.

    Yields the temp file; its content is discarded when the block ends.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield sink
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _parse_flags(program):
    def parse(argv):
        try:
            return FLAGS(argv)
        except flags.Error as error:
            fail(program, one_line(error), USAGE_EXIT_CODE)

    return parse


def run(program, export_fn, argv=None):
    """Runs an export tool under absl with one-line errors.

    Args:
        program: Name shown in messages, e.g. `"export.to_onnx"`.
        export_fn: `export_fn(model_path) -> export.pipeline.ExportResult`,
            reading the tool's flags from `FLAGS`.
        argv: Command line (defaults to `sys.argv`).
    """

    def main(argv):
        arguments = argv[1:]
        if len(arguments) != 1:
            fail(
                program,
                "expected exactly one MODEL argument (a .keras file or a "
                f"SavedModel directory), got {len(arguments)}",
                USAGE_EXIT_CODE,
            )
        result = _guarded(program, lambda: export_fn(arguments[0]))
        print(result.summary, flush=True)
        if flag_value("measure"):
            _guarded(program, lambda: _measure(result))

    app.run(main, argv=argv, flags_parser=_parse_flags(program))


def _guarded(program, body):
    """Runs `body()`; in non-verbose mode, silences native logs, one-line errors."""
    if flag_value("verbose"):
        return body()
    from export.loading import UnsafeLoadWarning

    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnsafeLoadWarning)
        with captured_native_stderr():
            try:
                value = body()
            except Exception as exception:  # Reported as one line below.
                error = exception
    for warning in caught:
        if issubclass(warning.category, UnsafeLoadWarning):
            sys.stderr.write(f"{program}: warning: {warning.message}\n")
    if error is not None:
        fail(program, one_line(error))
    return value


def _measure(result):
    from export import measure  # Optional stage, imported only when asked.

    measured = measure.measure_artifact(
        result.path, result.sidecar["format"], batch_sizes=(1, 64)
    )
    print(measure.summarize(measured), flush=True)
    return measured
