"""Probes of the less-data experiment's settings, on held-out training images.

    python -m experiments.less_data.probe --cache-dir=artifacts/experiments

Chooses the students' settings of `experiments.less_data` honestly: with a
seed that the experiment does not report (`--seed`), it holds the last
`--validation` training images out of every student's training, then, for
each number of steps of `--steps`, trains the student alone on all the other
labels and (a) alone on `--fraction` of them, and for each temperature of
`--temperatures` and weight of `--alphas`, (c) distilled on those labels plus
the other images unlabelled. Every student is measured on the held-out
images, never on the test set. The teacher is the experiment's own (same
flags, same cache), trained on all the training images.
RESULTS.md's section 'less-data-probes' gets one row per run and, for each
(c), the share of the (a)→all-labels difference it recovers.
"""

import datetime
import functools
import itertools

from absl import app
from absl import flags

from experiments import cli
from experiments import report
from experiments.less_data import cli as less_data
from experiments.less_data import markdown as less_data_markdown
from experiments.less_data import students as less_data_students

FLAGS = flags.FLAGS

#: The RESULTS.md section this command writes.
SECTION = "less-data-probes"
SETTINGS = (
    "seed",
    "validation",
    "fraction",
    "steps",
    "temperatures",
    "alphas",
    *less_data.SHARED_SETTINGS,
)
QUICK = {
    "validation": 200,
    "steps": ["20"],
    "temperatures": ["4"],
    "alphas": ["0.1"],
    "teacher_epochs": 1,
    "student_units": ["32"],
    "limit_train": 1000,
    "limit_test": 1,
}


def define_flags():
    """Defines the command-line flags."""
    flags.DEFINE_integer("seed", 100, "Seed, not one of the reported seeds.")
    flags.DEFINE_integer(
        "validation", 6000, "Last training images held out to measure on."
    )
    flags.DEFINE_float("fraction", 0.03, "Fraction of the images keeping labels.")
    flags.DEFINE_list("steps", ["1500"], "Optimizer steps of every student run.")
    flags.DEFINE_list("temperatures", ["2", "4", "8"], "Temperatures T of (c).")
    flags.DEFINE_list("alphas", ["0.1", "0.5"], "Hard-label weights alpha of (c).")
    less_data.define_shared_flags(
        quick_help="Smoke run: 20 steps, T=4, alpha=0.1, a 784-32-10 "
        "student, a 1-epoch teacher, 1000 training images of which 200 are "
        "held out (explicit flags still win).",
        output_help="Markdown file (section 'less-data-probes').",
    )


def read_settings():
    """The probes' settings: flags, with --quick filling unset ones."""
    settings = cli.settings_from_flags(SETTINGS, QUICK)
    less_data.check_shared(settings)
    settings["steps"] = less_data.ints("steps", settings["steps"])
    if not settings["steps"] or min(settings["steps"]) < 1:
        raise ValueError(
            "`--steps` must be one or more ints >= 1. "
            f"Received: {','.join(FLAGS.steps)}"
        )
    settings["temperatures"] = less_data.floats(
        "temperatures", settings["temperatures"], 0.0, float("inf")
    )
    # alpha = 0 and 1 are valid weights: widen the open interval by a hair.
    settings["alphas"] = less_data.floats("alphas", settings["alphas"], -1e-12, 1.0)
    settings["alphas"] = [min(max(alpha, 0.0), 1.0) for alpha in settings["alphas"]]
    less_data.floats("fraction", [str(settings["fraction"])], 0.0, 1.0)
    cli.check_at_least_one(settings, ("validation",))
    return settings


