"""Less labelled data: a student on few labels, with and without soft targets.

    python -m experiments.less_data            # full run, writes RESULTS.md
    python -m experiments.less_data --quick    # smoke run on a slice

Hinton, Vinyals & Dean (2015) trained a speech model on 3% of its data:
hard targets overfit (44.5% frame accuracy), soft targets did not (57.0%,
against 58.9% with all the data). Here, on Fashion-MNIST, a CNN teacher is
trained on all the labelled training images (`models.build_cnn_teacher()`
with `--teacher-recipe`, cached in `--cache-dir`). For each fraction of
`--fractions`, a stratified subset of the training images keeps its labels
(`less_data_subsets.select_labelled`) and an MLP student is trained in three
ways (`less_data_students`):

- (a) alone, on the labelled subset's hard labels;
- (b) distilled (`kdkeras.Distiller`, cached soft targets, `alpha` on the
  hard labels) on the labelled subset only;
- (c) distilled with the same `alpha` on the labelled subset plus all the
  other training images without their labels: their label is
  `kdkeras.targets.UNLABELLED`, so batches are partly labelled, the
  hard-label loss covers the labelled examples and the soft-target loss all.

Beside them, the student alone on all the labels. Every student run takes
the same number of optimizer steps (`--steps`) with the same batch size and
learning-rate schedule, whatever its training set's size: (a) and (b) pass
over their few images many times, (c) over all images a few times. The
labelled subset is the same in (a), (b) and (c) of a seed. RESULTS.md gets
mean ± std over the seeds of the test accuracy on the full test set, and the
issue's goals (`less_data_markdown`): (c) recovers at least 80% of the
accuracy difference between (a) and the student on all labels at the
smallest fraction, and (b) beats (a) by more than the seeds' spread. The
defaults were chosen by `python -m experiments.less_data.probe`.
"""

from absl import flags

from experiments import cli
from experiments import report
from experiments.less_data import markdown as less_data_markdown
from experiments.less_data import students as less_data_students

FLAGS = flags.FLAGS

#: The RESULTS.md section this experiment writes.
SECTION = "less-data"
#: The settings of the teacher and students every less-data command shares.
SHARED_SETTINGS = (
    "student_units",
    "teacher_epochs",
    "teacher_recipe",
    "batch_size",
    "learning_rate",
    "schedule",
    "limit_train",
    "limit_test",
    "cache_dir",
)
#: The settings read from flags (underscored names; the flags are dashed).
SETTINGS = (
    "fractions",
    "seeds",
    "steps",
    "temperature",
    "alpha",
    "worker_json",
    "merge_json",
    *SHARED_SETTINGS,
)
QUICK = {
    "seeds": ["0"],
    "steps": 20,
    "teacher_epochs": 1,
    "student_units": ["32"],
    "limit_train": 1000,
    "limit_test": 500,
}
#: The students' settings, chosen by `experiments.less_data.probe`.
DEFAULT_STEPS = 1500
DEFAULT_TEMPERATURE = 2.0
DEFAULT_ALPHA = 0.1


def define_shared_flags(quick_help, output_help):
    """Defines the teacher's, the students' and the run's flags.

    Those of `SHARED_SETTINGS` with `--quick`, `--output` and `--verbose`,
    which every less-data command (this one and `less_data_probe`) has.

    Args:
        quick_help: What `--quick` does.
        output_help: What `--output` is.
    """
    flags.DEFINE_list(
        "student-units",
        ["800", "800"],
        "Hidden widths of the MLP student (models.build_mlp_student).",
    )
    flags.DEFINE_integer("teacher-epochs", 5, "Epochs of the CNN teacher.")
    flags.DEFINE_enum(
        "teacher-recipe",
        "demo",
        sorted(less_data_students.TEACHER_RECIPES),
        "The CNN teacher's optimizer: demo (Adam 2e-3, cosine decay, as "
        "examples/demo.py) or constant (Adam 1e-3).",
    )
    flags.DEFINE_integer("batch-size", 128, "Batch size of every student run.")
    flags.DEFINE_float("learning-rate", 1e-3, "Adam's initial learning rate.")
    flags.DEFINE_enum(
        "schedule",
        "cosine",
        ["cosine", "constant"],
        "Learning-rate schedule of the students (cosine: to 0 over the steps).",
    )
    cli.define_run_flags(
        quick_help=quick_help,
        output_help=output_help,
        cache_help="Folder caching the trained teacher (.keras); empty: none.",
    )


