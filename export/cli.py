"""The one command-line layer of every export tool.

`python -m export.to_savedmodel|to_tflite|to_onnx` take one positional MODEL
(a `.keras` file or a SavedModel directory) and the common flags below
(defined by `define_common_flags`, called from each tool's `main`, never at
import, so importing the Python API does not touch absl's global flags);
`python -m export.report` defines its own flags and runs through `run_main`.

    --output PATH          destination (tool-specific default)
    --overwrite            replace an existing destination
    --unsafe               load .keras with safe_mode=False (Lambda layers)
    --import MODULES       comma-separated modules registering your own Keras
                           classes, imported before a .keras file is loaded
                           (here and in the measurement processes)
    --labelled-data PATH   .npz with x (several inputs: x_<input name>), y:
                           report and gate accuracy
    --seed N               seed of the random parity inputs
    --measure              after export, run export.measure on the artifact
    --verbose              show converter logs and full tracebacks

Exit status, the same for every tool:

    0  done, every check passed (also `--help`, which lists every flag)
    1  a check failed: parity or accuracy against Keras (`ParityError`), a
       budget, or an export or measurement of the report; also an unexpected
       error (its type is named)
    2  bad input: a flag, a file, or a model the tool cannot take (missing,
       corrupt, an op the converter cannot handle)

Errors print ONE line, `<tool>: error: <what is wrong>`, on stderr, without a
traceback unless `--verbose`. The converters' native (C++) logging is captured
and dropped unless `--verbose`, so stderr holds only that line, our warnings
and the progress lines.

TensorFlow's start-up noise on a CPU machine (`failed call to cuInit`, oneDNN
notices, absl's "All log messages before absl::InitializeLog()") is written
by C++ straight to file descriptor 2, some of it while `tensorflow` is being
imported, so it must be silenced before that import: importing this module
(every tool imports it before TensorFlow) sets `QUIET_ENVIRONMENT` unless
`--verbose` is on the command line, and `run_main` imports TensorFlow with
file descriptor 2 captured.
"""

import contextlib
import logging
import os
import sys
import time
import warnings

from absl import app
from absl import flags

from kdutils import imports
from kdutils import verbosity
from kdutils.echo import bounded


# Set before TensorFlow is imported, unless --verbose: TF/TSL C++ logging at
def verbose_requested(argv=None):
    """Whether `--verbose` (absl spellings; the last one wins) is in `argv`."""
    return verbosity.verbose_requested(sys.argv[1:] if argv is None else list(argv)[1:])


def quiet_native_logs(argv=None):
    """Sets `QUIET_ENVIRONMENT` unless `--verbose` is in `argv`.

    Returns:
        Whether the environment was set (False under `--verbose`).
    """
    if verbose_requested(argv):
        return False
    os.environ.update(verbosity.QUIET_ENVIRONMENT)
    return True


quiet_native_logs()

FLAGS = flags.FLAGS
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
# Characters of an error line at most (its user input is bounded on its own).
MAX_MESSAGE = 1000


class UsageError(ValueError):
    """Bad command-line input (exit status 2)."""


def define_common_flags(output_help):
    """Defines the flags shared by the `to_*` tools (see module docstring)."""
    flags.DEFINE_string("output", None, output_help)
    flags.DEFINE_boolean("overwrite", False, "Replace the output if it already exists.")
    flags.DEFINE_boolean(
        "unsafe",
        False,
        "Load .keras files with safe_mode=False, allowing Lambda layers "
        "(arbitrary code). Only for files you trust.",
    )
    define_import_flag()
    flags.DEFINE_string(
        "labelled-data",
        None,
        ".npz with arrays x (inputs; for several inputs x_<input name> each) and "
        "y (labels): accuracy of Keras and of the export are reported, and the "
        "export may lose at most 1 point.",
    )
    flags.DEFINE_integer("seed", 0, "Seed of the random parity inputs.")
    flags.DEFINE_boolean(
        "measure",
        False,
        "After exporting, measure size/latency with export.measure "
        "(batch sizes 1 and 64).",
    )
    define_verbose_flag()


def define_import_flag():
    """Defines `--import` (every tool loading `.keras` files has it).

    Its name, help and checks are `kdutils.imports`', shared with the
    command lines outside `export`.
    """
    if imports.FLAG_NAME not in FLAGS:
        flags.DEFINE_string(imports.FLAG_NAME, None, imports.FLAG_HELP)


