"""Command line for the sharded soft-target cache, one worker at a time.

    python -m kdkeras.targets.cli --teacher=teacher.keras --inputs=x.npy \\
        --output=targets --shard=0/2          # worker 0 of 2 -> targets.0-of-2
    python -m kdkeras.targets.cli --teacher=teacher.keras --inputs=x.npy \\
        --output=targets --shard=1/2          # worker 1 of 2 -> targets.1-of-2
    python -m kdkeras.targets.cli --merge=targets.0-of-2,targets.1-of-2 \\
        --output=targets                      # the cache one process writes

`--inputs` is a `.npy` array (read through a memory map and streamed in
batches of `--batch-size`, so it may be larger than memory). Without
`--shard` the whole cache is written to `--output`. The teacher is loaded
with `safe_mode=True`; a teacher of your own registered classes
(`@keras.saving.register_keras_serializable`) loads once `--import` names the
module(s) registering them (module names only, e.g.
`--import=my_package.layers`), as in `export`'s tools.

Flags and files are checked before TensorFlow and the teacher are loaded.
Errors print one line, `kdkeras.targets.cli: error: ...`, on stderr,
without a traceback unless `--verbose` (which also keeps TensorFlow's own
start-up logs): exit status 2 for bad input (flags, files, a teacher that
does not take these inputs), 1 when a cache does not match or is damaged
(`--on-stale=error`, a worker part for `--merge`) or the run fails.
`--help` prints this text and the flags.
"""

import math
import os
import sys
import traceback

from absl import flags

from kdutils import imports

USAGE_EXIT_CODE = 2
CHECK_EXIT_CODE = 1
PROGRAM = "kdkeras.targets.cli"
_SHOWN = 200
_NAMES = (
    "teacher",
    "inputs",
    "output",
    "batch-size",
    "dtype",
    "top-k",
    "temperature",
    "examples-per-shard",
    "shard",
    "merge",
    "on-stale",
    "import",
    "verbose",
)


class UsageError(ValueError):
    """Bad command-line input (exit status 2)."""


def define_flags():
    """Defines this tool's flags (at `main`, never at import; once)."""
    if "teacher" in flags.FLAGS:
        return
    flags.DEFINE_string("teacher", None, "Teacher model (.keras file).")
    flags.DEFINE_string("inputs", None, "Inputs, a .npy array, one row each.")
    flags.DEFINE_string("output", None, "The cache folder to write.")
    flags.DEFINE_integer("batch-size", 1024, "Teacher batch size.")
    flags.DEFINE_enum(
        "dtype",
        None,
        ["float32", "float16"],
        "Storage dtype (default float32; float16 with --top-k).",
    )
    flags.DEFINE_integer("top-k", None, "Store only the K largest logits.")
    flags.DEFINE_float("temperature", None, "Distillation temperature (with --top-k).")
    flags.DEFINE_integer("examples-per-shard", None, "Examples per shard file.")
    flags.DEFINE_string(
        "shard",
        None,
        "i/n: compute worker i's shards of n; written to OUTPUT.i-of-n.",
    )
    flags.DEFINE_list("merge", None, "Workers' folders to join into --output.")
    flags.DEFINE_enum(
        "on-stale",
        "recompute",
        ["recompute", "error"],
        "What to do with an existing cache that does not match.",
    )
    if imports.FLAG_NAME not in flags.FLAGS:  # Shared with export's tools.
        flags.DEFINE_string(imports.FLAG_NAME, None, imports.FLAG_HELP)
    flags.DEFINE_boolean(
        "verbose",
        False,
        "Show TensorFlow's start-up logs, and a traceback with an error.",
    )


def fail(message, code):
    sys.stderr.write(f"{PROGRAM}: error: {message}\n")
    sys.stderr.flush()
    return code