def define_flags():
    """Defines the command-line flags (only when run as a program, so the
    experiments' modules can be imported together)."""
    flags.DEFINE_list(
        "fractions",
        ["0.03", "0.1"],
        "Fractions of the training images that keep their labels.",
    )
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (mean ± std).")
    flags.DEFINE_integer(
        "steps",
        DEFAULT_STEPS,
        "Optimizer steps of every student run, whatever its training set.",
    )
    flags.DEFINE_float("temperature", DEFAULT_TEMPERATURE, "Softmax temperature T.")
    flags.DEFINE_float("alpha", DEFAULT_ALPHA, "Weight of the hard-label loss.")
    flags.DEFINE_string(
        "worker-json",
        "",
        "Write the result as JSON here instead of --output (to merge seeds "
        "run as separate processes with --merge-json).",
    )
    flags.DEFINE_list(
        "merge-json",
        [],
        "Train nothing: merge these --worker-json results (same settings, "
        "their seeds in this order) into --output.",
    )
    define_shared_flags(
        quick_help="Smoke run: 20 steps, 1 seed, a 784-32-10 student, a "
        "1-epoch teacher, 1000 train / 500 test examples (explicit flags "
        "still win).",
        output_help="Markdown file (section 'less-data').",
    )


def ints(name, values):
    """The ints of a list flag's `values`, or a one-line `ValueError`.

    Example:

    >>> ints("seeds", ["0", "1"])
    [0, 1]
    """
    try:
        return [int(value) for value in values]
    except ValueError:
        raise ValueError(
            f"`--{cli.flag_name(name)}` must be a comma-separated list of "
            f"ints. Received: {','.join(values)}"
        ) from None


def floats(name, values, low, high):
    """The sorted distinct floats in (`low`, `high`) of a list flag's `values`.

    Example:

    >>> floats("fractions", ["0.1", "0.03", "0.1"], 0.0, 1.0)
    [0.03, 0.1]
    """
    try:
        numbers = [float(value) for value in values]
    except ValueError:
        numbers = [float("nan")]
    if not numbers or not all(low < number < high for number in numbers):
        raise ValueError(
            f"`--{cli.flag_name(name)}` must be a comma-separated list of "
            f"numbers in ({low:g}, {high:g}). Received: {','.join(values)}"
        )
    return sorted(set(numbers))


def check_shared(settings):
    """Converts and checks the settings of `SHARED_SETTINGS` in place."""
    units = settings["student_units"]
    settings["student_units"] = ints("student_units", units)
    if not settings["student_units"] or min(settings["student_units"]) < 1:
        raise ValueError(
            "`--student-units` must be one or more ints >= 1. "
            f"Received: {','.join(units)}"
        )
    cli.check_at_least_one(settings, ("teacher_epochs", "batch_size"))
    if not settings["learning_rate"] > 0:
        raise ValueError(
            f"`--learning-rate` must be > 0. Received: {settings['learning_rate']}"
        )


def read_settings():
    """The run's settings: flags, with --quick filling unset ones."""
    settings = cli.settings_from_flags(SETTINGS, QUICK)
    settings["seeds"] = ints("seeds", settings["seeds"])
    settings["fractions"] = floats("fractions", settings["fractions"], 0.0, 1.0)
    if not settings["seeds"]:
        raise ValueError("`--seeds` must name at least one seed.")
    check_shared(settings)
    cli.check_at_least_one(settings, ("steps",))
    if not 0.0 <= settings["alpha"] <= 1.0:
        raise ValueError(f"`--alpha` must be in [0, 1]. Received: {settings['alpha']}")
    if not settings["temperature"] > 0:
        raise ValueError(
            f"`--temperature` must be > 0. Received: {settings['temperature']}"
        )
    return settings


def load_data_and_teacher(settings, log, validation=0):
    """The data, and the teacher trained (or loaded) on the training images.

    Args:
        settings: Dict with the settings of `SHARED_SETTINGS`.
        log: Callable receiving progress messages.
        validation: Int; if > 0, the last `validation` training images are
            held out of the students' training and returned as the held-out
            set in place of the test set. The teacher is the experiment's
            own, trained on all the training images (so it is cached once
            for the probes and the experiment).

    Returns:
        `(train, held, teacher, teacher_recipe, teacher_seconds)`: `train`
        (the students' training images) and `held` are `(images, labels)`,
        `teacher_seconds` None when the teacher was loaded from the cache.
    """
    from experiments import training
    from experiments.less_data import subsets as less_data_subsets
    from models import data

    train, held = data.load_fashion_mnist(
        settings["limit_train"], settings["limit_test"]
    )
    recipe = less_data_students.teacher_recipe(
        settings["teacher_recipe"], settings["teacher_epochs"]
    )
    log(f"teacher: {less_data_students.describe_teacher(recipe)} (or the cached one)")
    teacher, seconds = training.cached_cnn_teacher(
        settings["cache_dir"], recipe, *train
    )
    if validation:
        train, held = less_data_subsets.hold_out(*train, validation)
    return train, held, teacher, recipe, seconds