def import_modules_of_flag():
    """Checks `--import` and imports its modules (`export.loading.import_modules`).

    Raises:
        UsageError: a name that is not a module name (exit 2).
        export.loading.ModelLoadError: a module that cannot be imported (exit 2).
    """
    from export import loading

    try:
        names = loading.parse_module_names(flag_value("import"))
    except ValueError as error:
        raise UsageError(str(error)) from None
    loading.import_modules(names)


def define_verbose_flag():
    """Defines `--verbose` (every tool has it)."""
    flags.DEFINE_boolean(
        "verbose",
        False,
        "Show converter logs and full tracebacks on errors.",
    )


def flag_value(name):
    """Value of a flag by its command-line name (dashes allowed)."""
    return FLAGS[name].value


def common_arguments(output_required=None):
    """`(output, keywords)`: `--output` and the other common flags as keywords.

    Args:
        output_required: When `--output` has no default, what it must name
            (for the error message), e.g. `"a .tflite file path"`.
    """
    output = flag_value("output")
    if output_required and not output:
        raise UsageError(
            f"`--output` must be {output_required}. Received: --output=None"
        )
    return output, {
        "overwrite": flag_value("overwrite"),
        "labelled_data": flag_value("labelled-data"),
        "seed": flag_value("seed"),
        "unsafe": flag_value("unsafe"),
    }


def one_line(error):
    """A one-line description of an exception (its type named when unexpected)."""
    from export.loading import error_summary

    text = error_summary(error)
    if isinstance(error, KeyError) and text.startswith(("'", '"')):
        text = text[1:-1]
    expected = (ValueError, TypeError, OSError, flags.Error)
    if isinstance(error, expected) or not str(error).strip():
        return text
    return f"{type(error).__name__}: {text}"


def exit_code(error):
    """The exit status for `error`: 1 for a failed check, 2 for bad input."""
    from export.verify import ParityError

    if isinstance(error, ParityError):
        return EXIT_CHECK_FAILED
    if isinstance(error, (ValueError, TypeError, OSError, flags.Error)):
        return EXIT_USAGE
    return EXIT_CHECK_FAILED


def _bounded_line(message):
    """`message` as it is, unless it spans lines or exceeds `MAX_MESSAGE`."""
    text = str(message)
    if len(text) <= MAX_MESSAGE and "\n" not in text and "\r" not in text:
        return text
    return bounded(text, MAX_MESSAGE)


def fail(program, message, code):
    """Prints `<program>: error: <message>` on stderr and exits with `code`.

    The message is bounded (`kdutils.echo.bounded`): whatever user input a
    message repeats, the error stays one readable line.
    """
    sys.stderr.write(f"{program}: error: {_bounded_line(message)}\n")
    sys.stderr.flush()
    sys.exit(code)


def warn(program, message):
    """Prints `<program>: warning: <message>` on stderr."""
    sys.stderr.write(f"{program}: warning: {_bounded_line(message)}\n")
    sys.stderr.flush()


@contextlib.contextmanager
def stdout_to_stderr():
    """Sends file descriptor 1 to stderr: runtimes' chatter never reaches stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def guarded(program, body, quiet=True):
    """Runs `body()`: one-line error and exit on failure, unless `--verbose`.

    Args:
        program: Name shown in messages.
        body: The work; its return value is returned.
        quiet: Whether native (C++) logging on stderr is dropped while it runs.
    """
    if flag_value("verbose"):
        return body()
    from export.loading import UnsafeLoadWarning

    error = None
    value = None
    silenced = verbosity.captured_native_stderr() if quiet else contextlib.nullcontext()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnsafeLoadWarning)
        with silenced:
            try:
                value = body()
            except Exception as exception:  # Reported as one line below.
                error = exception
    for warning in caught:
        if issubclass(warning.category, UnsafeLoadWarning):
            warn(program, warning.message)
    if error is not None:
        fail(program, one_line(error), exit_code(error))
    return value


def parser(program):
    """absl's flag parser, with a one-line error and exit 2 on bad flags."""

    def parse(argv):
        show_flags_in_help()
        try:
            return FLAGS(argv)
        except flags.Error as error:
            fail(program, one_line(error), EXIT_USAGE)
        except SystemExit as exit:
            # absl's --help/--helpfull print the help, then exit 1; asking for
            # help is not a failed check.
            if exit.code == EXIT_CHECK_FAILED:
                sys.exit(EXIT_OK)
            raise

    return parse


def show_flags_in_help():
    """Makes the tools' flags (defined in `export`) part of `--help`.

    absl's `--help` lists only the main module's own flags; ours are defined
    in `export.cli` and the tool modules, so it listed none.
    """
    main_module = sys.argv[0]
    for module, module_flags in FLAGS.flags_by_module_dict().items():
        if module == main_module or not module.startswith("export"):
            continue
        for flag in module_flags:
            FLAGS.register_key_flag_for_module(main_module, flag)


