"""Training throughput of the demo's compact students, side by side.

The compact CNN student (`models.build_compact_cnn_student()`, 20,490
parameters) trained on cached soft targets, as `python -m examples.demo`
trains it: every variant built and warmed up (one epoch: tracing) in ONE
process, then timed round-robin (the starting variant rotates) for
`--repeats` epochs each. The table gives the median samples/s of one epoch
per student, and the arithmetic rate it stands for: samples/s × the FLOPs of
one example's training step (`models.count_training_flops`: forward, weight
and input gradients of the convolutions and the dense layer).

Variants:
  pipeline       the input alone: `kdkeras.soft_target_dataset` batches drawn
                 and dropped (what any step waits for)
  plain          Keras `fit` of the student on the labels (Keras' default
                 jit: XLA off on CPU)
  plain_xla      the same with `jit_compile=True`
  distilled      `kdkeras.Distiller`, DIST, T=1, alpha=0.5, cached soft
                 targets, `jit_compile="auto"` (`kdkeras._step.xla`)
  distilled_xla  the same with `jit_compile=True`
  paired         `experiments.paired.PairedStudents`: ONE compiled step
                 advancing the distilled student and the student alone on
                 the same batch (how the demo trains them); its samples/s
                 count both students' examples
The lines after the table compare `paired` with the two separate fits run
one after the other (`plain` then `distilled`, the demo's way before), in
wall time and in process CPU time (all threads: the work, less sensitive to
other jobs on a shared machine).

Usage:
  .venv/bin/python -m benchmarks.compact_student_throughput
  .venv/bin/python -m benchmarks.compact_student_throughput --threads=1
  .venv/bin/python -m benchmarks.compact_student_throughput --batch-size=256
  .venv/bin/python -m benchmarks.compact_student_throughput --student=mlp
  .venv/bin/python -m benchmarks.compact_student_throughput --quick
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import shlex  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from absl import flags  # noqa: E402

from export import cli  # noqa: E402
from export.measure.environment import cpu_name  # noqa: E402

FLAGS = flags.FLAGS
VARIANTS = ("pipeline", "plain", "plain_xla", "distilled", "distilled_xla", "paired")
#: `--student`: the `models` builder.
STUDENTS = {"cnn": "build_compact_cnn_student", "mlp": "build_compact_student"}
flags.DEFINE_enum("student", "cnn", list(STUDENTS), "The compact student.")
flags.DEFINE_integer("examples", 12800, "Training examples per epoch.", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed epochs per variant.", lower_bound=1)
flags.DEFINE_integer("batch-size", 128, "Batch size.", lower_bound=1)
flags.DEFINE_integer(
    "steps-per-execution", 32, "Keras steps_per_execution.", lower_bound=1
)
flags.DEFINE_integer(
    "threads",
    0,
    "TensorFlow intra- and inter-op threads (0: TensorFlow's default).",
    lower_bound=0,
)
flags.DEFINE_list("variants", list(VARIANTS), f"Variants, from {list(VARIANTS)}.")
flags.DEFINE_bool("quick", False, "Smoke test: 512 examples, 1 repeat.")
flags.DEFINE_bool("verbose", False, "Show tracebacks on errors.")


def _command():
    arguments = [
        f"--student={FLAGS.student}",
        f"--examples={FLAGS.examples}",
        f"--repeats={FLAGS.repeats}",
        f"--batch-size={FLAGS['batch-size'].value}",
        f"--steps-per-execution={FLAGS['steps-per-execution'].value}",
        f"--threads={FLAGS.threads}",
        f"--variants={','.join(FLAGS.variants)}",
    ]
    return ".venv/bin/python -m benchmarks.compact_student_throughput " + " ".join(
        shlex.quote(argument) for argument in arguments
    )


def _data(examples):
    """Random images, labels and teacher logits (speed does not read them)."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.random((examples, 28, 28, 1), dtype="float32")
    labels = np.eye(10, dtype="float32")[rng.integers(0, 10, examples)]
    logits = rng.normal(size=(examples, 10)).astype("float32")
    return images, labels, logits


def _adam():
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(2e-3, decay_steps=10**6)
    return keras.optimizers.Adam(schedule)


