"""The results table: teacher, student alone, and distilled students.

    python -m kdkeras.experiments.table            # full run, writes RESULTS.md
    python -m kdkeras.experiments.table --quick    # one-epoch smoke run on a slice

Trains on Fashion-MNIST, in one run and with the same recipe (epochs,
schedule, augmentation, seeds): a teacher (`--teacher`: a CNN, or the
paper's 1200-1200 MLP with dropout); an ensemble of such teachers
(`kdkeras.teachers.Ensemble`); the 800-800 MLP student alone; the student
distilled with `kdkeras.Distiller`; the same student distilled with
`keras.distillation.Distiller` configured correctly; and the student
distilled with kdkeras from the ensemble. Students run over several seeds
(mean ± std). RESULTS.md records test errors, parameters, training time and
the fraction of the student→teacher error gap that distillation closed:
`(alone - distilled) / (alone - teacher)`.

With `--augment`, every student sees the same shifted/mirrored copy of the
training set each epoch, and the teacher's soft targets are computed on
exactly those images (consistent augmentation); it is off by default because
it made the 800-800 MLP worse in 12 epochs (1081 test errors distilled, see
RESULTS.md). kdkeras reads the teacher's soft targets from a cache computed
once per epoch and shared by all seeds; keras.distillation runs the teacher on
every batch.
"""

import dataclasses
import datetime
import os
import platform
import shlex
import statistics
import sys
import time

from absl import app
from absl import flags

from kdkeras.experiments import report

FLAGS = flags.FLAGS


def define_flags():
    """Defines the command-line flags (only when run as a program, so the
    experiments' modules can be imported together)."""
    flags.DEFINE_integer("epochs", 10, "Epochs of every student run.")
    flags.DEFINE_integer("teacher_epochs", 10, "Epochs of every teacher.")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Student seeds (mean ± std).")
    flags.DEFINE_enum(
        "teacher", "cnn", list(TEACHERS),
        "Teacher architecture: 'cnn' (models.build_cnn_teacher) or 'mlp', the "
        "paper's 784-1200-1200-10 MLP with dropout 0.1 on the input and 0.3 "
        "on the hidden layers, no input jitter (models.build_mlp_teacher).",
    )
    flags.DEFINE_integer("ensemble_size", 3, "Teachers in the ensemble.")
    flags.DEFINE_enum(
        "ensemble_mean", "arithmetic", ["arithmetic", "geometric"],
        "How the ensemble averages its members.",
    )
    flags.DEFINE_float("temperature", 4.0, "Softmax temperature T.")
    flags.DEFINE_float("alpha", 0.1, "Weight of the hard-label loss.")
    flags.DEFINE_integer("batch_size", 128, "Batch size.")
    flags.DEFINE_float("learning_rate", 1e-3, "Adam's initial learning rate.")
    flags.DEFINE_enum(
        "schedule", "cosine", ["cosine", "constant"], "Learning-rate schedule."
    )
    flags.DEFINE_boolean(
        "augment", False,
        "Shift (±2 px) and mirror each epoch's training images, the same images "
        "for teacher and student.",
    )
    flags.DEFINE_enum(
        "teacher_schedule", "cosine", ["cosine", "constant"],
        "Learning-rate schedule of the teachers.",
    )
    flags.DEFINE_boolean(
        "teacher_augment", False,
        "Augment the teachers' training images too (slower to converge).",
    )
    flags.DEFINE_integer("limit_train", None, "Use the first N training examples.")
    flags.DEFINE_integer("limit_test", None, "Use the first N test examples.")
    flags.DEFINE_boolean(
        "quick", False,
        "Smoke run: 1 epoch, 1 seed, 2 ensemble members, 2000 train / 1000 test "
        "examples (explicit flags still win).",
    )
    flags.DEFINE_string("output", "RESULTS.md", "Markdown file to write.")
    flags.DEFINE_string(
        "cache_dir", "",
        "Folder caching trained teachers (.keras) between runs; empty: none.",
    )
    flags.DEFINE_boolean("verbose", False, "Progress output and tracebacks.")
    flags.DEFINE_integer(
        "jobs", 1,
        "Seeds trained at once, each in its own process with CPUs/jobs "
        "TensorFlow threads (the teachers are trained or loaded first).",
    )
    flags.DEFINE_integer(
        "threads", 0, "TensorFlow intra-/inter-op threads (0: TF's default)."
    )
    flags.DEFINE_string(
        "worker_json", "",
        "Internal (used by --jobs): write this process's rows as JSON here "
        "instead of the markdown file.",
    )


