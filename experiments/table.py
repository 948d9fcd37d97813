"""The results table: teacher, student alone, and distilled students.

    python -m experiments.table            # full run, writes RESULTS.md
    python -m experiments.table --quick    # one-epoch smoke run on a slice

Trains on Fashion-MNIST (`experiments.table_runs`), in one run and with the
same recipe (epochs, schedule, augmentation, seeds): a teacher (`--teacher`:
a CNN, or the paper's 1200-1200 MLP with dropout); an ensemble of such
teachers (`kdkeras.teachers.Ensemble`); the 800-800 MLP student alone; the
student distilled with `kdkeras.Distiller`; the same student distilled with
`keras.distillation.Distiller` configured correctly; and the student
distilled with kdkeras from the ensemble. Students run over several seeds
(mean ± std). RESULTS.md records test errors, parameters, training time and
the fraction of the student→teacher error gap that distillation closed:
`(alone - distilled) / (alone - teacher)`.

With `--augment`, every student sees the same shifted/mirrored copy of the
training set each epoch, and the teacher's soft targets are computed on
exactly those images (consistent augmentation); it is off by default because
it made the 800-800 MLP worse in 12 epochs (RESULTS.md). kdkeras reads the
teacher's soft targets from a cache computed once per epoch and shared by all
seeds; keras.distillation runs the teacher on every batch. The table is
written as Markdown by `experiments.table_markdown`; with `--jobs`, seeds run
in their own processes (`experiments.seed_processes`).
"""

from absl import app
from absl import flags

from experiments import cli
from experiments import report
from experiments import seed_processes
from experiments import table_markdown
from experiments import table_runs

FLAGS = flags.FLAGS

#: The RESULTS.md section this experiment writes.
SECTION = "table"
#: The settings read from flags (underscored names; the flags are dashed).
SETTINGS = (
    "epochs",
    "teacher_epochs",
    "seeds",
    "teacher",
    "ensemble_size",
    "ensemble_mean",
    "temperature",
    "alpha",
    "batch_size",
    "learning_rate",
    "schedule",
    "augment",
    "teacher_schedule",
    "teacher_augment",
    "limit_train",
    "limit_test",
    "cache_dir",
)
QUICK = {
    "epochs": 1,
    "teacher_epochs": 1,
    "seeds": ["0"],
    "ensemble_size": 2,
    "limit_train": 2000,
    "limit_test": 1000,
}


def define_flags():
    """Defines the command-line flags (only when run as a program, so the
    experiments' modules can be imported together)."""
    flags.DEFINE_integer("epochs", 10, "Epochs of every student run.")
    flags.DEFINE_integer("teacher-epochs", 10, "Epochs of every teacher.")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Student seeds (mean ± std).")
    flags.DEFINE_enum(
        "teacher",
        "cnn",
        list(table_runs.TEACHERS),
        "Teacher architecture: 'cnn' (models.build_cnn_teacher) or 'mlp', the "
        "paper's 784-1200-1200-10 MLP with dropout 0.1 on the input and 0.3 "
        "on the hidden layers, no input jitter (models.build_mlp_teacher).",
    )
    flags.DEFINE_integer("ensemble-size", 3, "Teachers in the ensemble.")
    flags.DEFINE_enum(
        "ensemble-mean",
        "arithmetic",
        ["arithmetic", "geometric"],
        "How the ensemble averages its members.",
    )
    cli.define_distillation_flags()
    flags.DEFINE_float("learning-rate", 1e-3, "Adam's initial learning rate.")
    flags.DEFINE_enum(
        "schedule", "cosine", ["cosine", "constant"], "Learning-rate schedule."
    )
    flags.DEFINE_boolean(
        "augment",
        False,
        "Shift (±2 px) and mirror each epoch's training images, the same images "
        "for teacher and student.",
    )
    flags.DEFINE_enum(
        "teacher-schedule",
        "cosine",
        ["cosine", "constant"],
        "Learning-rate schedule of the teachers.",
    )
    flags.DEFINE_boolean(
        "teacher-augment",
        False,
        "Augment the teachers' training images too (slower to converge).",
    )
    cli.define_run_flags(
        quick_help="Smoke run: 1 epoch, 1 seed, 2 ensemble members, 2000 train "
        "/ 1000 test examples (explicit flags still win).",
        output_help="Markdown file to write.",
        cache_help="Folder caching trained teachers (.keras) between runs; "
        "empty: none.",
    )
    flags.DEFINE_integer(
        "jobs",
        1,
        "Seeds trained at once, each in its own process with CPUs/jobs "
        "TensorFlow threads (the teachers are trained or loaded first).",
    )
    flags.DEFINE_integer(
        "threads", 0, "TensorFlow intra-/inter-op threads (0: TF's default)."
    )
    flags.DEFINE_string(
        "worker-json",
        "",
        "Internal (used by --jobs): write this process's rows as JSON here "
        "instead of the markdown file.",
    )


def read_settings():
    """The run's settings: flags, with --quick filling unset ones."""
    settings = cli.settings_from_flags(SETTINGS, QUICK)
    try:
        settings["seeds"] = [int(seed) for seed in settings["seeds"]]
    except ValueError:
        raise ValueError(
            "`--seeds` must be a comma-separated list of ints. "
            f"Received: {','.join(settings['seeds'])}"
        ) from None
    if not settings["seeds"]:
        raise ValueError("`--seeds` must name at least one seed.")
    settings["jobs"] = FLAGS.jobs
    cli.check_at_least_one(
        settings, ("epochs", "teacher_epochs", "ensemble_size", "jobs")
    )
    return settings


def run(settings):
    """Trains the table's rows and writes them; returns the path written."""
    if FLAGS.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    log = cli.progress_log(FLAGS.verbose)
    worker_json = FLAGS["worker-json"].value
    if worker_json:
        rows, info = table_runs.run(settings, log=log)
        seed_processes.write_worker_json(worker_json, rows, info)
        return worker_json
    command = cli.reproduce_command("experiments.table")
    output = FLAGS.output

    def write(rows, info):
        markdown = table_markdown.render_markdown(rows, info, command)
        report.update_section(output, SECTION, markdown)

    if settings["jobs"] > 1 and len(settings["seeds"]) > 1:
        rows, info = seed_processes.run_parallel(
            settings, settings["jobs"], log=log, on_seed=write
        )
    else:
        rows, info = table_runs.run(settings, log=log, on_seed=write)
    write(rows, info)
    return output


def main(argv):
    return cli.main(argv, read_settings, run)


if __name__ == "__main__":
    define_flags()
    app.run(main)