def _setup(name, build, data):
    """`(model, dataset)` of variant `name` (the model None for `pipeline`)."""
    import keras

    import kdkeras
    from experiments import paired
    from kdkeras import targets as soft_targets

    dataset = soft_targets.soft_target_dataset(
        *data, batch_size=FLAGS["batch-size"].value, seed=0
    )
    spe = FLAGS["steps-per-execution"].value
    crossentropy = keras.losses.CategoricalCrossentropy(from_logits=True)

    def alone(jit_compile):
        model = build()
        model.compile(
            optimizer=_adam(),
            loss=crossentropy,
            jit_compile=jit_compile,
            steps_per_execution=spe,
        )
        return model

    def distiller(jit_compile):
        model = kdkeras.Distiller(student=build(), teacher=build())
        model.compile(
            optimizer=_adam(),
            student_loss_fn=crossentropy,
            alpha=0.5,
            distillation_loss_fn=kdkeras.DIST(temperature=1.0),
            jit_compile=jit_compile,
            steps_per_execution=spe,
        )
        return model

    labels_only = dataset.map(lambda x, targets: (x, targets["labels"]))
    if name == "pipeline":
        return None, dataset
    if name in ("plain", "plain_xla"):
        return alone("auto" if name == "plain" else True), labels_only
    if name in ("distilled", "distilled_xla"):
        return distiller("auto" if name == "distilled" else True), dataset
    student = distiller("auto")
    model = paired.PairedStudents(student, alone(student.jit_compile))
    model.compile(steps_per_execution=spe)
    return model, dataset


def _clocks():
    return time.perf_counter(), time.process_time()


def _epoch_seconds(model, dataset):
    """(wall, process CPU) seconds of one epoch: a `fit` epoch, or one pass
    over the input."""
    import keras

    if model is None:
        start = _clocks()
        for _ in dataset:
            pass
        return tuple(end - begin for end, begin in zip(_clocks(), start, strict=True))

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = _clocks()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = tuple(
                e - b for e, b in zip(_clocks(), self.start, strict=True)
            )

    timer = EpochTimer()
    model.fit(dataset, epochs=1, verbose=0, callbacks=[timer])
    return timer.seconds


def _jit(model):
    if model is None:
        return "-"
    if hasattr(model, "distiller"):
        return f"{model.distiller.jit_compile} / {model.alone.jit_compile}"
    return str(model.jit_compile)


def run():
    unknown = sorted(set(FLAGS.variants) - set(VARIANTS))
    if unknown or not FLAGS.variants:
        raise ValueError(
            f"`--variants` must name variants from {list(VARIANTS)}. "
            f"Received: variants={','.join(FLAGS.variants)[:200]}"
        )
    import tensorflow as tf

    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    import models

    examples = 512 if FLAGS.quick else FLAGS.examples
    repeats = 1 if FLAGS.quick else FLAGS.repeats
    build = getattr(models, STUDENTS[FLAGS.student])
    training_flops = models.count_training_flops(build())
    data = _data(examples)
    load_start = os.getloadavg()
    variants = {}
    for name in FLAGS.variants:
        model, dataset = _setup(name, build, data)
        _epoch_seconds(model, dataset)  # warm-up: tracing, first epoch
        variants[name] = (model, dataset)
    seconds = {name: [] for name in variants}
    names = list(variants)
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            seconds[name].append(_epoch_seconds(*variants[name]))
    load_end = os.getloadavg()

    def rate(name, clock=0):
        students = 2 if name == "paired" else 1
        return students * examples / statistics.median(s[clock] for s in seconds[name])

    print(
        f"{FLAGS.student} student: {training_flops:,d} FLOPs per example's "
        f"training step; {examples} examples per epoch, batch "
        f"{FLAGS['batch-size'].value}, steps_per_execution "
        f"{FLAGS['steps-per-execution'].value}, threads {FLAGS.threads or 'default'}; "
        f"{cpu_name()}; load average {load_start[0]:.1f} -> {load_end[0]:.1f}"
        + (" (machine shared with other jobs)" if load_end[0] > 2.5 else "")
    )
    print()
    print(
        "| variant | jit | samples/s (median) | min-max | GFLOP/s | vs plain "
        "| samples per CPU-second |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in names:
        students = 2 if name == "paired" else 1
        rates = sorted(students * examples / s[0] for s in seconds[name])
        flops = (
            "-" if name == "pipeline" else f"{rate(name) * training_flops / 1e9:.2f}"
        )
        versus = f"{rate(name) / rate('plain'):.2f}" if "plain" in names else "-"
        print(
            f"| {name} | {_jit(variants[name][0])} | {rate(name):,.0f} | "
            f"{rates[0]:,.0f}-{rates[-1]:,.0f} | {flops} | {versus} "
            f"| {rate(name, 1):,.0f} |"
        )
    if {"plain", "distilled", "paired"} <= set(names):
        # Both students, one fit after the other: their times add up.
        print()
        for clock, unit in ((0, "samples/s"), (1, "samples per CPU-second")):
            sequential = 2 / (1 / rate("plain", clock) + 1 / rate("distilled", clock))
            print(
                f"Both students, two separate fits one after the other: "
                f"{sequential:,.0f} {unit}; in one paired step: "
                f"{rate('paired', clock):,.0f} "
                f"({rate('paired', clock) / sequential:.2f}x)."
            )
    if FLAGS.quick:
        print("(--quick: smoke test only, the numbers are not meaningful)")
    print()
    print("Reproduce:")
    print(_command() + (" --quick" if FLAGS.quick else ""))


if __name__ == "__main__":
    cli.run_main("benchmarks.compact_student_throughput", lambda arguments: run())