QUICK = {
    "epochs": 1,
    "teacher_epochs": 1,
    "seeds": ["0"],
    "ensemble_size": 2,
    "limit_train": 2000,
    "limit_test": 1000,
}

SECTION = "table"
SETTINGS = (
    "epochs", "teacher_epochs", "seeds", "teacher", "ensemble_size", "ensemble_mean",
    "temperature", "alpha", "batch_size", "learning_rate", "schedule",
    "augment", "teacher_schedule", "teacher_augment", "limit_train", "limit_test", "cache_dir",
)

ROW_TEACHER = "Teacher"
ROW_ENSEMBLE = "Teacher: ensemble"
ROW_ALONE = "Student alone"
ROW_KDKERAS = "Student, kdkeras.Distiller"
ROW_KERAS = "Student, keras.distillation.Distiller"
ROW_KDKERAS_ENSEMBLE = "Student, kdkeras.Distiller, ensemble teacher"
ROW_NAMES = (
    ROW_TEACHER, ROW_ENSEMBLE, ROW_ALONE, ROW_KDKERAS, ROW_KERAS,
    ROW_KDKERAS_ENSEMBLE,
)


@dataclasses.dataclass(frozen=True)
class TeacherKind:
    """How the table builds and names one kind of teacher."""

    label: str  # e.g. "CNN", in row descriptions
    builder: str  # the `models` function, in row descriptions
    build: object  # callable (seed, name) -> keras.Model
    # XLA for its training. Off for both: XLA convolutions are slow on CPU, and
    # so are XLA's dropout random draws (4x slower for the MLP teacher).
    jit_compile: bool
    cache_name: str  # names the trained teachers in --cache_dir


def _build_cnn(seed, name):
    import models

    return models.build_cnn_teacher(seed=seed, name=name)


def _build_mlp(seed, name):
    import models

    return models.build_mlp_teacher(
        input_dropout=0.1, hidden_dropout=0.3, jitter_pixels=0, seed=seed, name=name
    )


TEACHERS = {
    "cnn": TeacherKind(
        "CNN", "`models.build_cnn_teacher()`", _build_cnn, False, "cnn_teacher"
    ),
    # The paper's teacher with lighter dropout and no jitter: its 0.2/0.5
    # dropout made 1097 test errors in 20 epochs, 0.1/0.3 made 992.
    "mlp": TeacherKind(
        "MLP 1200-1200",
        "`models.build_mlp_teacher(input_dropout=0.1, hidden_dropout=0.3, "
        "jitter_pixels=0)` (784-1200-1200-10)",
        _build_mlp,
        False,
        "mlp_teacher_d0.1-0.3",
    ),
}


@dataclasses.dataclass
class Row:
    """One line of the table: errors and seconds over seeds."""

    name: str
    description: str
    parameters: int
    errors: list = dataclasses.field(default_factory=list)
    seconds: list = dataclasses.field(default_factory=list)
    teacher: str = ""  # name of the row whose errors define the gap

    @property
    def mean_errors(self):
        return statistics.fmean(self.errors)


def _mean_std(values, digits=0):
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def gap_closed(alone_errors, distilled_errors, teacher_errors):
    """Fraction of the student→teacher error gap closed by distillation.

    `(alone - distilled) / (alone - teacher)`; None when the teacher is not
    better than the student alone (no gap to close).

    Example:

    >>> round(gap_closed(146, 74, 67), 2)  # Hinton et al. 2015, MNIST
    0.91
    """
    gap = alone_errors - teacher_errors
    if gap <= 0:
        return None
    return (alone_errors - distilled_errors) / gap


