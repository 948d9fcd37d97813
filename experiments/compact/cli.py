"""Compact students for deployment: alone, distilled, and int8.

    python -m experiments.compact            # full run, writes RESULTS.md
    python -m experiments.compact --quick    # one-epoch smoke run on a slice

Trains on Fashion-MNIST (`experiments.compact.runs`), in one run and with
one recipe (epochs, schedule, augmentation, seeds): the CNN teacher
(`models.build_cnn_teacher()`) and an ensemble of such teachers, then each
compact student of `--students` (the demo's MLP 784-100-10 and a strided
CNN, both at least 10x smaller and 5x cheaper than the teacher) from the
same initial weights: alone; distilled with `kdkeras.Distiller` from cached
soft targets (KD, DKD, DIST) and online (the teacher per batch, on the
images the student sees); with `keras.distillation.Distiller` configured
correctly; and from the ensemble. Every trained student is quantised to
int8 TFLite. RESULTS.md gets, per row, mean ± std over the seeds of the
test errors, the fraction of the student-alone -> teacher gap closed,
parameters, FLOPs, int8 file size and int8 test errors, and training time.
"""

from absl import flags

from experiments import cli
from experiments import seed_processes
from experiments.compact import runs as compact_runs
from experiments.table import markdown as table_markdown

FLAGS = flags.FLAGS

#: The RESULTS.md section this experiment writes.
SECTION = "compact"
#: The settings read from flags (underscored names; the flags are dashed).
SETTINGS = (
    "students",
    "methods",
    "epochs",
    "teacher_epochs",
    "seeds",
    "ensemble_size",
    *cli.RECIPE_SETTINGS,
    "teacher_augment",
    "teacher_file",
    "int8",
    *cli.RUN_SETTINGS,
)
QUICK = {
    "epochs": 1,
    "teacher_epochs": 1,
    "seeds": ["0"],
    "ensemble_size": 2,
    "limit_train": 1000,
    "limit_test": 500,
}
EXPERIMENT = seed_processes.SeedExperiment(
    "experiments.compact",
    compact_runs.run,
    tuple(
        compact_runs.row_name(kind, method)
        for kind in compact_runs.STUDENTS.values()
        for method in compact_runs.METHODS
    ),
)


def define_flags():
    """Defines the command-line flags (only when run as a program)."""
    flags.DEFINE_list(
        "students",
        list(compact_runs.STUDENTS),
        "Compact students: mlp (models.build_compact_student, the demo's) "
        "and cnn (models.build_compact_cnn_student).",
    )
    flags.DEFINE_list(
        "methods",
        list(compact_runs.METHOD_NAMES),
        "Ways of distilling (the student alone always runs): kd, dkd, dist "
        "(kdkeras, cached soft targets), kd-online (the teacher per batch), keras "
        "(keras.distillation), kd-ensemble, dist-ensemble (the ensemble "
        "teacher).",
    )
    flags.DEFINE_integer("epochs", 20, "Epochs of every student run.")
    flags.DEFINE_integer("teacher-epochs", 5, "Epochs of every teacher.")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Student seeds (mean ± std).")
    flags.DEFINE_integer("ensemble-size", 3, "CNN teachers in the ensemble.")
    cli.define_recipe_flags(temperature=1.0, alpha=0.5, learning_rate=2e-3)
    flags.DEFINE_boolean(
        "teacher-augment", False, "Augment the teachers' training images too."
    )
    flags.DEFINE_string(
        "teacher-file",
        "",
        "Load the CNN teacher (member 0 of the ensemble) from this .keras "
        "file instead of training it, e.g. the demo's "
        "demo_output/teacher.keras (its recipe: --teacher-epochs=5, Adam "
        "2e-3 cosine, batch 128).",
    )
    flags.DEFINE_boolean("int8", True, "Quantise every trained student to int8 TFLite.")
    cli.define_run_flags(
        quick_help="Smoke run: 1 epoch, 1 seed, 2 ensemble members, 1000 train "
        "/ 500 test examples (explicit flags still win).",
        output_help="Markdown file (section 'compact').",
        cache_help="Folder caching trained teachers (.keras) between runs; "
        "empty: none.",
    )
    seed_processes.define_flags()


def _check_names(settings, name, known):
    unknown = [value for value in settings[name] if value not in known]
    if unknown or not settings[name]:
        raise ValueError(
            f"`--{name}` must be a comma-separated list of {', '.join(known)}. "
            f"Received: --{name}={','.join(settings[name])}"
        )


def read_settings():
    """The run's settings: flags, with --quick filling unset ones."""
    settings = seed_processes.read_settings(
        SETTINGS, QUICK, ("epochs", "teacher_epochs", "ensemble_size")
    )
    _check_names(settings, "students", tuple(compact_runs.STUDENTS))
    _check_names(settings, "methods", compact_runs.METHOD_NAMES)
    return settings


def _kilobytes(row):
    return "—" if row.int8_bytes is None else f"{row.int8_bytes / 1000:.1f}"


def render_markdown(rows, info, command):
    """RESULTS.md text for `rows` (from `compact_runs.run`)."""
    by_name = {row.name: row for row in rows}
    lines = table_markdown.header_lines(
        "Compact students from a CNN teacher and an ensemble",
        info,
        command,
    ) + [
        "| model | how | test errors | gap closed | parameters | FLOPs "
        "| int8 KB | int8 test errors | training time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        digits = 1 if len(row.errors) > 1 else 0
        int8 = (
            table_markdown.mean_std(row.int8_errors, digits) if row.int8_errors else "—"
        )
        seconds = table_markdown.mean_std(row.seconds) if row.seconds else "cached"
        lines.append(
            f"| {row.name} | {row.description} "
            f"| {table_markdown.mean_std(row.errors, digits)} "
            f"| {table_markdown.row_gap_closed(row, by_name)} "
            f"| {row.parameters:,} | {row.flops:,} | {_kilobytes(row)} | {int8} "
            f"| {seconds} |"
        )
    lines += [
        "",
        "Gap closed = (student alone − distilled) / (student alone − its "
        "teacher), on mean test errors, for each student against its own "
        "student-alone row; the ensemble rows are measured against the "
        "ensemble. FLOPs per example = 2 × multiply-accumulates "
        "(`models.count_flops`; the ensemble's: its members' sum). int8: "
        "`export.to_tflite.export_tflite(quantize='int8')`, calibrated on "
        f"{compact_runs.CALIBRATION_EXAMPLES} training images, errors on the "
        "same test images.",
    ]
    lines += table_markdown.per_seed_and_notes_lines(rows, info)
    online = {method.name for method in compact_runs.METHODS if method.online}
    if any(row.name.split(": ", 1)[-1] in online for row in rows):
        lines.append(
            '- The online rows (and their own baseline, "alone, augmented '
            "online\") are the exception to the recipe's augmentation: each "
            "batch is shifted and mirrored afresh every step "
            "(`experiments.training.shift_and_flip_layer`) and the teacher runs "
            "on exactly those images; their gap closed is measured against the "
            "student alone trained on the same kind of augmented batches."
        )
    return "\n".join(lines) + "\n"


def run(settings):
    """Trains the table's rows and writes them; returns the path written."""
    return seed_processes.run_and_write(settings, EXPERIMENT, SECTION, render_markdown)


def main(argv):
    return cli.main(argv, read_settings, run)