def run(settings, log=print):
    """Trains the teacher (or loads it) and the probes; returns a result.

    Returns:
        A dict: `rows` (dicts with `steps`, `temperature` and `alpha` (None
        for the students alone), `how`, `accuracy` and `recovered`),
        the teacher's held-out accuracy, sizes and the settings.
    """
    from experiments.less_data import subsets as less_data_subsets

    train, held, teacher, teacher_recipe, _ = less_data.load_data_and_teacher(
        settings, log, validation=settings["validation"]
    )
    students = less_data_students.StudentRuns(
        train, held, teacher, settings["student_units"]
    )
    seed = settings["seed"]
    labelled = less_data_subsets.select_labelled(train[1], settings["fraction"], seed)
    rows = []

    def probe(how, steps, temperature=None, alpha=None):
        recipe = less_data_students.student_recipe(
            settings,
            temperature=temperature or 1.0,
            alpha=0.0 if alpha is None else alpha,
        )
        accuracy, _, seconds = students.train(how, labelled, seed, recipe, steps)
        log(f"{steps} steps, T={temperature}, alpha={alpha}, {how}: {accuracy:.4f}")
        rows.append(
            {
                "steps": steps,
                "temperature": temperature,
                "alpha": alpha,
                "how": how,
                "accuracy": accuracy,
                "seconds": seconds,
            }
        )
        return accuracy

    for steps in settings["steps"]:
        full = probe(less_data_students.ALL_LABELS, steps)
        alone = probe(less_data_students.ALONE, steps)
        for temperature, alpha in itertools.product(
            settings["temperatures"], settings["alphas"]
        ):
            accuracy = probe(
                less_data_students.UNLABELLED_TOO, steps, temperature, alpha
            )
            rows[-1]["recovered"] = less_data_markdown.recovered_share(
                alone, accuracy, full
            )
    return {
        "rows": rows,
        "settings": settings,
        "train_size": len(train[1]),
        "held_size": len(held[1]),
        "labelled": len(labelled),
        "teacher_recipe": teacher_recipe,
        "teacher_accuracy": students.teacher_accuracy(),
    }


def render_markdown(result, command):
    """The 'less-data-probes' section of RESULTS.md for a `run` result."""
    settings = result["settings"]
    fraction = less_data_markdown.percent(settings["fraction"])
    lines = [
        "## Less labelled data: how its settings were chosen",
        "",
        f"Reproduce with `{command}` (written "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; times "
        "are from a machine shared with other jobs).",
        "",
        f"One seed, {settings['seed']}, not among the reported seeds. The "
        f"last {result['held_size']:,} training images are held out of every "
        f"student's training, which uses the other {result['train_size']:,}. "
        "The teacher is the experiment's own (`models.build_cnn_teacher()`, "
        f"{less_data_students.describe_teacher(result['teacher_recipe'])}, "
        "trained on all the training images, the held-out ones included: "
        "its soft targets on them are never trained on). Every student "
        f"(`models.build_mlp_student(hidden_units="
        f"{tuple(settings['student_units'])})`, batch {settings['batch_size']}"
        f", Adam {settings['learning_rate']:g}, {settings['schedule']} "
        f"schedule) is measured on the held-out images. (a) and (c) keep the "
        f"labels of {fraction} ({result['labelled']:,}) of the training "
        "images. The teacher's accuracy on the held-out images (which it "
        f"was trained on): {100 * result['teacher_accuracy']:.2f}%.",
        "",
        "| steps | student | T | alpha | held-out accuracy (%) "
        "| (c) recovers | training time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        cells = [
            str(row["steps"]),
            row["how"],
            _blank_or(row["temperature"], "{:g}"),
            _blank_or(row["alpha"], "{:g}"),
            f"{100 * row['accuracy']:.2f}",
            _blank_or(row.get("recovered"), "{:.1%}"),
            f"{row['seconds']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    distilled = [row for row in result["rows"] if row["temperature"] is not None]
    if distilled:
        best = max(distilled, key=lambda row: row["accuracy"])
        lines += [
            "",
            "The highest held-out accuracy of (c): "
            f"{best['steps']} steps, T={best['temperature']:g}, "
            f"alpha={best['alpha']:g} ({100 * best['accuracy']:.2f}%"
            + _blank_or(best.get("recovered"), ", recovering {:.1%}")
            + ").",
        ]
    return "\n".join(lines) + "\n"


def _blank_or(value, form):
    return "" if value is None else form.format(value)


def write_report(settings):
    """Runs the probes and writes their section."""
    command = cli.reproduce_command("experiments.less_data.probe")
    result = run(settings, log=cli.progress_log(FLAGS.verbose))
    report.update_section(FLAGS.output, SECTION, render_markdown(result, command))
    return FLAGS.output


if __name__ == "__main__":
    define_flags()
    app.run(functools.partial(cli.main, read_settings=read_settings, run=write_report))
