"""Whether a command line asked for `--verbose`, read before absl parses it.

The command lines of `export` and `kdkeras` quiet TensorFlow's native start-up
logs before TensorFlow is imported, so they must know about `--verbose` before
their flags are parsed.
"""

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