def run_main(program, main, argv=None, takes_arguments=False):
    """Runs `main(positional_arguments) -> exit status` under absl.

    Bad flags, and positional arguments when `takes_arguments` is False, exit
    2 with one line; `main` runs under `guarded`.
    """

    def entry(arguments):
        if len(arguments) > 1 and not takes_arguments:
            fail(
                program,
                f"`{program}` takes no positional arguments. "
                f"Received: {bounded(' '.join(arguments[1:]))}",
                EXIT_USAGE,
            )
        if not flag_value("verbose"):
            import_tensorflow_quietly()
        status = guarded(program, lambda: main(arguments[1:]), quiet=False)
        sys.exit(status or EXIT_OK)

    app.run(entry, argv=argv, flags_parser=parser(program))


def import_tensorflow_quietly():
    """Imports TensorFlow with file descriptor 2 captured (its import noise)."""
    if "tensorflow" in sys.modules:
        return
    with verbosity.captured_native_stderr():
        try:
            import tensorflow  # noqa: F401  (imported for its side effect)
        except ImportError:
            pass


def quiet_tensorflow():
    """For programs outside `export` that train: TensorFlow without its chatter.

    Sets `QUIET_ENVIRONMENT`, imports TensorFlow with its import noise captured
    (`failed call to cuInit`, absl's start-up line) and raises its Python
    logger to ERROR (tf.function retracing notices). Call it before TensorFlow
    is imported, unless the user asked for `--verbose`.
    """
    os.environ.update(verbosity.QUIET_ENVIRONMENT)
    import_tensorflow_quietly()
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def run(program, export_fn, argv=None, output_required=None, tool_arguments=None):
    """Runs a `to_*` export tool under absl with one-line errors.

    Args:
        program: Name shown in messages, e.g. `"export.to_onnx"`.
        export_fn: `export_fn(model_path, output, **keywords) -> ExportResult`
            (`export.pipeline.ExportResult`); the keywords are the common
            flags' (`common_arguments`) and `tool_arguments()`'.
        argv: Command line (defaults to `sys.argv`).
        output_required: See `common_arguments`.
        tool_arguments: Optional `() -> dict` of the tool's own flags.
    """

    def export_from_flags(model_path):
        output, keywords = common_arguments(output_required)
        keywords.update(tool_arguments() if tool_arguments else {})
        import_modules_of_flag()  # Before the model is loaded.
        return export_fn(model_path, output, **keywords)

    def main(arguments):
        if len(arguments) != 1:
            fail(
                program,
                "`MODEL` must be exactly one path (a .keras file or a "
                f"SavedModel directory). Received: {len(arguments)} arguments",
                EXIT_USAGE,
            )
        result = guarded(program, lambda: export_from_flags(arguments[0]))
        print(result.summary, flush=True)
        if flag_value("measure"):
            guarded(program, lambda: measure_and_print(result))

    app.run(lambda argv: main(argv[1:]), argv=argv, flags_parser=parser(program))


def measure_and_print(result):
    """Measures an exported artifact (`--measure`) and prints the summary."""
    from export import measure  # Optional stage, imported only when asked.

    measured = measure.measure_artifact(
        result.path, result.sidecar["format"], batch_sizes=(1, 64)
    )
    print(measure.summarize(measured), flush=True)
    return measured


class Progress:
    """Progress lines on stderr (never stdout, so JSON output stays clean).

    A live bar on a terminal; one line per step otherwise (logs, CI).

    Args:
        total: Number of steps.
        stream: Where to write (default: stderr).
        width: Characters of the bar.
    """

    def __init__(self, total, stream=None, width=24):
        self.total, self.done, self.width = total, 0, width
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.running = False

    def step(self, label):
        """Announces the step now starting."""
        self.draw(label)

    def advance(self):
        """Marks one step done."""
        self.done += 1

    def next_step(self, label):
        """Marks the running step done (if any) and announces the next."""
        if self.running:
            self.done += 1
        self.running = True
        self.draw(label)

    def finish(self):
        """Marks the running step done and draws the final line."""
        if self.running:
            self.done += 1
            self.running = False
        self.draw("done")
        if self.interactive:
            self.stream.write("\n")
        self.stream.flush()

    def draw(self, label):
        """Writes the bar with `label`."""
        filled = int(self.width * self.done / max(self.total, 1))
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        line = f"[{bar}] {self.done}/{self.total} {elapsed:5.1f}s {label}"
        if self.interactive:
            self.stream.write("\r" + line.ljust(100))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