def one_line(error):
    """An exception's message on one bounded line, its cause kept.

    Keras wraps a layer's error in "Exception encountered when calling ...";
    every line is kept, joined, so the cause is not dropped.

    Example:

    >>> one_line(ValueError("Exception encountered.\\n\\n  expected 8, got 7"))
    'ValueError: Exception encountered. expected 8, got 7'
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = " ".join(lines) or "(no message)"
    if len(text) > 2 * _SHOWN:
        text = text[: 2 * _SHOWN - 3] + "..."
    return f"{type(error).__name__}: {text}"


def _shown(value):
    from kdutils.echo import bounded

    return bounded(value, limit=_SHOWN, quote=True)


def parse_shard(text):
    """`"i/n"` as `(i, n)` with `0 <= i < n` (no TensorFlow needed).

    Example:

    >>> parse_shard("1/4")
    (1, 4)
    """
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise UsageError(
            f"`--shard` must be 'i/n' with 0 <= i < n. Received: --shard={_shown(text)}"
        )
    return index, count


def _check_positive(values, name):
    value = values[name]
    if value is not None and value < 1:
        raise UsageError(
            f"`--{name}` must be a positive int. Received: --{name}={value}"
        )


def _check_inputs_file(path):
    """The `.npy` file's shape and dtype, read from its header only."""
    import numpy as np

    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise UsageError(
            f"`--inputs` must be a .npy array. Received: --inputs={_shown(path)} "
            f"({one_line(error)[:_SHOWN]})"
        ) from None
    if not isinstance(array, np.ndarray):
        raise UsageError(
            f"`--inputs` must be a .npy array, not an archive. Received: "
            f"--inputs={_shown(path)}"
        )
    if array.ndim == 0 or len(array) == 0:
        raise UsageError(
            "`--inputs` must hold at least one row, one per example. Received: "
            f"--inputs={_shown(path)} of shape {array.shape}"
        )
    if array.dtype.kind not in "biuf":
        raise UsageError(
            "`--inputs` must hold numbers. Received: "
            f"--inputs={_shown(path)} of dtype {array.dtype}"
        )


def check_values(values):
    """Checks every flag and file, before TensorFlow is imported.

    Returns:
        `(output, shard)`: the folder to write and the parsed `--shard`.

    Raises:
        UsageError: a missing, contradictory or bad flag, or a missing or
            unreadable file.
    """
    output = values["output"]
    if not output:
        raise UsageError("`--output` must be given.")
    if values["merge"]:
        if (
            values["teacher"]
            or values["inputs"]
            or values["shard"]
            or values.get("import")
        ):
            raise UsageError(
                "`--merge` takes only --output (no --teacher, --inputs, --shard "
                "or --import)."
            )
        for part in values["merge"]:
            if not os.path.isdir(part):
                raise UsageError(
                    "`--merge` must list existing worker folders. "
                    f"Received: {_shown(part)}"
                )
        return output, None
    for name in ("teacher", "inputs"):
        if not values[name]:
            raise UsageError(f"`--{name}` must be given.")
    try:
        imports.parse_module_names(values.get("import"))
    except ValueError as error:
        raise UsageError(str(error)) from None
    for name in ("batch-size", "top-k", "examples-per-shard"):
        _check_positive(values, name)
    temperature = values["temperature"]
    if values["top-k"] is None and temperature is not None:
        raise UsageError(
            "`--temperature` is only used with --top-k. "
            f"Received: --temperature={temperature}"
        )
    if values["top-k"] is not None and (
        temperature is None or not math.isfinite(temperature) or temperature <= 0
    ):
        raise UsageError(
            "`--temperature` must be a positive number with --top-k. "
            f"Received: --temperature={temperature}"
        )
    shard = parse_shard(values["shard"]) if values["shard"] else None
    if shard is not None:
        output = f"{output}.{shard[0]}-of-{shard[1]}"
    for name in ("teacher", "inputs"):
        if not os.path.isfile(values[name]):
            raise UsageError(
                f"`--{name}` must be an existing file. "
                f"Received: --{name}={_shown(values[name])}"
            )
    _check_inputs_file(values["inputs"])
    return output, shard


