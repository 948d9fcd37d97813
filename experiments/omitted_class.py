"""Omitted-class transfer (Hinton, Vinyals & Dean 2015, §3) on Fashion-MNIST.

    python -m experiments.omitted_class            # full run
    python -m experiments.omitted_class --quick    # smoke run

A held-out slice of the training set is set aside; the rest, with every
example of one class removed, is the transfer set. The 800-800 MLP student
is distilled (kdkeras.Distiller, cached soft targets of the CNN teacher) on
the transfer set: it never sees a label of the omitted class, only the
teacher's soft targets on other images. Then the omitted class's output bias
is raised by the amount that maximises accuracy on the held-out slice
(`kdkeras.bias.choose_bias_shift`, never the test set) and the test errors
are reported before and after (`kdkeras.bias.adjust_class_bias`).
"""

import numpy as np
from absl import app
from absl import flags

from experiments import cli
from experiments import report

FLAGS = flags.FLAGS


def define_flags():
    """Defines the command-line flags (only when run as a program, so the
    experiments' modules can be imported together)."""
    flags.DEFINE_integer("omitted-class", 3, "Class removed from the transfer set.")
    flags.DEFINE_integer(
        "holdout", 5000, "Training examples held out to choose the shift."
    )
    flags.DEFINE_integer("epochs", 10, "Student epochs.")
    flags.DEFINE_integer("teacher-epochs", 10, "Teacher epochs.")
    flags.DEFINE_boolean("teacher-augment", False, "Augment the teacher's images.")
    flags.DEFINE_integer("seed", 0, "Seed of the split, teacher and student.")
    cli.define_recipe_flags()
    flags.DEFINE_float("max-bias-shift", 10.0, "Largest bias shift tried.")
    flags.DEFINE_float("bias-step", 0.25, "Step between bias shifts tried.")
    cli.define_run_flags(
        quick_help="Smoke run: 1 epoch, 2000 train (500 held out) / 1000 test "
        "examples (explicit flags still win).",
        output_help="Markdown file (section 'omitted-class').",
        cache_help="Folder caching the trained teacher.",
    )


SECTION = "omitted-class"
SETTINGS = (
    "omitted_class",
    "holdout",
    "epochs",
    "teacher_epochs",
    "seed",
    *cli.RECIPE_SETTINGS,
    "teacher_augment",
    "max_bias_shift",
    "bias_step",
    *cli.RUN_SETTINGS,
)
QUICK = {
    "epochs": 1,
    "teacher_epochs": 1,
    "holdout": 500,
    "limit_train": 2000,
    "limit_test": 1000,
}


def read_settings():
    """The run's settings: flags, with --quick filling unset ones."""
    settings = cli.settings_from_flags(SETTINGS, QUICK)
    cli.check_at_least_one(settings, ("epochs", "teacher_epochs", "holdout"))
    if not 0 <= settings["omitted_class"] < 10:
        raise ValueError(
            "`--omitted-class` must be in [0, 10). "
            f"Received: {settings['omitted_class']}"
        )
    if not (settings["bias_step"] > 0 and settings["max_bias_shift"] >= 0):
        raise ValueError(
            "`--bias-step` must be > 0 and `--max-bias-shift` >= 0. Received: "
            f"{settings['bias_step']}, {settings['max_bias_shift']}"
        )
    return settings


def split_transfer_set(labels, omitted_class, holdout, seed):
    """Indices of the transfer set (omitted class removed) and the holdout.

    Args:
        labels: Int training labels `(N,)`.
        omitted_class: Int, the class removed from the transfer set.
        holdout: Int, size of the held-out slice (all classes).
        seed: Int seed of the random split.

    Returns:
        `(transfer_indices, holdout_indices)`, disjoint, sorted.

    Example:

    >>> transfer, held = split_transfer_set(np.arange(20) % 4, 3, 4, seed=0)
    >>> len(held), bool(np.all(np.arange(20)[transfer] % 4 != 3))
    (4, True)
    """
    labels = np.asarray(labels)
    if not 0 < holdout < len(labels):
        raise ValueError(
            f"`holdout` must be in (0, {len(labels)}). Received: holdout={holdout}"
        )
    order = np.random.default_rng(seed).permutation(len(labels))
    held, rest = np.sort(order[:holdout]), np.sort(order[holdout:])
    return rest[labels[rest] != omitted_class], held


def _class_accuracy(predictions, labels, class_index):
    mask = labels == class_index
    return (
        float(np.mean(predictions[mask] == class_index)) if mask.any() else float("nan")
    )


