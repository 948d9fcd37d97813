"""Training throughput: plain student fit vs keras.distillation vs kdkeras.

Fashion-MNIST, the paper's MLPs (teacher 784-1200-1200-10, student
784-800-800-10), batch 128, Adam. Every variant is built and warmed up
(one full epoch: tracing / XLA compilation) in ONE process, then timed
round-robin (the starting variant rotates every repeat) for `--repeats`
epochs each; the table reports the median samples/s of one `fit` epoch
(timed from `on_epoch_begin` to `on_epoch_end`, so input-pipeline work is
included and the per-`fit` setup is not).

Core variants (the issue's goals are checked on these):
  plain              student `fit` on NumPy arrays, Keras' default jit
  plain_xla          same, `jit_compile=True`
  keras_distillation keras.distillation.Distiller with
                     LogitsDistillation(T, loss=keras.losses.KLDivergence())
  kdkeras_online     kdkeras.Distiller, teacher forward every step
  kdkeras_online_pipelined
                     kdkeras.Distiller fed by online_soft_target_dataset:
                     the teacher runs on every batch, in the prefetched
                     tf.data pipeline instead of inside the step
  kdkeras_cached     kdkeras.Distiller on cached soft targets
                     (kdkeras.targets.soft_target_dataset)
  kdkeras_cached_streamed
                     kdkeras.Distiller on the streamed, sharded cache
                     (kdkeras.cache_soft_targets over a tf.data stream of
                     the same arrays, then kdkeras.soft_target_dataset)
Extra variants (`--variants=all`, or list them): see `VARIANTS` below.
"forcexla" variants set the private `model._jit_compile = True` after
`compile`: Keras turns `jit_compile=True` into False (with a warning) for any
model holding a layer with `supports_jit=False`, and the paper teacher's
`RandomTranslation` jitter is one, although it is an identity in the
teacher's inference-mode forward pass, which XLA compiles fine.

Goals: kdkeras online (either online variant) >= 1.30x keras_distillation; kdkeras_cached >= 1.8x
keras_distillation and >= 0.9x the fastest plain-fit variant;
kdkeras_cached_streamed >= 0.9x kdkeras_cached, same run.

Usage:
  .venv/bin/python -m benchmarks.train_throughput                  # 20k examples
  .venv/bin/python -m benchmarks.train_throughput --examples=60000 --repeats=5
  .venv/bin/python -m benchmarks.train_throughput --variants=all
  .venv/bin/python -m benchmarks.train_throughput \
      --variants=kdkeras_cached,kdkeras_cached_streamed --repeats=7
  .venv/bin/python -m benchmarks.train_throughput --quick          # smoke test
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import shlex  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from absl import flags  # noqa: E402

from experiments import cli as experiments_cli  # noqa: E402
from export import cli  # noqa: E402
from export.measure.environment import cpu_name  # noqa: E402

FLAGS = flags.FLAGS
experiments_cli.define_distillation_flags()
flags.DEFINE_integer("examples", 20000, "Training examples per epoch (<= 60000).")
flags.DEFINE_integer("repeats", 3, "Timed epochs per variant (median reported).")
flags.DEFINE_list("variants", "core", "Comma-separated variant names, 'core' or 'all'.")
flags.DEFINE_integer(
    "steps-per-execution", 1, "Keras steps_per_execution for every variant."
)
flags.DEFINE_bool(
    "quick", False, "Smoke test: 512 examples, 1 timed repeat, core variants."
)
flags.DEFINE_integer(
    "threads",
    0,
    "TensorFlow intra- and inter-op threads (0: TF's default). With 1, the "
    "CPU column measures work per sample with little sensitivity to other "
    "processes on a shared machine.",
)
flags.DEFINE_integer(
    "stream-batch-size",
    1024,
    "kdkeras_cached_streamed: examples per batch of the input stream the "
    "sharded cache is built from and joined with.",
)
flags.DEFINE_bool("verbose", False, "Show tracebacks on errors.")

CORE = (
    "plain",
    "plain_xla",
    "keras_distillation",
    "kdkeras_online",
    "kdkeras_online_pipelined",
    "kdkeras_cached",
    "kdkeras_cached_streamed",
)
# name: (kind, description)
VARIANTS = {
    "plain": ("plain", "student fit, NumPy input, Keras default jit"),
    "plain_xla": ("plain", "student fit, NumPy input, jit_compile=True"),
    "plain_dataset": (
        "plain",
        "student fit, Keras default jit, tf.data index-gather pipeline",
    ),
    "plain_xla_dataset": (
        "plain",
        "student fit, jit_compile=True, tf.data index-gather pipeline",
    ),
    "keras_distillation": (
        "keras",
        "keras.distillation.Distiller, KLDivergence(), Keras default jit",
    ),
    "keras_distillation_forcexla": (
        "keras",
        "keras.distillation.Distiller, KLDivergence(), XLA forced",
    ),
    "kdkeras_online": ("online", "kdkeras.Distiller online, jit 'auto'"),
    "kdkeras_online_nojit": (
        "online",
        "kdkeras.Distiller online, jit_compile=False",
    ),
    "kdkeras_online_forcexla": (
        "online",
        "kdkeras.Distiller online, XLA forced",
    ),
    "kdkeras_online_dataset": (
        "online",
        "kdkeras.Distiller online, jit 'auto', tf.data index-gather pipeline",
    ),
    "kdkeras_online_forcexla_dataset": (
        "online",
        "kdkeras.Distiller online, XLA forced, tf.data index-gather pipeline",
    ),
    "kdkeras_online_pipelined": (
        "online",
        "kdkeras.Distiller + online_soft_target_dataset: teacher forward "
        "(XLA) in the prefetched tf.data pipeline, jit 'auto'",
    ),
    "kdkeras_cached": (
        "cached",
        "kdkeras.Distiller, cached logits, soft_target_dataset, jit 'auto'",
    ),
    "kdkeras_cached_streamed": (
        "cached",
        "kdkeras.Distiller, streamed sharded cache, soft_target_dataset "
        "over a tf.data stream of input batches, jit 'auto'",
    ),
    "kdkeras_cached_nojit": (
        "cached",
        "kdkeras.Distiller, cached logits, soft_target_dataset, jit off",
    ),
    "kdkeras_cached_forcexla": (
        "cached",
        "kdkeras.Distiller, cached logits, soft_target_dataset, XLA forced",
    ),
    "kdkeras_cached_numpy": (
        "cached",
        "kdkeras.Distiller, cached logits as NumPy dict y, jit 'auto'",
    ),
    "kdkeras_cached_slices": (
        "cached",
        "kdkeras.Distiller, cached logits, from_tensor_slices+shuffle+batch",
    ),
}


def _variant_names():
    names = []
    for name in FLAGS.variants:
        if name == "core":
            names += CORE
        elif name == "all":
            names += list(VARIANTS)
        elif name in VARIANTS:
            names.append(name)
        else:
            raise ValueError(
                f"--variants: unknown variant {name!r}; expected 'core', "
                f"'all' or names from {sorted(VARIANTS)}"
            )
    return list(dict.fromkeys(names))


def _command(examples, repeats, names):
    arguments = [
        f"--examples={examples}",
        f"--repeats={repeats}",
        f"--batch-size={FLAGS['batch-size'].value}",
        f"--temperature={FLAGS.temperature:g}",
        f"--alpha={FLAGS.alpha:g}",
        f"--variants={','.join(names)}",
        f"--steps-per-execution={FLAGS['steps-per-execution'].value}",
        f"--threads={FLAGS.threads}",
    ]
    if "kdkeras_cached_streamed" in names:
        arguments.append(f"--stream-batch-size={FLAGS['stream-batch-size'].value}")
    return ".venv/bin/python -m benchmarks.train_throughput " + (
        " ".join(shlex.quote(a) for a in arguments)
    )


def _models():
    try:
        import models

        return models.build_mlp_teacher(seed=0), models.build_mlp_student()
    except ImportError:  # models/ not available: the same architectures.
        import keras

        def mlp(hidden, dropout, jitter, name):
            inputs = keras.Input((28, 28, 1))
            x = inputs
            if jitter:
                x = keras.layers.RandomTranslation(
                    2 / 28,
                    2 / 28,
                    fill_mode="constant",
                    interpolation="nearest",
                )(x)
            x = keras.layers.Flatten()(x)
            if dropout:
                x = keras.layers.Dropout(0.2)(x)
            for units in hidden:
                x = keras.layers.Dense(units, activation="relu")(x)
                if dropout:
                    x = keras.layers.Dropout(0.5)(x)
            return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)

        return (
            mlp((1200, 1200), True, True, "mlp_teacher"),
            mlp((800, 800), False, False, "mlp_student"),
        )


def _gather_dataset(x, y, batch_size, seed):
    """(x, y) batches: shuffled indices, batched, gathered (like Keras)."""
    import tensorflow as tf

    x_tensor, y_tensor = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    indices = tf.data.Dataset.range(len(x)).shuffle(
        len(x), seed=seed, reshuffle_each_iteration=True
    )
    return (
        indices.batch(batch_size)
        .map(
            lambda i: (tf.gather(x_tensor, i), tf.gather(y_tensor, i)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )


def _slices_dataset(x, y, logits, batch_size, seed):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(
        (x, {"labels": y, "teacher_logits": logits})
    )
    return (
        dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def _force_xla(model):
    """XLA despite a `supports_jit=False` layer (used in inference only)."""
    model._jit_compile = True
    model.train_function = None


def _setup(name, x, y, cached):
    """Builds and compiles variant `name`; returns (model, fit arguments).

    `cached`: `{"logits": in-memory cache, "stream": the input stream,
    "shards": the sharded cache of that stream}`.
    """
    import keras

    import kdkeras
    from kdkeras import targets as soft_targets

    teacher_logits = cached["logits"]

    keras.utils.set_random_seed(0)
    teacher, student = _models()
    batch_size = FLAGS["batch-size"].value
    spe = FLAGS["steps-per-execution"].value
    label_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    arrays = {"x": x, "y": y, "batch_size": batch_size}
    kind = VARIANTS[name][0]

    if kind == "plain":
        jit = "auto" if name in ("plain", "plain_dataset") else True
        student.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=label_loss,
            metrics=["accuracy"],
            jit_compile=jit,
            steps_per_execution=spe,
        )
        if name.endswith("_dataset"):
            return student, {"x": _gather_dataset(x, y, batch_size, seed=0)}
        return student, arrays

    if kind == "keras":
        distiller = keras.distillation.Distiller(
            teacher=teacher,
            student=student,
            distillation_losses=keras.distillation.LogitsDistillation(
                temperature=FLAGS.temperature,
                loss=keras.losses.KLDivergence(),
            ),
            student_loss_weight=FLAGS.alpha,
        )
        distiller.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=label_loss,
            metrics=["accuracy"],
            steps_per_execution=spe,
        )
        if name.endswith("_forcexla"):
            _force_xla(distiller)
        return distiller, arrays

    distiller = kdkeras.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        metrics=["accuracy"],
        alpha=FLAGS.alpha,
        temperature=FLAGS.temperature,
        jit_compile=False if name.endswith("_nojit") else "auto",
        steps_per_execution=spe,
    )
    if "_forcexla" in name:
        _force_xla(distiller)
    if name in ("kdkeras_online", "kdkeras_online_nojit", "kdkeras_online_forcexla"):
        return distiller, arrays
    if name in ("kdkeras_online_dataset", "kdkeras_online_forcexla_dataset"):
        return distiller, {"x": _gather_dataset(x, y, batch_size, seed=0)}
    if name == "kdkeras_online_pipelined":
        dataset = kdkeras.online_soft_target_dataset(
            x, y, teacher, batch_size=batch_size, shuffle=True, seed=0
        )
        return distiller, {"x": dataset}
    if name == "kdkeras_cached_numpy":
        targets = {"labels": y, "teacher_logits": teacher_logits}
        return distiller, dict(arrays, y=targets)
    if name == "kdkeras_cached_slices":
        return distiller, {
            "x": _slices_dataset(x, y, teacher_logits, batch_size, seed=0)
        }
    if name == "kdkeras_cached_streamed":
        dataset = kdkeras.soft_target_dataset(
            cached["shards"],
            batch_size=batch_size,
            shuffle=True,
            seed=0,
        )
        return distiller, {"x": dataset}
    dataset = soft_targets.soft_target_dataset(
        x, y, teacher_logits, batch_size=batch_size, shuffle=True, seed=0
    )
    return distiller, {"x": dataset}


def _epoch_seconds(model, fit_arguments):
    """(wall seconds, process CPU seconds) of one `fit` epoch."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = (
                time.perf_counter() - self.start[0],
                time.process_time() - self.start[1],
            )

    timer = EpochTimer()
    if "y" not in fit_arguments:  # A tf.data pipeline shuffles by itself.
        fit_arguments = dict(fit_arguments, shuffle=False)
    model.fit(**fit_arguments, epochs=1, verbose=0, callbacks=[timer])
    return timer.seconds


