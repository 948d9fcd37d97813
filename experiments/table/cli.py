"""The results table: teacher, student alone, and distilled students.

    python -m experiments.table            # full run, writes RESULTS.md
    python -m experiments.table --quick    # one-epoch smoke run on a slice

Trains on Fashion-MNIST (`experiments.table.runs`), in one run and with the
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
written as Markdown by `experiments.table.markdown`; with `--jobs`, seeds run
in their own processes (`experiments.seed_processes`).
"""

from absl import flags

from experiments import cli
from experiments import seed_processes
from experiments.table import markdown as table_markdown
from experiments.table import runs as table_runs

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
    *cli.RECIPE_SETTINGS,
    "teacher_schedule",
    "teacher_augment",
    *cli.RUN_SETTINGS,
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
    cli.define_recipe_flags()
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
    seed_processes.define_flags()


def read_settings():
    """The run's settings: flags, with --quick filling unset ones."""
    return seed_processes.read_settings(
        SETTINGS, QUICK, ("epochs", "teacher_epochs", "ensemble_size")
    )


def run(settings):
    """Trains the table's rows and writes them; returns the path written."""
    return seed_processes.run_and_write(
        settings, seed_processes.TABLE, SECTION, table_markdown.render_markdown
    )


def main(argv):
    return cli.main(argv, read_settings, run)