def run(settings, log=print, on_seed=None):
    """Trains the teacher (or loads it) and every student; returns a result.

    Args:
        settings: Dict of the flag values (see `SETTINGS`).
        log: Callable receiving progress messages.
        on_seed: Optional callable `(result)` called after each seed (to
            write partial results).

    Returns:
        A dict: `rows` (a list of dicts with `fraction` (None: all labels),
        `how`, `labelled`, `examples`, `accuracy`, `agreement` and
        `seconds`, the last three lists over seeds), `subsets` (per seed and
        fraction, the labelled indices), and the run's settings.
    """
    from experiments.less_data import subsets as less_data_subsets

    train, test, teacher, teacher_recipe, teacher_seconds = load_data_and_teacher(
        settings, log
    )
    students = less_data_students.StudentRuns(
        train, test, teacher, settings["student_units"]
    )
    recipe = less_data_students.student_recipe(settings)
    train_size = len(train[1])

    def row(fraction, how, labelled, examples, accuracy=(), seconds=()):
        return {
            "fraction": fraction,
            "how": how,
            "labelled": labelled,
            "examples": examples,
            "accuracy": list(accuracy),
            "agreement": [1.0] * len(accuracy),
            "seconds": list(seconds),
        }

    rows = [
        row(
            None,
            "teacher (CNN), all labels",
            train_size,
            train_size,
            [students.teacher_accuracy()],
            [teacher_seconds] if teacher_seconds else [],
        ),
        row(None, less_data_students.ALL_LABELS, train_size, train_size),
    ]
    for fraction in settings["fractions"]:
        size = int(round(fraction * train_size))
        for how in less_data_students.HOWS:
            examples = train_size if how == less_data_students.UNLABELLED_TOO else size
            rows.append(row(fraction, how, size, examples))
    subsets = {}
    result = {
        "rows": rows,
        "subsets": subsets,
        "settings": settings,
        "train_size": train_size,
        "test_size": len(test[1]),
        "recipe": recipe,
        "teacher_recipe": teacher_recipe,
        "teacher_cached": teacher_seconds is None,
        "seeds_done": [],
        "parameters": students.student().count_params(),
    }
    for seed in settings["seeds"]:
        for fraction in settings["fractions"]:
            subsets[(seed, fraction)] = less_data_subsets.select_labelled(
                train[1], fraction, seed
            )
        for entry in rows[1:]:
            labelled = subsets.get((seed, entry["fraction"]))
            accuracy, agreement, seconds = students.train(
                entry["how"], labelled, seed, recipe, settings["steps"]
            )
            entry["accuracy"].append(accuracy)
            entry["agreement"].append(agreement)
            entry["seconds"].append(seconds)
            log(
                f"seed {seed}: {entry['labelled']} labelled, {entry['how']}: "
                f"accuracy {accuracy:.4f}, {seconds:.0f} s"
            )
        result["seeds_done"].append(seed)
        if on_seed is not None:
            on_seed(result)
    return result


def write_report(settings):
    """Runs the experiment (or merges workers' results) and writes it.

    The section is written after each seed; with `--worker-json`, the
    result is written as JSON at the end instead.
    """
    from experiments.less_data import seeds as less_data_seeds

    command = cli.reproduce_command("experiments.less_data")
    if settings["merge_json"]:
        results = [less_data_seeds.read_result(path) for path in settings["merge_json"]]
        commands = {command for _, command in results}
        if len(commands) != 1:
            raise ValueError(
                "`--merge-json` results must come from one command but their "
                f"seeds. Received: {sorted(commands)}"
            )
        result = less_data_seeds.merge_results([result for result, _ in results])
        seeds = ",".join(map(str, result["seeds_done"]))
        command = commands.pop()
        if seeds != ",".join(FLAGS["seeds"].default):
            command += f" --seeds={seeds}"
        report.update_section(
            FLAGS.output,
            SECTION,
            less_data_markdown.render_markdown(
                result,
                command,
                f" (run as {len(results)} processes of its seeds with "
                "`--worker-json`, merged with `--merge-json`)",
            ),
        )
        return FLAGS.output

    def write(result):
        report.update_section(
            FLAGS.output,
            SECTION,
            less_data_markdown.render_markdown(result, command),
        )

    log = cli.progress_log(FLAGS.verbose)
    if settings["worker_json"]:
        less_data_seeds.write_result(
            settings["worker_json"],
            run(settings, log=log),
            less_data_seeds.command_of_all_seeds(command),
        )
        return settings["worker_json"]
    write(run(settings, log=log, on_seed=write))
    return FLAGS.output