def _teacher_forward_rate(teacher, x, repeats):
    """Median samples/s of the teacher's inference forward pass alone.

    XLA-compiled, over `x` in batches of `--batch-size`: the work an online
    distillation step adds to a student training step.
    """
    import tensorflow as tf

    forward = tf.function(
        lambda batch: teacher(batch, training=False), jit_compile=True
    )
    size = FLAGS["batch-size"].value
    batches = [tf.constant(x[i : i + size]) for i in range(0, len(x), size)]
    forward(batches[0]).numpy()  # trace the full and the last batch shapes
    forward(batches[-1]).numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            logits = forward(batch)
        logits.numpy()
        rates.append(len(x) / (time.perf_counter() - start))
    return statistics.median(rates)


def _matmul_work(teacher, student):
    """Multiply-accumulates per example: (student training step, teacher forward).

    Counts the Dense kernels only (the MLPs' work; biases, activations, the loss
    and the optimizer are small beside them). A training step is the forward
    pass, the kernel gradients (as many MACs again) and the input gradients of
    every Dense layer but the first (nothing upstream needs that one).
    """
    import keras

    def kernels(model):
        return [
            int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
            for layer in model.layers
            if isinstance(layer, keras.layers.Dense)
        ]

    student_kernels = kernels(student)
    forward = sum(student_kernels)
    step = 3 * forward - (student_kernels[0] if student_kernels else 0)
    return step, sum(kernels(teacher))


