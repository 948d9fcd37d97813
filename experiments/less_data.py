"""Less labelled data: a student on few labels, with and without soft targets.

    python -m experiments.less_data            # full run, writes RESULTS.md
    python -m experiments.less_data --quick    # smoke run on a slice

Hinton, Vinyals & Dean (2015) trained a speech model on 3% of its data:
hard targets overfit (44.5% frame accuracy), soft targets did not (57.0%,
against 58.9% with all the data). Here, on Fashion-MNIST, a CNN teacher is
trained on all the labelled training images (`models.build_cnn_teacher()`,
cached in `--cache-dir`). For each fraction of `--fractions`, a stratified
subset of the training images keeps its labels (`select_labelled`) and an
MLP student is trained in three ways:

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
issue's goals: (c) recovers at least 80% of the accuracy difference between
(a) and the student on all labels at the smallest fraction, and (b) beats
(a) by more than the seeds' spread.
"""

import datetime
import functools
import os
import platform
import statistics
import time

import numpy as np
from absl import app
from absl import flags

from experiments import cli
from experiments import report

FLAGS = flags.FLAGS

#: The RESULTS.md section this experiment writes.
SECTION = "less-data"
#: The settings read from flags (underscored names; the flags are dashed).
SETTINGS = (
    "fractions",
    "seeds",
    "steps",
    "student_units",
    "teacher_epochs",
    "temperature",
    "alpha",
    "batch_size",
    "learning_rate",
    "schedule",
    "limit_train",
    "limit_test",
    "cache_dir",
)
QUICK = {
    "seeds": ["0"],
    "steps": 20,
    "teacher_epochs": 1,
    "student_units": ["32"],
    "limit_train": 1000,
    "limit_test": 500,
}
#: How each student trains at a fraction of the labels.
ALONE = "(a) alone, labelled images"
DISTILLED = "(b) distilled, labelled images"
UNLABELLED_TOO = "(c) distilled, + the other images unlabelled"
HOWS = (ALONE, DISTILLED, UNLABELLED_TOO)
#: The share of the (a)→all-labels accuracy difference (c) must recover.
GOAL_RECOVERED = 0.8


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
        1500,
        "Optimizer steps of every student run, whatever its training set.",
    )
    flags.DEFINE_list(
        "student-units",
        ["800", "800"],
        "Hidden widths of the MLP student (models.build_mlp_student).",
    )
    flags.DEFINE_integer("teacher-epochs", 5, "Epochs of the CNN teacher.")
    cli.define_distillation_flags(temperature=20.0)
    flags.DEFINE_float("learning-rate", 1e-3, "Adam's initial learning rate.")
    flags.DEFINE_enum(
        "schedule",
        "cosine",
        ["cosine", "constant"],
        "Learning-rate schedule of the students (cosine: to 0 over --steps).",
    )
    cli.define_run_flags(
        quick_help="Smoke run: 20 steps, 1 seed, a 784-32-10 student, a "
        "1-epoch teacher, 1000 train / 500 test examples (explicit flags "
        "still win).",
        output_help="Markdown file (section 'less-data').",
        cache_help="Folder caching the trained teacher (.keras); empty: none.",
    )


def _ints(name, values):
    try:
        return [int(value) for value in values]
    except ValueError:
        raise ValueError(
            f"`--{cli.flag_name(name)}` must be a comma-separated list of "
            f"ints. Received: {','.join(values)}"
        ) from None


def read_settings():
    """The run's settings: flags, with --quick filling unset ones."""
    settings = cli.settings_from_flags(SETTINGS, QUICK)
    settings["seeds"] = _ints("seeds", settings["seeds"])
    settings["student_units"] = _ints("student_units", settings["student_units"])
    try:
        settings["fractions"] = [float(value) for value in settings["fractions"]]
    except ValueError:
        settings["fractions"] = [float("nan")]
    if not settings["fractions"] or not all(
        0.0 < fraction < 1.0 for fraction in settings["fractions"]
    ):
        raise ValueError(
            "`--fractions` must be a comma-separated list of numbers in "
            f"(0, 1). Received: {','.join(FLAGS.fractions)}"
        )
    settings["fractions"] = sorted(set(settings["fractions"]))
    if not settings["seeds"]:
        raise ValueError("`--seeds` must name at least one seed.")
    if not settings["student_units"] or min(settings["student_units"]) < 1:
        raise ValueError(
            "`--student-units` must be one or more ints >= 1. "
            f"Received: {','.join(FLAGS['student-units'].value)}"
        )
    cli.check_at_least_one(settings, ("steps", "teacher_epochs", "batch_size"))
    if not 0.0 <= settings["alpha"] <= 1.0:
        raise ValueError(f"`--alpha` must be in [0, 1]. Received: {settings['alpha']}")
    if not settings["temperature"] > 0 or not settings["learning_rate"] > 0:
        raise ValueError(
            "`--temperature` and `--learning-rate` must be > 0. Received: "
            f"{settings['temperature']}, {settings['learning_rate']}"
        )
    return settings