def _settings():
    """The run's settings: flags, with --quick filling unset ones."""
    settings = {name: FLAGS[name].value for name in SETTINGS}
    if FLAGS.quick:
        for name, value in QUICK.items():
            if not FLAGS[name].present:
                settings[name] = value
    try:
        settings["seeds"] = [int(seed) for seed in settings["seeds"]]
    except ValueError:
        raise ValueError(
            f"`--seeds` must be a comma-separated list of ints. "
            f"Received: {','.join(settings['seeds'])}"
        ) from None
    if not settings["seeds"]:
        raise ValueError("`--seeds` must name at least one seed.")
    settings["jobs"] = FLAGS.jobs
    for name in ("epochs", "teacher_epochs", "ensemble_size", "jobs"):
        if settings[name] < 1:
            raise ValueError(
                f"`--{name}` must be >= 1. Received: {settings[name]}"
            )
    return settings


def run(settings, log=print, on_seed=None):
    """Trains everything; returns `(rows, info)` for `render_markdown`.

    Args:
        settings: Dict of the flag values (see `SETTINGS`).
        log: Callable receiving progress messages.
        on_seed: Optional callable `(rows, info)` called after each seed
            (e.g. to write partial results).
    """
    import keras
    import numpy as np

    import models
    from models import data
    from kdkeras import teachers
    from kdkeras.experiments import training
    from kdkeras.experiments.recipe import Recipe

    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(
        settings["limit_train"], settings["limit_test"]
    )
    common = dict(
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        schedule=settings["schedule"],
        augment=settings["augment"],
        temperature=settings["temperature"],
        alpha=settings["alpha"],
    )
    student_recipe = Recipe(epochs=settings["epochs"], **common)
    teacher_recipe = Recipe(
        epochs=settings["teacher_epochs"],
        **dict(
            common,
            augment=settings["teacher_augment"],
            schedule=settings["teacher_schedule"],
        ),
    )

    # Teachers: member 0 is "the" teacher; the ensemble adds the others.
    kind = TEACHERS[settings["teacher"]]
    members, teacher_seconds = [], []
    for index in range(settings["ensemble_size"]):
        log(f"teacher {index}: training ({teacher_recipe.epochs} epochs)")
        path = training.teacher_cache_path(
            settings["cache_dir"], kind.cache_name, index, teacher_recipe,
            len(x_train),
        )
        model, seconds = training.cached_teacher(
            path,
            lambda index=index: kind.build(
                index, f"{settings['teacher']}_teacher_{index}"
            ),
            lambda model, index=index: training.train_classifier(
                model, x_train, y_train, teacher_recipe, seed=index,
                jit_compile=kind.jit_compile,
            ),
        )
        members.append(model)
        teacher_seconds.append(seconds)
    teacher = members[0]
    ensemble = teachers.Ensemble(members, mean=settings["ensemble_mean"])

    # The ensemble's soft targets below combine cached member logits with
    # the Ensemble's own EnsembleMean layer; check that equals the model.
    member_test_logits = [
        training.predict_logits(member, x_test) for member in members
    ]
    combined = keras.ops.convert_to_numpy(
        teachers.EnsembleMean(settings["ensemble_mean"])(member_test_logits)
    )
    if not np.allclose(
        combined, training.predict_logits(ensemble, x_test), atol=1e-4
    ):
        raise RuntimeError(
            "Ensemble outputs differ from EnsembleMean of its members' logits."
        )

    rows = {
        ROW_TEACHER: Row(
            ROW_TEACHER,
            f"{kind.label}: {kind.builder}, seed 0",
            teacher.count_params(),
            [training.count_errors(teacher, x_test, y_test)],
            [s for s in teacher_seconds[:1] if s is not None],
        ),
        ROW_ENSEMBLE: Row(
            ROW_ENSEMBLE,
            f"`kdkeras.teachers.Ensemble`, {len(members)} {kind.label} teachers "
            f"(seeds 0–{len(members) - 1}), {settings['ensemble_mean']} mean",
            ensemble.count_params(),
            [training.count_errors(ensemble, x_test, y_test)],
            [sum(s for s in teacher_seconds if s is not None)]
            if all(s is not None for s in teacher_seconds)
            else [],
        ),
    }
    log(
        f"teacher errors {rows[ROW_TEACHER].errors[0]}, "
        f"ensemble errors {rows[ROW_ENSEMBLE].errors[0]}"
    )

    # Soft targets on every epoch's augmented images, computed once (not
    # here when no seed trains: `run_parallel`'s workers compute their own).
    teacher_logits = ensemble_logits = None
    single_cache_seconds = cache_seconds = 0.0
    if settings["seeds"]:
        start = time.perf_counter()
        teacher_logits = training.teacher_logits_by_epoch(
            teacher, x_train, student_recipe
        )
        single_cache_seconds = time.perf_counter() - start
        member_logits = [teacher_logits] + [
            training.teacher_logits_by_epoch(member, x_train, student_recipe)
            for member in members[1:]
        ]
        mean_layer = teachers.EnsembleMean(settings["ensemble_mean"])
        ensemble_logits = [
            keras.ops.convert_to_numpy(
                mean_layer([logits[epoch] for logits in member_logits])
            )
            for epoch in range(student_recipe.epochs)
        ]
        cache_seconds = time.perf_counter() - start

    student_parameters = models.build_mlp_student().count_params()
    description = "`models.build_mlp_student()` (784-800-800-10)"
    rows[ROW_ALONE] = Row(ROW_ALONE, description + ", labels only",
                          student_parameters)
    rows[ROW_KDKERAS] = Row(
        ROW_KDKERAS, description + f", {kind.label} teacher, cached soft targets",
        student_parameters, teacher=ROW_TEACHER,
    )
    rows[ROW_KERAS] = Row(
        ROW_KERAS,
        description + f", {kind.label} teacher, `LogitsDistillation(T, "
        "KLDivergence())`, teacher run per batch",
        student_parameters, teacher=ROW_TEACHER,
    )
    rows[ROW_KDKERAS_ENSEMBLE] = Row(
        ROW_KDKERAS_ENSEMBLE, description + ", ensemble teacher, cached soft "
        "targets", student_parameters, teacher=ROW_ENSEMBLE,
    )
    info = {
        "train_size": len(x_train),
        "test_size": len(x_test),
        "student_recipe": student_recipe,
        "teacher_recipe": teacher_recipe,
        "seeds": settings["seeds"],
        "all_seeds": settings["seeds"],
        "single_cache_seconds": single_cache_seconds,
        "cache_seconds": cache_seconds,
        "teachers_cached": any(s is None for s in teacher_seconds),
        "teacher_label": kind.label,
    }
    for seed in settings["seeds"]:
        runs = (
            (ROW_ALONE, lambda student: training.train_classifier(
                student, x_train, y_train, student_recipe, seed,
                jit_compile=True)),
            (ROW_KDKERAS, lambda student: training.distill_with_kdkeras(
                student, teacher, x_train, y_train, teacher_logits,
                student_recipe, seed)),
            (ROW_KERAS, lambda student: training.distill_with_keras(
                student, teacher, x_train, y_train, student_recipe, seed)),
            (ROW_KDKERAS_ENSEMBLE, lambda student: training.distill_with_kdkeras(
                student, ensemble, x_train, y_train, ensemble_logits,
                student_recipe, seed)),
        )
        for name, train in runs:
            keras.utils.set_random_seed(seed)
            student = models.build_mlp_student()
            seconds = train(student)
            errors = training.count_errors(student, x_test, y_test)
            rows[name].errors.append(errors)
            rows[name].seconds.append(seconds)
            log(f"seed {seed}: {name}: {errors} errors, {seconds:.0f} s")
        if on_seed is not None:
            done = settings["seeds"][: len(rows[ROW_ALONE].errors)]
            on_seed([rows[name] for name in ROW_NAMES], dict(info, seeds=done))

    return [rows[name] for name in ROW_NAMES], info


