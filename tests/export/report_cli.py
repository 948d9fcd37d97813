"""Runs `python -m export.report` as a user would, for the report's tests."""

import os
import subprocess
import sys

import keras

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Small timing bounds: the report's tests check what it says, not how fast anything is.
FAST = {"min_time": 0.02, "min_iterations": 20, "max_time": 0.2, "threads": 1}


def mlp(hidden, seed, lambda_layer=False):
    """A seeded Flatten-Dense classifier of 6x6x1 inputs into 10 classes.

    Args:
        hidden: the units of each hidden ReLU layer.
        seed: the seed of its initial weights.
        lambda_layer: whether a Lambda layer doubles the inputs (a model that
            loads only with `safe_mode=False`).
    """
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((6, 6, 1)), keras.layers.Flatten()]
    if lambda_layer:
        layers.append(keras.layers.Lambda(lambda t: t * 2.0))
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
    layers.append(keras.layers.Dense(10))
    return keras.Sequential(layers)


def report_arguments(teacher, students, **flags):
    """The command line of `python -m export.report`, from Python values.

    Args:
        teacher: the `--teacher` path.
        students: the `--student` paths, one flag each.
        **flags: one flag each, the name dashed (`labelled_data=` is
            `--labelled-data`); `True` is a flag without a value.

    Returns:
        The list of arguments.
    """
    arguments = ["--teacher", teacher]
    for student in students:
        arguments += ["--student", student]
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        arguments += [flag] if value is True else [flag, str(value)]
    return arguments


def run_report(arguments, timeout=900, cwd=ROOT):
    """`python -m export.report ARGUMENTS` in `cwd` (default: the repository)."""
    environment = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "export.report", *arguments],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=timeout,
    )


def one_error_line(completed):
    """The one line of a usage error on stderr; fails the test if there are more."""
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("export.report: error:"), (
        completed.stderr
    )
    return lines[0]


def write_text(folder, name, text):
    """Writes `text` to `folder/name` (a budget file); returns its path."""
    path = os.path.join(folder, name)
    with open(path, "w") as handle:
        handle.write(text)
    return path
