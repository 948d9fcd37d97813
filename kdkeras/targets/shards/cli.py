"""Command line for the sharded soft-target cache, one worker at a time.

    python -m kdkeras.targets.shards.cli --teacher=teacher.keras --inputs=x.npy \\
        --output=targets --shard=0/2          # worker 0 of 2 -> targets.0-of-2
    python -m kdkeras.targets.shards.cli --teacher=teacher.keras --inputs=x.npy \\
        --output=targets --shard=1/2          # worker 1 of 2 -> targets.1-of-2
    python -m kdkeras.targets.shards.cli --merge=targets.0-of-2,targets.1-of-2 \\
        --output=targets                      # the cache one process writes

`--inputs` is a `.npy` array (read through a memory map and streamed in
batches of `--batch-size`, so it may be larger than memory). Without
`--shard` the whole cache is written to `--output`. The teacher is loaded
with `safe_mode=True`.

Errors print one line, `kdkeras.targets.shards.cli: error: ...`, on stderr: exit
status 2 for bad input (flags, files), 1 when `--on-stale=error` finds a
cache that does not match.
"""

import os
import sys

from absl import flags

USAGE_EXIT_CODE = 2
CHECK_EXIT_CODE = 1
PROGRAM = "kdkeras.targets.shards.cli"


def define_flags():
    """Defines this tool's flags (at `main`, never at import)."""
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


def fail(message, code):
    sys.stderr.write(f"{PROGRAM}: error: {message}\n")
    return code


def npy_stream(path, batch_size):
    """A deterministic `tf.data.Dataset` of batches of a `.npy` file."""
    import numpy as np
    import tensorflow as tf

    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if array.ndim == 0:
        raise ValueError(
            f"`--inputs` must hold one row per example. Received: a scalar in {path!r}"
        )

    def batches():
        for start in range(0, len(array), batch_size):
            yield np.asarray(array[start : start + batch_size])

    signature = tf.TensorSpec((None,) + array.shape[1:], array.dtype)
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    count = -(-len(array) // batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(count))


def run(values):
    """Runs the tool on parsed flag values; returns the exit code."""
    import keras

    from kdkeras.targets.memory.cache import StaleSoftTargetsError
    from kdkeras.targets.shards import writer as shards

    output = values["output"]
    if not output:
        return fail("`--output` must be given.", USAGE_EXIT_CODE)
    try:
        if values["merge"]:
            if values["teacher"] or values["inputs"] or values["shard"]:
                return fail(
                    "`--merge` takes only --output (no --teacher, --inputs "
                    "or --shard).",
                    USAGE_EXIT_CODE,
                )
            merged = shards.merge_soft_target_shards(values["merge"], output)
            print(f"Merged {len(values['merge'])} parts: {merged}")
            return 0
        for name in ("teacher", "inputs"):
            if not values[name]:
                return fail(f"`--{name}` must be given.", USAGE_EXIT_CODE)
        shard = shards.parse_shard(values["shard"]) if values["shard"] else None
        if shard is not None:
            output = f"{output}.{shard[0]}-of-{shard[1]}"
        for name in ("teacher", "inputs"):
            if not os.path.isfile(values[name]):
                return fail(
                    f"`--{name}` must be an existing file. "
                    f"Received: --{name}={values[name]!r}",
                    USAGE_EXIT_CODE,
                )
        batch_size = values["batch-size"]
        if batch_size < 1:
            return fail(
                "`--batch-size` must be a positive int. "
                f"Received: --batch-size={batch_size}",
                USAGE_EXIT_CODE,
            )
        teacher = keras.saving.load_model(
            values["teacher"], compile=False, safe_mode=True
        )
        data = npy_stream(values["inputs"], batch_size)
        result = shards.cache_soft_target_shards(
            teacher,
            data,
            output,
            dtype=values["dtype"],
            top_k=values["top-k"],
            temperature=values["temperature"],
            examples_per_shard=values["examples-per-shard"],
            shard=shard,
            on_stale=values["on-stale"],
        )
        print(f"Wrote {result}")
        return 0
    except StaleSoftTargetsError as error:
        return fail(str(error), CHECK_EXIT_CODE)
    except (ValueError, TypeError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else repr(error)
        return fail(message, USAGE_EXIT_CODE)


def main(argv):
    if len(argv) > 1:
        return fail(
            f"unexpected arguments {argv[1:]}; every option is a --flag.",
            USAGE_EXIT_CODE,
        )
    names = [
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
    ]
    return run({name: flags.FLAGS[name].value for name in names})


def entry_point(argv=None):
    """Parses the flags and runs; returns the exit code (2 on a bad flag)."""
    argv = sys.argv if argv is None else argv
    define_flags()
    try:
        remaining = flags.FLAGS(argv)
    except flags.Error as error:
        return fail(str(error).splitlines()[0], USAGE_EXIT_CODE)
    return main(remaining)


if __name__ == "__main__":
    sys.exit(entry_point())