def _command():
    arguments = [a for a in sys.argv[1:]]
    return "python -m kdkeras.experiments.table" + (
        " " + " ".join(shlex.quote(a) for a in arguments) if arguments else ""
    )


def render_markdown(rows, info, command):
    """RESULTS.md text for `rows` (from `run`)."""
    import keras
    import tensorflow as tf

    by_name = {row.name: row for row in rows}
    partial = []
    if len(info["seeds"]) < len(info["all_seeds"]):
        partial = [
            f"**Partial results: {len(info['seeds'])} of "
            f"{len(info['all_seeds'])} seeds finished; the run is still going.**",
            "",
        ]
    alone = by_name[ROW_ALONE]
    lines = [
        "## Distillation on Fashion-MNIST: the results table",
        "",
        *partial,
        f"Reproduce with `{command}`",
        f"(written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"{platform.machine()} with {os.cpu_count()} CPUs, shared with other "
        "jobs, so times are indicative).",
        "",
        f"Data: {info['train_size']} training and {info['test_size']} test "
        "examples. Students: "
        f"{info['student_recipe'].describe()}; seeds "
        f"{', '.join(map(str, info['seeds']))} (mean ± std over seeds). "
        f"Teachers: {_teacher_text(info['teacher_recipe'])}.",
        "",
        "| model | how | test errors | parameters | training time (s) | gap closed |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        gap = "—"
        if row.teacher:
            closed = gap_closed(
                alone.mean_errors, row.mean_errors,
                by_name[row.teacher].mean_errors,
            )
            gap = "n/a (teacher not better)" if closed is None else f"{closed:.0%}"
        elif row.name == ROW_ALONE:
            gap = "0% (reference)"
        seconds = _mean_std(row.seconds) if row.seconds else "cached"
        lines.append(
            f"| {row.name} | {row.description} | {_mean_std(row.errors, 1 if len(row.errors) > 1 else 0)} "
            f"| {row.parameters:,} | {seconds} | {gap} |"
        )
    lines += [
        "",
        "Gap closed = (student alone − distilled) / (student alone − its "
        "teacher), on mean test errors; the ensemble student is measured "
        "against the ensemble.",
        "",
        "Per-seed test errors:",
        "",
    ]
    for row in rows:
        lines.append(f"- {row.name}: {', '.join(map(str, row.errors))}")
    augmentation_note = (
        "- Every epoch all students see the same shifted/mirrored copy of the "
        "training set, and the teacher's soft targets are computed on exactly "
        "those images (consistent augmentation)."
        if info["student_recipe"].augment
        else "- No augmentation: every epoch uses the original training images."
    )
    lines += [
        "",
        "Notes:",
        "",
        augmentation_note,
        "- kdkeras reads the teacher's logits from a cache computed once "
        + ("per epoch " if info["student_recipe"].augment else "")
        + "for all seeds "
        f"({info['single_cache_seconds']:.0f} s for the "
        f"{info.get('teacher_label', 'CNN')} teacher, "
        f"{info['cache_seconds']:.0f} s including the ensemble members; not "
        "in the training-time column). keras.distillation cannot take cached "
        "soft targets and runs the teacher on every batch.",
        "- keras.distillation is configured correctly: "
        "`LogitsDistillation(temperature=T, loss=keras.losses.KLDivergence())` "
        "and a from-logits cross-entropy instance as the student loss, "
        "`student_loss_weight=alpha`.",
    ]
    if info.get("parallel"):
        jobs, threads = info["parallel"]
        lines.append(
            f"- Seeds ran {jobs} at a time, each in its own process with "
            f"{threads} TensorFlow thread{'s' if threads > 1 else ''} "
            "(`--jobs`), so a row's training time is per process."
        )
    if info["teachers_cached"]:
        lines.append(
            "- Teachers were loaded from `--cache_dir` (trained by an earlier "
            "run with the same settings), so teacher times are not shown."
        )
    return "\n".join(lines) + "\n"


def _teacher_text(recipe):
    text = recipe.describe()
    return text.rsplit(", T=", 1)[0]


def _worker_command(settings, seed, threads, json_path):
    """The command line of one `--jobs` worker: these settings, one seed."""
    arguments = [sys.executable, "-m", "kdkeras.experiments.table"]
    for name in SETTINGS:
        value = settings[name]
        if name == "seeds":
            value = [seed]
        if value is None:
            continue
        if isinstance(value, bool):
            arguments.append(f"--{name}" if value else f"--no{name}")
        elif isinstance(value, list):
            arguments.append(f"--{name}={','.join(map(str, value))}")
        else:
            arguments.append(f"--{name}={value}")
    return arguments + [f"--threads={threads}", f"--worker_json={json_path}"]


def run_parallel(settings, jobs, log=print, on_seed=None):
    """`run` with up to `jobs` seeds at once, one process each.

    The teachers are trained (or loaded) here first and cached in
    `settings["cache_dir"]` (a temporary folder when empty), so every worker
    loads the same teachers. Each worker runs `run` for one seed with
    `cpu_count // jobs` TensorFlow threads and writes its rows as JSON.
    """
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kdkeras-table-") as scratch:
        settings = dict(settings, cache_dir=settings["cache_dir"] or scratch)
        rows, info = run(dict(settings, seeds=[]), log=log)
        by_name = {row.name: row for row in rows}
        threads = max(1, (os.cpu_count() or 1) // jobs)
        pending = list(settings["seeds"])
        running, results = {}, {}
        while pending or running:
            while pending and len(running) < jobs:
                seed = pending.pop(0)
                json_path = os.path.join(scratch, f"seed{seed}.json")
                command = _worker_command(settings, seed, threads, json_path)
                log(f"seed {seed}: started in its own process ({threads} threads)")
                # stderr to a file, not a pipe: a full pipe would block the worker.
                with open(json_path + ".log", "w") as stderr:
                    process = subprocess.Popen(
                        command, stdout=subprocess.DEVNULL, stderr=stderr
                    )
                running[seed] = (process, json_path)
            time.sleep(1.0)
            for seed, (process, json_path) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[seed]
                if process.returncode != 0:
                    with open(json_path + ".log", encoding="utf-8") as stream:
                        errors = stream.read().strip().splitlines()
                    for other, _ in running.values():
                        other.kill()
                    raise RuntimeError(
                        f"the worker for seed {seed} failed: "
                        f"{errors[-1] if errors else process.returncode}"
                    )
                with open(json_path, encoding="utf-8") as stream:
                    results[seed] = json.load(stream)
                for name, values in results[seed]["rows"].items():
                    log(f"seed {seed}: {name}: {values['errors'][0]} errors, "
                        f"{values['seconds'][0]:.0f} s")
                if on_seed is not None:
                    on_seed(*_merge(by_name, info, settings, results))
        rows, info = _merge(by_name, info, settings, results)
        return rows, dict(info, parallel=(jobs, threads))


def _merge(by_name, info, settings, results):
    """Rows and info with the finished workers' seeds, in seed order."""
    rows = {name: dataclasses.replace(row) for name, row in by_name.items()}
    done = [seed for seed in settings["seeds"] if seed in results]
    for name in (ROW_ALONE, ROW_KDKERAS, ROW_KERAS, ROW_KDKERAS_ENSEMBLE):
        rows[name].errors, rows[name].seconds = [], []
        for seed in done:
            values = results[seed]["rows"][name]
            rows[name].errors += values["errors"]
            rows[name].seconds += values["seconds"]
    merged = dict(info, seeds=done, all_seeds=settings["seeds"])
    if done:
        merged["single_cache_seconds"] = results[done[0]]["single_cache_seconds"]
        merged["cache_seconds"] = results[done[0]]["cache_seconds"]
    return [rows[name] for name in ROW_NAMES], merged


def _write_worker_json(path, rows, info):
    import json

    students = (ROW_ALONE, ROW_KDKERAS, ROW_KERAS, ROW_KDKERAS_ENSEMBLE)
    payload = {
        "rows": {
            row.name: {"errors": row.errors, "seconds": row.seconds}
            for row in rows
            if row.name in students
        },
        "single_cache_seconds": info["single_cache_seconds"],
        "cache_seconds": info["cache_seconds"],
    }
    report.write_atomically(path, json.dumps(payload))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        settings = _settings()
        if FLAGS.threads:
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
            tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
        log = (
            (lambda message: print(message, flush=True))
            if FLAGS.verbose
            else (lambda message: None)
        )
        start = time.perf_counter()
        command = _command()
        timed_log = lambda m: log(f"[{time.perf_counter() - start:6.0f} s] {m}")  # noqa: E731

        if FLAGS.worker_json:
            rows, info = run(settings, log=timed_log)
            _write_worker_json(FLAGS.worker_json, rows, info)
            return 0

        def write(rows, info):
            report.update_section(
                FLAGS.output, SECTION, render_markdown(rows, info, command)
            )

        if settings["jobs"] > 1 and len(settings["seeds"]) > 1:
            rows, info = run_parallel(
                settings, settings["jobs"], log=timed_log, on_seed=write
            )
        else:
            rows, info = run(settings, log=timed_log, on_seed=write)
        write(rows, info)
    except (ValueError, TypeError, RuntimeError, OSError) as error:
        if FLAGS.verbose:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {FLAGS.output}")
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