def _resolved_jit(model):
    return getattr(model, "jit_compile", "?")


def _ratio(value, reference):
    return f"{value / reference:.2f}" if reference else "n/a"


def run():
    examples = 512 if FLAGS.quick else FLAGS.examples
    repeats = 1 if FLAGS.quick else FLAGS.repeats
    names = list(CORE) if FLAGS.quick else _variant_names()
    if not 1 <= examples <= 60000:
        raise ValueError(f"--examples must be in [1, 60000], got {examples}")
    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {repeats}")
    if FLAGS["batch-size"].value < 1:
        raise ValueError(f"--batch-size must be >= 1, got {FLAGS['batch-size'].value}")
    if FLAGS.threads < 0:
        raise ValueError(f"--threads must be >= 0, got {FLAGS.threads}")
    if FLAGS["stream-batch-size"].value < 1:
        raise ValueError(
            f"--stream-batch-size must be >= 1, got {FLAGS['stream-batch-size'].value}"
        )

    import tensorflow as tf

    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    with tempfile.TemporaryDirectory() as folder:
        _run_in(folder, examples, repeats, names)


def _caches(folder, teacher, x, y, names):
    """The in-memory and (if a variant needs it) the sharded cache of x.

    Returns `(cached, seconds)`: the `_setup` argument, and the one-off
    seconds of building each cache.
    """
    import tensorflow as tf

    import kdkeras
    from kdkeras import targets as soft_targets

    start = time.perf_counter()
    cached = {
        "logits": soft_targets.cache_soft_targets(
            teacher,
            x,
            os.path.join(folder, "targets.npz"),
            batch_size=1024,
            storage="memory",
        ).logits
    }
    seconds = {"in-memory": time.perf_counter() - start}
    if "kdkeras_cached_streamed" in names:
        start = time.perf_counter()
        cached["stream"] = tf.data.Dataset.from_tensor_slices((x, y)).batch(
            FLAGS["stream-batch-size"].value
        )
        cached["shards"] = kdkeras.cache_soft_targets(
            teacher, cached["stream"], os.path.join(folder, "shards")
        )
        seconds["sharded"] = time.perf_counter() - start
    return cached, seconds


