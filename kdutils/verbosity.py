"""Quiet command lines: `--verbose` read before absl parses it, native stderr captured.

The command lines of `export` and `kdkeras` quiet TensorFlow's native start-up
logs before TensorFlow is imported, so they must know about `--verbose` before
their flags are parsed, and capture what C++ writes to file descriptor 2.
"""

import contextlib
import os
import sys
import tempfile

#: TF/TSL C++ logging at FATAL only (drops cuInit errors and oneDNN notices),
#: gRPC errors only.
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR"}


def verbose_requested(arguments):
    """Whether `--verbose` (absl spellings; the last one wins) is in `arguments`.

    Args:
        arguments: The command line's arguments, without the program name.

    Returns:
        True when the last of `--verbose`, `--verbose=...`, `--noverbose`
        before any `--` turns it on.

    Example:

    >>> verbose_requested(["--verbose"]), verbose_requested(["--noverbose"])
    (True, False)
    >>> verbose_requested(["--verbose=false"]), verbose_requested(["--", "--verbose"])
    (False, False)
    """
    verbose = False
    for argument in arguments:
        argument = str(argument)
        if argument == "--":
            break
        if not argument.startswith("-"):
            continue
        name, _, value = argument.lstrip("-").partition("=")
        if name == "verbose":
            verbose = value.lower() not in ("false", "0", "no", "f")
        elif name == "noverbose":
            verbose = False
    return verbose


@contextlib.contextmanager
def captured_native_stderr():
    """Redirects file descriptor 2 (Python and C++ writers) to a temporary file.

    Yields the temporary file; its content is discarded when the block ends.
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
