"""Stand-ins for native converters, run in the child of `run_isolated` by tests."""

import os
import signal


def segfault(**arguments):
    """Dies of SIGSEGV, as the TFLite converter does on some calibration data."""
    os.kill(os.getpid(), signal.SIGSEGV)


def raise_value_error(**arguments):
    """Fails with an ordinary Python exception."""
    raise ValueError(f"bad arguments {sorted(arguments)}")


def write_marker(output_path, **arguments):
    """Succeeds: writes `output_path`."""
    with open(output_path, "w") as handle:
        handle.write("done")
