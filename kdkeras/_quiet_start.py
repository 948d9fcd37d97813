"""TensorFlow's start-up quieted for kdkeras's command lines (no TF import here).

`python -m kdkeras.<...>.cli` imports the `kdkeras` package, and with it
TensorFlow, before the command line's own module runs; TensorFlow's native
start-up lines (absl's "All log messages before absl::InitializeLog()",
"Could not find cuda drivers", oneDNN notices) would precede every message of
the tool. Importing this module (`kdkeras/__init__.py` does it first) runs
`quiet_command_line_start`, which sets `QUIET_ENVIRONMENT` and imports TensorFlow with file descriptor 2
captured, only when the process is such a command line and `--verbose` is
not on it. A library user's process is left alone.
"""

import os
import sys

from kdutils import verbosity

QUIET_ENVIRONMENT = verbosity.QUIET_ENVIRONMENT
verbose_requested = verbosity.verbose_requested


def command_line_arguments(argv=None):
    """The arguments of a `python -m kdkeras....cli` process, or `None`.

    Example:

    >>> command_line_arguments(["python", "-m", "kdkeras.targets.cli", "-x"])
    ['-x']
    >>> command_line_arguments(["python", "train.py"]) is None
    True
    """
    argv = list(getattr(sys, "orig_argv", []) if argv is None else argv)
    if "-m" not in argv[:-1]:
        return None
    module = argv[argv.index("-m") + 1]
    if not (module.startswith("kdkeras.") and module.endswith(".cli")):
        return None
    return argv[argv.index("-m") + 2 :]


def import_tensorflow_quietly():
    """Sets `QUIET_ENVIRONMENT` and imports TensorFlow with fd 2 captured."""
    os.environ.update(QUIET_ENVIRONMENT)
    if "tensorflow" in sys.modules:
        return
    with verbosity.captured_native_stderr():
        try:
            import tensorflow  # noqa: F401  (imported for its side effect)
        except ImportError:
            pass  # Raised again, with its message, by the import that needs it.


def quiet_command_line_start():
    """Quiets TensorFlow's start-up in a kdkeras command line, unless --verbose."""
    arguments = command_line_arguments()
    if arguments is None or verbose_requested(arguments):
        return
    import_tensorflow_quietly()


quiet_command_line_start()