def _run_in(folder, examples, repeats, names):
    import keras
    import tensorflow as tf

    from models import data

    load_before = os.getloadavg()
    (x, y), _ = data.load_fashion_mnist(limit_train=examples, limit_test=1)

    # One-off cost of the cached variants: the teacher's forward over x.
    keras.utils.set_random_seed(0)
    teacher, _ = _models()
    cached, cache_seconds = _caches(folder, teacher, x, y, names)

    setups = {}
    for name in names:
        start = time.perf_counter()
        model, fit_arguments = _setup(name, x, y, cached)
        _epoch_seconds(model, fit_arguments)  # warm-up: trace / compile
        setups[name] = (model, fit_arguments)
        print(
            f"warm-up {name}: {time.perf_counter() - start:.1f} s "
            f"(jit_compile={_resolved_jit(model)})",
            flush=True,
        )

    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            model, fit_arguments = setups[name]
            wall_seconds, cpu_seconds = _epoch_seconds(model, fit_arguments)
            wall[name].append(examples / wall_seconds)
            cpu[name].append(examples / cpu_seconds)
    teacher_rate = _teacher_forward_rate(teacher, x, repeats)
    load_after = os.getloadavg()

    # Three statistics: the median samples/s (the reported figure), the best
    # epoch (interference from other processes only slows an epoch down, so
    # the best is the least disturbed), and the median samples per CPU-second
    # of this process (insensitive to time slicing on a contended machine).
    statistic = {
        "median": {n: statistics.median(v) for n, v in wall.items()},
        "best": {n: max(v) for n, v in wall.items()},
        "cpu": {n: statistics.median(v) for n, v in cpu.items()},
    }

    def reference(kind_names, which):
        values = [statistic[which][n] for n in kind_names]
        return max(values, default=None)

    keras_names = [n for n in names if n == "keras_distillation"]
    plain_names = [n for n in names if VARIANTS[n][0] == "plain"]
    keras_rate = {w: reference(keras_names, w) for w in statistic}
    fastest_plain = {w: reference(plain_names, w) for w in statistic}

    contended = max(load_before[0], load_after[0]) > 0.75 * (os.cpu_count() or 1)
    print()
    print(
        f"## Training throughput: {examples} Fashion-MNIST examples, batch "
        f"{FLAGS['batch-size'].value}, T={FLAGS.temperature:g}, alpha={FLAGS.alpha:g}, "
        f"{repeats} timed epoch(s) per variant after a warm-up epoch"
        + (f", TF threads {FLAGS.threads}" if FLAGS.threads else "")
    )
    print()
    print(
        f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs; "
        f"TF {tf.__version__}, Keras {keras.__version__}; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after"
        + (
            " (CPU contended: trust 'best' and 'CPU' more than 'median')"
            if contended
            else ""
        )
    )
    print(
        f"Cached soft targets: teacher forward over {examples} examples "
        f"(batch 1024, one-off) took {cache_seconds['in-memory']:.2f} s."
    )
    if "sharded" in cache_seconds:
        print(
            "Streamed sharded cache (cache_soft_targets over a stream of "
            f"batches of {FLAGS['stream-batch-size'].value}, one-off): "
            f"{cache_seconds['sharded']:.2f} s."
        )
    print()
    print(
        "samples/s: median and best epoch (wall clock); CPU: median samples "
        "per CPU-second of this process. Ratios: median / best / CPU."
    )
    print()
    print(
        "| variant | what | jit | samples/s median | best | min | CPU "
        "| vs keras.distillation | vs fastest plain fit |"
    )
    print("|---|---|---|---|---|---|---|---|---|")

    def ratios(name, references):
        return " / ".join(_ratio(statistic[w][name], references[w]) for w in statistic)

    for name in names:
        print(
            f"| {name} | {VARIANTS[name][1]} | "
            f"{_resolved_jit(setups[name][0])} | "
            f"{statistic['median'][name]:.0f} | {statistic['best'][name]:.0f} "
            f"| {min(wall[name]):.0f} | {statistic['cpu'][name]:.0f} | "
            f"{ratios(name, keras_rate)} | {ratios(name, fastest_plain)} |"
        )
    print()

    goals = []
    for online in ("kdkeras_online", "kdkeras_online_pipelined"):
        if keras_names and online in names:
            goals.append(
                (f"{online} >= 1.30x keras_distillation", online, keras_rate, 1.30)
            )
    if keras_names and "kdkeras_cached" in names:
        goals.append(
            (
                "kdkeras_cached >= 1.80x keras_distillation",
                "kdkeras_cached",
                keras_rate,
                1.80,
            )
        )
    if plain_names and "kdkeras_cached" in names:
        goals.append(
            (
                "kdkeras_cached within 10% of the fastest plain fit",
                "kdkeras_cached",
                fastest_plain,
                0.90,
            )
        )
    if "kdkeras_cached" in names and "kdkeras_cached_streamed" in names:
        in_memory = {w: statistic[w]["kdkeras_cached"] for w in statistic}
        goals.append(
            (
                "kdkeras_cached_streamed >= 0.90x kdkeras_cached (same run)",
                "kdkeras_cached_streamed",
                in_memory,
                0.90,
            )
        )
    for text, name, references, target in goals:
        measured = {w: statistic[w][name] / references[w] for w in statistic}
        verdict = "PASS" if measured["median"] >= target else "MISS"
        print(
            f"{verdict}: {text} (median {measured['median']:.2f}x; "
            f"best {measured['best']:.2f}x, CPU {measured['cpu']:.2f}x)"
        )
    if "plain_xla" in names and keras_names:
        # Online, a step cannot cost less than a student step plus a teacher
        # forward pass; both measured here, in this run.
        floor = 1.0 / (1.0 / statistic["median"]["plain_xla"] + 1.0 / teacher_rate)
        print(
            f"Online floor: teacher forward alone (XLA, batch "
            f"{FLAGS['batch-size'].value}) {teacher_rate:.0f} samples/s; plus the "
            f"plain_xla student step: {floor:.0f} samples/s = "
            f"{floor / keras_rate['median']:.2f}x keras_distillation "
            f"(kdkeras_online reaches "
            f"{statistic['median'].get('kdkeras_online', float('nan')) / floor:.2f}"
            "x this floor). The ceiling of any cached-target distiller is the "
            f"fastest plain fit: {fastest_plain['median'] / keras_rate['median']:.2f}"
            "x keras_distillation."
        )
    step_macs, teacher_macs = _matmul_work(*_models())
    print(
        f"Matmul work per example: student training step {step_macs / 1e6:.2f} M "
        f"MACs, teacher forward {teacher_macs / 1e6:.2f} M. keras.distillation "
        f"and any exact online step do both ({(step_macs + teacher_macs) / 1e6:.2f} M); "
        "a cached-target step or a plain fit does the student step only, so at "
        "equal kernel speed it can be at most "
        f"{(step_macs + teacher_macs) / step_macs:.2f}x keras_distillation, and "
        "an online step 1.00x."
    )
    if FLAGS.quick:
        print("(--quick: smoke test only, the numbers are not meaningful)")
    print()
    print("Reproduce:")
    print(_command(examples, repeats, names) + (" --quick" if FLAGS.quick else ""))


if __name__ == "__main__":
    cli.run_main("benchmarks.train_throughput", lambda arguments: run())