def select_labelled(labels, fraction, seed):
    """The indices of a stratified, seeded subset that keeps its labels.

    Each class keeps `fraction` of its examples, rounded so that the total is
    `round(fraction * len(labels))` (largest remainders first, ties to the
    lower class). Within a class, the examples kept are the first of a
    permutation drawn from `seed` and the class, so for one seed a smaller
    fraction's subset is contained in a larger fraction's.

    Args:
        labels: Int labels `(N,)`.
        fraction: Float in (0, 1).
        seed: Int seed.

    Returns:
        Sorted int64 indices into `labels`.

    Example:

    >>> labels = np.arange(100) % 4
    >>> kept = select_labelled(labels, 0.2, seed=0)
    >>> len(kept), np.bincount(labels[kept]).tolist()
    (20, [5, 5, 5, 5])
    """
    labels = np.asarray(labels)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"`fraction` must be in (0, 1). Received: fraction={fraction}")
    classes, counts = np.unique(labels, return_counts=True)
    shares = fraction * counts
    kept = np.floor(shares).astype(int)
    remainder = int(round(fraction * len(labels))) - int(kept.sum())
    # Largest fractional parts first; a stable sort breaks ties by class.
    order = np.argsort(-(shares - kept), kind="stable")
    kept[order[:remainder]] += 1
    indices = []
    for label, count in zip(classes, kept, strict=True):
        members = np.flatnonzero(labels == label)
        rng = np.random.default_rng([seed, int(label)])
        indices.append(members[rng.permutation(len(members))[:count]])
    return np.sort(np.concatenate(indices)).astype("int64")


def partly_labelled(labels, labelled):
    """`labels` with every example not in `labelled` marked unlabelled.

    Example:

    >>> partly_labelled(np.array([3, 1, 4, 1]), np.array([0, 2])).tolist()
    [3, -1, 4, -1]
    """
    from kdkeras.targets import UNLABELLED

    marked = np.full(len(labels), UNLABELLED, dtype=np.asarray(labels).dtype)
    marked[labelled] = np.asarray(labels)[labelled]
    return marked