def run(settings, log=print):
    """Trains teacher and student, adjusts the bias; returns a result dict."""
    import keras

    import models
    from experiments import recipe
    from experiments import training
    from kdkeras import bias
    from models import data

    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(
        settings["limit_train"], settings["limit_test"]
    )
    omitted = settings["omitted_class"]
    student_recipe, teacher_recipe = recipe.recipes_from_settings(settings)

    # The teacher is the table's CNN teacher (all training data, all classes;
    # shared through --cache-dir). Only the student's transfer set omits a class.
    log(f"teacher: {teacher_recipe.epochs} epochs")
    teacher, _ = training.cached_cnn_teacher(
        settings["cache_dir"], teacher_recipe, x_train, y_train
    )
    transfer, held = split_transfer_set(
        y_train, omitted, settings["holdout"], settings["seed"]
    )
    x_transfer, y_transfer = x_train[transfer], y_train[transfer]
    x_holdout, y_holdout = x_train[held], y_train[held]

    log(f"student: distilling on {len(transfer)} examples without class {omitted}")
    logits = training.teacher_logits_by_epoch(teacher, x_transfer, student_recipe)
    keras.utils.set_random_seed(settings["seed"])
    student = models.build_mlp_student()
    seconds = training.distill_with_kdkeras(
        student,
        teacher,
        x_transfer,
        y_transfer,
        logits,
        student_recipe,
        settings["seed"],
    )

    def evaluate():
        predictions = np.argmax(training.predict_logits(student, x_test), axis=-1)
        return {
            "errors": int(np.sum(predictions != y_test)),
            "class_errors": int(np.sum((predictions != y_test) & (y_test == omitted))),
            "class_accuracy": _class_accuracy(predictions, y_test, omitted),
            "predicted_as_class": int(np.sum(predictions == omitted)),
        }

    before = evaluate()
    candidates = np.arange(
        0.0, settings["max_bias_shift"] + 1e-9, settings["bias_step"]
    )
    shift = bias.choose_bias_shift(student, x_holdout, y_holdout, omitted, candidates)
    holdout_logits = training.predict_logits(student, x_holdout)
    holdout_before, holdout_after = bias.shift_accuracies(
        holdout_logits, y_holdout, omitted, [0.0, shift]
    )
    bias.adjust_class_bias(student, omitted, shift)
    after = evaluate()
    teacher_predictions = np.argmax(training.predict_logits(teacher, x_test), -1)
    log(f"shift {shift}: errors {before['errors']} -> {after['errors']}")
    return {
        "omitted": omitted,
        "transfer_size": len(transfer),
        "holdout_size": len(held),
        "test_size": len(y_test),
        "class_test_size": int(np.sum(y_test == omitted)),
        "recipe": student_recipe,
        "teacher_recipe": teacher_recipe,
        "seconds": seconds,
        "shift": shift,
        "candidates": (
            float(candidates[0]),
            float(candidates[-1]),
            settings["bias_step"],
        ),
        "holdout_accuracy": (float(holdout_before), float(holdout_after)),
        "before": before,
        "after": after,
        "teacher_errors": int(np.sum(teacher_predictions != y_test)),
        "teacher_class_accuracy": _class_accuracy(teacher_predictions, y_test, omitted),
    }


def _markdown_row(*cells):
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _cells(evaluation):
    return (
        evaluation["errors"],
        evaluation["class_errors"],
        f"{evaluation['class_accuracy']:.1%}",
        evaluation["predicted_as_class"],
    )


def render_markdown(result, command):
    """The 'omitted-class' section of RESULTS.md for a `run` result."""
    from models.data import CLASS_NAMES

    name = CLASS_NAMES[result["omitted"]]
    before, after = result["before"], result["after"]
    first, last, step = result["candidates"]
    lines = [
        f"## Omitted-class transfer: class {result['omitted']} ({name})",
        "",
        f"Reproduce with `{command}`.",
        "",
        f"The 800-800 student was distilled (kdkeras.Distiller, "
        f"{result['recipe'].describe()}) from the CNN teacher on "
        f"{result['transfer_size']} training examples with every "
        f"{name!r} removed; {result['holdout_size']} other training examples "
        "(all classes) were held out. The class's output bias was then raised "
        f"by the shift in [{first:g}, {last:g}] (step {step:g}) that maximised "
        "accuracy on the held-out examples — never on the test set: "
        f"**+{result['shift']:g}** (held-out accuracy "
        f"{result['holdout_accuracy'][0]:.2%} → "
        f"{result['holdout_accuracy'][1]:.2%}).",
        "",
        _markdown_row(
            "student",
            f"test errors (of {result['test_size']})",
            f"errors on {name!r} (of {result['class_test_size']})",
            f"{name!r} accuracy",
            f"predicted as {name!r}",
        ),
        "|---|---|---|---|---|",
        _markdown_row(f"distilled without {name!r}", *_cells(before)),
        _markdown_row(f"+ bias {result['shift']:+g}", *_cells(after)),
        "",
        f"For reference, the teacher (which saw the class) makes "
        f"{result['teacher_errors']} test errors, "
        f"{result['teacher_class_accuracy']:.1%} accuracy on {name!r}. "
        f"Student distillation took {result['seconds']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def write_report(settings):
    """Runs the experiment and writes its section; returns the path written."""
    result = run(settings, log=cli.progress_log(FLAGS.verbose))
    command = cli.reproduce_command("experiments.omitted_class")
    report.update_section(FLAGS.output, SECTION, render_markdown(result, command))
    return FLAGS.output


def main(argv):
    return cli.main(argv, read_settings, write_report)


if __name__ == "__main__":
    define_flags()
    app.run(main)