def npy_stream(path, batch_size):
    """A deterministic `tf.data.Dataset` of batches of a `.npy` file."""
    import numpy as np
    import tensorflow as tf

    array = np.load(path, mmap_mode="r", allow_pickle=False)

    def batches():
        for start in range(0, len(array), batch_size):
            yield np.asarray(array[start : start + batch_size])

    signature = tf.TensorSpec((None,) + array.shape[1:], array.dtype)
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    count = -(-len(array) // batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(count))


def _load_teacher(path):
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad file.
        raise UsageError(
            f"`--teacher` must be a Keras model file. Received: "
            f"--teacher={_shown(path)} ({one_line(error)[:_SHOWN]})"
        ) from None


def _work(values, output, shard):
    """Loads the teacher and writes (or merges) the cache; returns a summary."""
    import numpy as np

    from kdkeras.targets.inputs import check_model_inputs
    from kdkeras.targets.shards import writer as shards

    if values["merge"]:
        merged = shards.merge_soft_target_shards(values["merge"], output)
        return f"Merged {len(values['merge'])} parts: {merged}"
    try:
        imports.import_modules(values.get("import"))  # Before the teacher loads.
    except ValueError as error:
        raise UsageError(str(error)) from None
    teacher = _load_teacher(values["teacher"])
    rows = np.load(values["inputs"], mmap_mode="r", allow_pickle=False)
    try:
        check_model_inputs(teacher, rows[:1], "--inputs")
    except ValueError as error:
        raise UsageError(str(error)) from None
    result = shards.cache_soft_target_shards(
        teacher,
        npy_stream(values["inputs"], values["batch-size"]),
        output,
        dtype=values["dtype"],
        top_k=values["top-k"],
        temperature=values["temperature"],
        examples_per_shard=values["examples-per-shard"],
        shard=shard,
        on_stale=values["on-stale"],
    )
    return f"Wrote {result}"


def run(values):
    """Runs the tool on parsed flag values; returns the exit code.

    Flags and files are checked first; TensorFlow (through kdkeras) is
    imported only after, quietly unless `values["verbose"]`.
    """
    verbose = bool(values.get("verbose"))
    try:
        output, shard = check_values(values)
    except UsageError as error:
        return fail(str(error), USAGE_EXIT_CODE)
    if not verbose:
        from kdkeras._quiet_start import import_tensorflow_quietly

        import_tensorflow_quietly()
    from kdkeras.targets.memory.cache import StaleSoftTargetsError

    try:
        summary = _work(values, output, shard)
    except Exception as error:  # One line, the traceback only if --verbose.
        if verbose:
            traceback.print_exc()
        if isinstance(error, StaleSoftTargetsError):
            return fail(str(error), CHECK_EXIT_CODE)
        if isinstance(error, UsageError):
            return fail(str(error), USAGE_EXIT_CODE)
        if isinstance(error, (ValueError, TypeError, OSError)):
            message = one_line(error).partition(": ")[2]
            return fail(message, USAGE_EXIT_CODE)
        hint = "" if verbose else " (--verbose shows the traceback)"
        return fail(one_line(error) + hint, CHECK_EXIT_CODE)
    print(summary)
    return 0


def usage():
    """This tool's help: the module's text and its flags."""
    module = flags.FLAGS.find_module_defining_flag("output")
    # The first line names the module's file: not the user's concern.
    listed = flags.FLAGS.module_help(module).partition("\n")[2]
    return f"{__doc__}\nFlags:\n{listed}\n"


def _asks_for_help(argv):
    for argument in argv[1:]:
        if argument == "--":
            return False
        if argument in ("-h", "-help", "--help", "-?", "--helpfull", "--helpshort"):
            return True
    return False


def main(argv):
    if len(argv) > 1:
        return fail(
            f"unexpected arguments {_shown(argv[1:])}; every option is a --flag.",
            USAGE_EXIT_CODE,
        )
    return run({name: flags.FLAGS[name].value for name in _NAMES})


def entry_point(argv=None):
    """Parses the flags and runs; returns the exit code (2 on a bad flag)."""
    argv = sys.argv if argv is None else argv
    define_flags()
    if _asks_for_help(argv):
        sys.stdout.write(usage())
        return 0
    try:
        remaining = flags.FLAGS(argv)
    except flags.Error as error:
        return fail(str(error).splitlines()[0][: 2 * _SHOWN], USAGE_EXIT_CODE)
    return main(remaining)


if __name__ == "__main__":
    sys.exit(entry_point())