def _fit_steps(model, dataset, steps):
    """Fits `steps` optimizer steps on the repeated dataset; returns seconds."""
    start = time.perf_counter()
    model.fit(dataset.repeat(), epochs=1, steps_per_epoch=steps, verbose=0)
    return time.perf_counter() - start


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
    import keras

    import models
    from experiments import training
    from experiments.recipe import Recipe
    from kdkeras import Distiller
    from kdkeras import soft_target_dataset
    from kdkeras.targets import split_targets
    from models import data

    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(
        settings["limit_train"], settings["limit_test"]
    )
    # The demo's teacher recipe, on every labelled training image.
    teacher_recipe = Recipe(
        epochs=settings["teacher_epochs"], schedule="constant", augment=False
    )
    log(f"teacher: {teacher_recipe.epochs} epochs (or the cached one)")
    teacher, teacher_seconds = training.cached_cnn_teacher(
        settings["cache_dir"], teacher_recipe, x_train, y_train
    )
    train_logits = training.predict_logits(teacher, x_train)
    test_logits = training.predict_logits(teacher, x_test)
    teacher_predictions = np.argmax(test_logits, axis=-1)
    # Steps count from the start of every run: `epochs=1` makes a cosine
    # schedule decay over exactly `steps`.
    recipe = Recipe(
        epochs=1,
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        schedule=settings["schedule"],
        augment=False,
        temperature=settings["temperature"],
        alpha=settings["alpha"],
    )
    steps = settings["steps"]
    units = tuple(settings["student_units"])

    def student():
        return models.build_mlp_student(hidden_units=units)

    def dataset(indices, labels, seed):
        """Shuffled batches of the examples at `indices` (None: all)."""
        if indices is None:
            images, targets, logits = x_train, labels, train_logits
        else:
            images = x_train[indices]
            targets, logits = labels[indices], train_logits[indices]
        return soft_target_dataset(
            images, targets, logits, batch_size=recipe.batch_size, seed=seed
        )

    def hard_labels_only(images, targets):
        return images, split_targets(targets)[0]

    def train_alone(indices, seed):
        model = student()
        model.compile(
            optimizer=recipe.optimizer(steps),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        seconds = _fit_steps(
            model, dataset(indices, y_train, seed).map(hard_labels_only), steps
        )
        return model, seconds

    def train_distilled(indices, labels, seed):
        distiller = Distiller(student=student(), teacher=teacher)
        distiller.compile(
            optimizer=recipe.optimizer(steps),
            student_loss_fn=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True
            ),
            alpha=recipe.alpha,
            temperature=recipe.temperature,
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
        seconds = _fit_steps(distiller, dataset(indices, labels, seed), steps)
        check_distiller_metrics(distiller)
        return distiller.student, seconds

    def check_distiller_metrics(distiller):
        """The Distiller's test metrics must match NumPy's on the test set."""
        logs = distiller.evaluate(
            soft_target_dataset(
                x_test, y_test, test_logits, batch_size=1024, shuffle=False
            ),
            verbose=0,
            return_dict=True,
        )
        predictions = np.argmax(
            training.predict_logits(distiller.student, x_test), axis=-1
        )
        expected = {
            "accuracy": np.mean(predictions == y_test),
            "teacher_agreement": np.mean(predictions == teacher_predictions),
        }
        for name, value in expected.items():
            if abs(float(logs[name]) - value) > 1e-6:
                raise RuntimeError(
                    f"Distiller.evaluate reports {name}={float(logs[name])} on "
                    f"the test set, NumPy {value}."
                )

    rows = [
        {
            "fraction": None,
            "how": "teacher (CNN), all labels",
            "labelled": len(y_train),
            "examples": len(y_train),
            "accuracy": [float(np.mean(teacher_predictions == y_test))],
            "agreement": [1.0],
            "seconds": [teacher_seconds] if teacher_seconds else [],
        },
        {
            "fraction": None,
            "how": "student alone, all labels",
            "labelled": len(y_train),
            "examples": len(y_train),
            "accuracy": [],
            "agreement": [],
            "seconds": [],
        },
    ]
    subsets = {}
    for fraction in settings["fractions"]:
        for how in HOWS:
            size = int(round(fraction * len(y_train)))
            rows.append(
                {
                    "fraction": fraction,
                    "how": how,
                    "labelled": size,
                    "examples": len(y_train) if how == UNLABELLED_TOO else size,
                    "accuracy": [],
                    "agreement": [],
                    "seconds": [],
                }
            )
    result = {
        "rows": rows,
        "subsets": subsets,
        "settings": settings,
        "train_size": len(y_train),
        "test_size": len(y_test),
        "recipe": recipe,
        "teacher_recipe": teacher_recipe,
        "teacher_cached": teacher_seconds is None,
        "seeds_done": [],
        "parameters": student().count_params(),
    }
    for seed in settings["seeds"]:
        runs = [(rows[1], lambda seed=seed: train_alone(None, seed))]
        for fraction in settings["fractions"]:
            labelled = select_labelled(y_train, fraction, seed)
            subsets[(seed, fraction)] = labelled
            by_how = {row["how"]: row for row in rows if row["fraction"] == fraction}
            runs += [
                (
                    by_how[ALONE],
                    lambda labelled=labelled, seed=seed: train_alone(labelled, seed),
                ),
                (
                    by_how[DISTILLED],
                    lambda labelled=labelled, seed=seed: train_distilled(
                        labelled, y_train, seed
                    ),
                ),
                (
                    by_how[UNLABELLED_TOO],
                    lambda labelled=labelled, seed=seed: train_distilled(
                        None, partly_labelled(y_train, labelled), seed
                    ),
                ),
            ]
        for row, train in runs:
            keras.utils.set_random_seed(seed)
            model, seconds = train()
            predictions = np.argmax(training.predict_logits(model, x_test), axis=-1)
            row["accuracy"].append(float(np.mean(predictions == y_test)))
            row["agreement"].append(float(np.mean(predictions == teacher_predictions)))
            row["seconds"].append(seconds)
            log(
                f"seed {seed}: {row['labelled']} labelled, {row['how']}: "
                f"accuracy {row['accuracy'][-1]:.4f}, {seconds:.0f} s"
            )
        result["seeds_done"].append(seed)
        if on_seed is not None:
            on_seed(result)
    return result


def _mean_std(values, scale=100.0, digits=2):
    """`mean ± std` (sample std) of `values * scale`."""
    scaled = [scale * value for value in values]
    text = f"{statistics.fmean(scaled):.{digits}f}"
    if len(scaled) > 1:
        text += f" ± {statistics.stdev(scaled):.{digits}f}"
    return text


def _spread(values):
    return statistics.stdev(values) if len(values) > 1 else 0.0


def goals(result):
    """The issue's goals at each fraction, from a `run` result.

    Returns:
        A list of dicts, one per fraction: `fraction`, `recovered` ((c) − (a))
        / (all labels − (a)) on mean accuracies (None if (a) is not below
        the student on all labels), `gain` (mean (b) − mean (a)), `spread`
        (std (a) + std (b)), `seeds_better` ((b) > (a) in how many seeds).

    Example:

    >>> rows = [
    ...     {"fraction": None, "how": "student alone, all labels",
    ...      "accuracy": [0.9, 0.9]},
    ...     {"fraction": 0.1, "how": ALONE, "accuracy": [0.8, 0.82]},
    ...     {"fraction": 0.1, "how": DISTILLED, "accuracy": [0.85, 0.85]},
    ...     {"fraction": 0.1, "how": UNLABELLED_TOO, "accuracy": [0.9, 0.88]}]
    >>> [(round(g["recovered"], 2), round(g["gain"], 2), g["seeds_better"])
    ...  for g in goals({"rows": rows})]
    [(0.89, 0.04, 2)]
    """
    full = statistics.fmean(
        next(
            row for row in result["rows"] if row["how"] == "student alone, all labels"
        )["accuracy"]
    )
    fractions = sorted(
        {row["fraction"] for row in result["rows"] if row["fraction"] is not None}
    )
    outcome = []
    for fraction in fractions:
        by_how = {
            row["how"]: row["accuracy"]
            for row in result["rows"]
            if row["fraction"] == fraction
        }
        alone, distilled = by_how[ALONE], by_how[DISTILLED]
        difference = full - statistics.fmean(alone)
        outcome.append(
            {
                "fraction": fraction,
                "recovered": (
                    (statistics.fmean(by_how[UNLABELLED_TOO]) - statistics.fmean(alone))
                    / difference
                    if difference > 0
                    else None
                ),
                "gain": statistics.fmean(distilled) - statistics.fmean(alone),
                "spread": _spread(alone) + _spread(distilled),
                "seeds_better": sum(
                    b > a for a, b in zip(alone, distilled, strict=True)
                ),
            }
        )
    return outcome


def _meets(recovered):
    """Whether `recovered` reaches the goal (exact shares up to rounding)."""
    return recovered >= GOAL_RECOVERED - 1e-9


def _share(recovered):
    """`recovered` in percent, precise enough to show which side of the goal."""
    if _meets(recovered) != (round(recovered, 2) >= GOAL_RECOVERED):
        return f"{recovered:.2%}"
    return f"{recovered:.0%}"


def _percent(fraction):
    return f"{100 * fraction:g}%"


def render_markdown(result, command):
    """The 'less-data' section of RESULTS.md for a `run` result."""
    import keras
    import tensorflow as tf

    settings, recipe = result["settings"], result["recipe"]
    seeds = result["seeds_done"]
    units = "-".join(map(str, settings["student_units"]))
    lines = [
        "## Less labelled data: few labels, soft targets, unlabelled images",
        "",
    ]
    if len(seeds) < len(settings["seeds"]):
        lines += [
            f"**Partial results: {len(seeds)} of {len(settings['seeds'])} "
            "seeds finished; the run is still going.**",
            "",
        ]
    lines += [
        f"Reproduce with `{command}`",
        f"(written {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"{os.cpu_count()} CPUs on {platform.machine()}, shared with other "
        "jobs: times are indicative).",
        "",
        f"Data: Fashion-MNIST, {result['train_size']} training and "
        f"{result['test_size']} test images. Teacher: "
        f"`models.build_cnn_teacher()`, seed 0, trained on all "
        f"{result['train_size']} labelled training images "
        f"({result['teacher_recipe'].describe().rsplit(', T=', 1)[0]}). "
        "Student: `models.build_mlp_student(hidden_units="
        f"{tuple(settings['student_units'])})` (784-{units}-10, "
        f"{result['parameters']:,} parameters). Every "
        f"student run: **{settings['steps']} optimizer steps** of batch "
        f"{recipe.batch_size}, Adam {recipe.learning_rate:g}, "
        f"{recipe.schedule} schedule"
        + (" decaying to 0 over the steps" if recipe.schedule == "cosine" else "")
        + f"; distilled: T={recipe.temperature:g}, alpha={recipe.alpha:g} "
        "(the hard-label loss over the labelled examples of a batch, the "
        "soft-target loss over all). Seeds "
        f"{', '.join(map(str, seeds))}: mean ± std over seeds.",
        "",
        "| labels | student | images per pass | passes | test accuracy (%) "
        "| test errors | agrees with teacher (%) | training time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    test_size = result["test_size"]
    for row in result["rows"]:
        labels = (
            f"all {row['labelled']:,}"
            if row["fraction"] is None
            else f"{_percent(row['fraction'])} ({row['labelled']:,})"
        )
        teacher_row = row is result["rows"][0]
        passes = (
            f"{result['teacher_recipe'].epochs}"
            if teacher_row
            else f"{settings['steps'] * recipe.batch_size / row['examples']:.1f}"
        )
        errors = [test_size * (1.0 - value) for value in row["accuracy"]]
        seconds = (
            _mean_std(row["seconds"], scale=1.0, digits=0)
            if row["seconds"]
            else "cached"
        )
        lines.append(
            f"| {labels} | {row['how']} | {row['examples']:,} | {passes} "
            f"| {_mean_std(row['accuracy'])} | {_mean_std(errors, 1.0, 1)} "
            f"| {_mean_std(row['agreement'])} | {seconds} |"
        )
    lines += ["", "Per-seed test accuracy (%):", ""]
    for row in result["rows"][1:]:
        label = "all labels" if row["fraction"] is None else _percent(row["fraction"])
        values = ", ".join(f"{100 * value:.2f}" for value in row["accuracy"])
        lines.append(f"- {label}, {row['how']}: {values}")
    lines += ["", "The issue's goals:", ""]
    smallest = min(settings["fractions"])
    for goal in goals(result):
        name = _percent(goal["fraction"])
        recovered = goal["recovered"]
        recovered_text = (
            "n/a ((a) is not below the student on all labels)"
            if recovered is None
            else f"**{_share(recovered)}**"
        )
        target = ""
        if goal["fraction"] == smallest and recovered is not None:
            met = _meets(recovered)
            target = f" (goal ≥ {GOAL_RECOVERED:.0%}: {'met' if met else 'NOT met'})"
        if goal["gain"] <= 0:
            verdict = "no: (b) is not better than (a)"
        elif len(seeds) < 2:
            verdict = "undecided: one seed has no spread"
        elif goal["gain"] > goal["spread"]:
            verdict = "yes, beyond the seeds' spread"
        else:
            verdict = "a tie: the gain is within the seeds' spread"
        lines += [
            f"- {name} labels: (c) recovers {recovered_text} of the accuracy "
            f"difference between (a) and the student on all labels{target}.",
            f"- {name} labels: (b) − (a) = {100 * goal['gain']:+.2f} points "
            f"(seeds' spread, std (a) + std (b): {100 * goal['spread']:.2f}; "
            f"(b) better in {goal['seeds_better']} of {len(seeds)} seeds): "
            f"{verdict}.",
        ]
    lines += [
        "",
        "Notes:",
        "",
        "- Labelled subsets: stratified (each class keeps the fraction of its "
        "images, rounded by largest remainders to the total), drawn per seed "
        "(`experiments.less_data.select_labelled`); the same subset in (a), "
        "(b) and (c) of a seed, and a seed's 3% subset lies inside its 10%.",
        "- Same schedule: every student run takes the same number of optimizer "
        "steps of the same batch size, so (a) and (b) pass over their few "
        "images many times and (c) over all images a few times ('passes' = "
        "steps × batch / images per pass). (a) and (b) of a seed see their "
        "images in the same order.",
        "- (c) is knowledge transfer, not semi-supervised learning from the "
        "few labels alone: its teacher was trained on all the labels.",
        "- 'agrees with teacher': test images on which the student's top-1 "
        "class is the teacher's. For (b) and (c) the run checks that "
        "`Distiller.evaluate`'s `accuracy` and `teacher_agreement` on the test "
        "set equal NumPy's.",
        "- The teacher's soft targets are computed once on the training images "
        "and fed with `kdkeras.soft_target_dataset`; the teacher does not run "
        "during training.",
        "- The teacher's training time: "
        + (
            "not shown, it was loaded from `--cache-dir` (trained earlier with "
            "the same settings)."
            if result["teacher_cached"]
            else "in its row."
        ),
    ]
    return "\n".join(lines) + "\n"


def write_report(settings):
    """Runs the experiment, writing its section after each seed."""
    command = cli.reproduce_command("experiments.less_data")

    def write(result):
        report.update_section(FLAGS.output, SECTION, render_markdown(result, command))

    write(run(settings, log=cli.progress_log(FLAGS.verbose), on_seed=write))
    return FLAGS.output


if __name__ == "__main__":
    define_flags()
    app.run(functools.partial(cli.main, read_settings=read_settings, run=write_report))
