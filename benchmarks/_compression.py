"""What the compression benchmarks share: settings, training, measuring.

`benchmarks.compression` (the 800-800 MLP student) and
`benchmarks.compression_applications` (keras.applications students) train a
CNN teacher, distil a student from its cached logits, fine-tune compressed
variants through `kdkeras.compress`, export each to TFLite and measure the
files. Importing this module sets the TensorFlow environment defaults, so
import it before anything that imports TensorFlow.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from absl import flags  # noqa: E402

FLAGS = flags.FLAGS


_FLAGS_WITH_DEFAULTS = (
    ("teacher-epochs", flags.DEFINE_integer, "Teacher epochs."),
    ("student-epochs", flags.DEFINE_integer, "Distillation epochs."),
    ("prune-epochs", flags.DEFINE_integer, "Pruning fine-tune epochs."),
    ("cluster-epochs", flags.DEFINE_integer, "Clustering fine-tune epochs."),
    ("qat-epochs", flags.DEFINE_integer, "Quantization-aware fine-tune epochs."),
    ("target-sparsity", flags.DEFINE_float, "Pruning target sparsity."),
    ("clusters", flags.DEFINE_integer, "Weight clusters per kernel."),
    ("calibration", flags.DEFINE_integer, "Representative images for PTQ int8."),
)


def define_flags(defaults):
    """Defines the flags both benchmarks take, with their `defaults`.

    Args:
        defaults: Dict by flag name: `teacher-epochs`, `student-epochs`,
            `prune-epochs`, `cluster-epochs`, `qat-epochs`,
            `target-sparsity`, `clusters`, `calibration`.
    """
    flags.DEFINE_bool("quick", False, "Smoke test: small slices, 1 epoch each.")
    for name, define, help_text in _FLAGS_WITH_DEFAULTS:
        define(name, defaults[name], help_text)
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_float("min-time-s", 1.0, "Minimum timing per artifact.")
    flags.DEFINE_string("output-dir", None, "Artifacts folder (default: a temp dir).")
    flags.DEFINE_bool("verbose", False, "Training progress and full tracebacks.")


def setting(name, quick):
    """Flag `name`'s value, or its `quick` value under `--quick`."""
    if FLAGS.quick and name in quick:
        return quick[name]
    return FLAGS[name].value


def command(module, names, extra=()):
    """The command line that reproduces this run of `module`."""
    arguments = [f"--{name}={FLAGS[name].value:g}" for name in names]
    arguments += list(extra)
    if FLAGS.quick:
        arguments.append("--quick")
    return f".venv/bin/python -m {module} " + " ".join(
        shlex.quote(a) for a in arguments
    )


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def verbosity():
    return 2 if FLAGS.verbose else 0


def fit_teacher(teacher, x, y, epochs):
    """Trains `teacher` (logits) with Adam 1e-3 on integer labels."""
    import keras

    teacher.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    teacher.fit(
        x, y, epochs=epochs, batch_size=FLAGS["batch-size"].value, verbose=verbosity()
    )
    return teacher


def distil(student, teacher, x, y, teacher_logits, epochs, optimizer):
    """The student distilled from the cached `teacher_logits` on `x`."""
    import kdkeras

    distiller = kdkeras.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=optimizer,
        metrics=["accuracy"],
        alpha=FLAGS.alpha,
        temperature=FLAGS.temperature,
    )
    distiller.fit(
        x,
        {"labels": y, "teacher_logits": teacher_logits},
        epochs=epochs,
        batch_size=FLAGS["batch-size"].value,
        verbose=verbosity(),
    )
    return distiller.student


def fine_tune(method, student, x, y, teacher_logits, describe, **options):
    """One `kdkeras.compress` method from `FLAGS.seed`, timed.

    Returns:
        `(compressed model, notes)`: `describe(model)`'s notes, the layers
        wrapped and left as they are, and the seconds it took.
    """
    import keras

    keras.utils.set_random_seed(FLAGS.seed)
    start = time.perf_counter()
    model = method(
        student,
        None,
        x,
        y,
        teacher_logits=teacher_logits,
        batch_size=FLAGS["batch-size"].value,
        temperature=FLAGS.temperature,
        alpha=FLAGS.alpha,
        verbose=verbosity(),
        **options,
    )
    report = model.compression_report
    notes = describe(model) + [
        f"{len(report.wrapped)} layers wrapped, "
        f"{len(report.left_as_is)} left as they are",
        f"{time.perf_counter() - start:.0f} s fine-tune",
    ]
    return model, notes


def measure(artifacts, x, y, repeats, threads, min_time_s):
    """Test accuracy, sizes and batch-1 p50 of every artifact.

    Round-robin over the artifacts, `repeats` rounds; in each round an
    artifact's p50 is the best over the `threads` settings, and its reported
    p50 is the median of its rounds (accuracy from the first call).

    Args:
        artifacts: Dict `{label: (path, format, notes)}`.
        x, y: Test inputs and labels.
        repeats: Rounds.
        threads: Thread counts to try (None: every core).
        min_time_s: Minimum timing per call of `measure_artifact`.

    Returns:
        Dict `{label: measure_artifact's result}`.
    """
    from export.measure import measure_artifact

    results, p50s = {}, {label: [] for label in artifacts}
    for round_index in range(repeats):
        for label, (path, fmt, _) in artifacts.items():
            log(f"measuring {label} (round {round_index + 1})")
            best = None
            for thread_count in threads:
                first = label not in results
                result = measure_artifact(
                    path,
                    fmt,
                    batch_sizes=(1,),
                    x=x if first else None,
                    y=y if first else None,
                    threads=thread_count,
                    min_time_s=min_time_s,
                    max_time_s=max(3.0, min_time_s),
                )
                results.setdefault(label, result)
                p50 = result["latency"]["1"]["p50_ms"]
                best = p50 if best is None else min(best, p50)
            p50s[label].append(best)
    for label, result in results.items():
        result["latency"]["1"]["p50_ms"] = statistics.median(p50s[label])
    return results


def print_goals(goals):
    """Prints `(text, passed, measured)` goals as PASS/MISS lines."""
    for text, passed, measured in goals:
        print(f"{'PASS' if passed else 'MISS'}: {text} (measured {measured})")
