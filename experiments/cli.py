"""What every experiment's command line shares.

Settings are read from absl flags with dashed multi-word names
(`--teacher-epochs`) into dicts keyed by the underscored setting name
(`teacher_epochs`); `--quick` fills the settings not given on the command
line; `main` turns a bad setting into a one-line error and exit code 2, and a
failed run into a one-line error and exit code 1.
"""

import shlex
import sys
import time

from absl import app
from absl import flags

from export import cli as export_cli

FLAGS = flags.FLAGS

#: The settings of `define_run_flags` that every experiment reads (`--quick`,
#: `--output` and `--verbose` are read by the experiment's `run` itself).
RUN_SETTINGS = ("limit_train", "limit_test", "cache_dir")
#: The settings every student and teacher `Recipe` shares
#: (`recipe.recipes_from_settings`).
RECIPE_SETTINGS = (
    "temperature",
    "alpha",
    "batch_size",
    "learning_rate",
    "schedule",
    "augment",
)
#: Exit code of a bad flag value.
USAGE_EXIT_CODE = 2
#: Exit code of a run that failed.
FAILURE_EXIT_CODE = 1


def define_run_flags(quick_help, output_help, cache_help):
    """Defines the flags every experiment has.

    `--limit-train`, `--limit-test`, `--quick`, `--output`, `--cache-dir`
    and `--verbose`; the help of the three that differ is given.

    Args:
        quick_help: What `--quick` does.
        output_help: What `--output` is.
        cache_help: What `--cache-dir` caches.
    """
    flags.DEFINE_integer("limit-train", None, "Use the first N training examples.")
    flags.DEFINE_integer("limit-test", None, "Use the first N test examples.")
    flags.DEFINE_boolean("quick", False, quick_help)
    flags.DEFINE_string("output", "RESULTS.md", output_help)
    flags.DEFINE_string("cache-dir", "", cache_help)
    flags.DEFINE_boolean("verbose", False, "Progress output and tracebacks.")


def define_distillation_flags(temperature=4.0, alpha=0.1):
    """Defines `--temperature`, `--alpha` and `--batch-size`.

    The distillation recipe every experiment and training benchmark shares.

    Args:
        temperature: Default softmax temperature T.
        alpha: Default weight of the hard-label loss.
    """
    flags.DEFINE_float("temperature", temperature, "Softmax temperature T.")
    flags.DEFINE_float("alpha", alpha, "Weight of the hard-label loss.")
    flags.DEFINE_integer("batch-size", 128, "Batch size.")


def define_recipe_flags(temperature=4.0, alpha=0.1, learning_rate=1e-3):
    """Defines the flags of `RECIPE_SETTINGS` (`define_distillation_flags`,
    `--learning-rate`, `--schedule` and `--augment`).

    Args:
        temperature: Default softmax temperature T.
        alpha: Default weight of the hard-label loss.
        learning_rate: Default initial Adam learning rate.
    """
    define_distillation_flags(temperature, alpha)
    flags.DEFINE_float("learning-rate", learning_rate, "Adam's initial learning rate.")
    flags.DEFINE_enum(
        "schedule", "cosine", ["cosine", "constant"], "Learning-rate schedule."
    )
    flags.DEFINE_boolean(
        "augment",
        False,
        "Shift (±2 px) and mirror each epoch's training images, the same images "
        "for teacher and student.",
    )


def flag_name(setting):
    """The command-line flag of a setting.

    Example:

    >>> flag_name("teacher_epochs")
    'teacher-epochs'
    """
    return setting.replace("_", "-")


def settings_from_flags(names, quick_values):
    """The values of the flags of `names`, keyed by setting name.

    Args:
        names: Setting names (underscored).
        quick_values: Dict of setting name -> value used under `--quick`
            for the flags not given on the command line.

    Returns:
        A dict of setting name -> value.
    """
    settings = {name: FLAGS[flag_name(name)].value for name in names}
    if FLAGS.quick:
        for name, value in quick_values.items():
            if not FLAGS[flag_name(name)].present:
                settings[name] = value
    return settings


def check_at_least_one(settings, names):
    """Raises a one-line `ValueError` unless every setting of `names` is >= 1."""
    for name in names:
        if settings[name] < 1:
            raise ValueError(
                f"`--{flag_name(name)}` must be >= 1. Received: {settings[name]}"
            )


def reproduce_command(module):
    """`python -m module` with this process's command-line arguments."""
    return f"python -m {module}" + "".join(
        " " + shlex.quote(argument) for argument in sys.argv[1:]
    )


def progress_log(verbose):
    """A `log(message)` printing elapsed seconds and `message` when verbose."""
    start = time.perf_counter()

    def log(message):
        if verbose:
            print(f"[{time.perf_counter() - start:6.0f} s] {message}", flush=True)

    return log


def main(argv, read_settings, run):
    """Runs an experiment as a program and returns its exit code.

    Args:
        argv: `app.run`'s positional arguments (only the program name).
        read_settings: Callable returning the settings; its `ValueError`
            is a bad flag value (exit code 2).
        run: Callable `(settings) -> path written`; its `ValueError`,
            `TypeError`, `RuntimeError` or `OSError` is a failed run (exit
            code 1). With `--verbose` both raise (with their traceback).

    Returns:
        0 on success, else `USAGE_EXIT_CODE` or `FAILURE_EXIT_CODE`.
    """
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.verbose:
        export_cli.quiet_tensorflow()
    try:
        settings = read_settings()
    except ValueError as error:
        if FLAGS.verbose:
            raise
        print(f"error: {error}", file=sys.stderr)
        return USAGE_EXIT_CODE
    try:
        written = run(settings)
    except (ValueError, TypeError, RuntimeError, OSError) as error:
        if FLAGS.verbose:
            raise
        print(f"error: {error}", file=sys.stderr)
        return FAILURE_EXIT_CODE
    print(f"wrote {written}")
    return 0
