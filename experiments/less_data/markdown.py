"""The less-data experiment's RESULTS.md section and the issue's goals.

`goals` judges a `experiments.less_data.cli.run` result against the goals set for learning from few labels;
`render_markdown` writes its section: the settings, one row per teacher and
student (mean ± std over the seeds), the per-seed accuracies and the goals.
"""

import datetime
import os
import platform
import statistics

from experiments.less_data.students import ALL_LABELS
from experiments.less_data.students import ALONE
from experiments.less_data.students import DISTILLED
from experiments.less_data.students import UNLABELLED_TOO
from experiments.less_data.students import describe_teacher
from experiments.report import mean_std

#: The share of the (a)→all-labels accuracy difference (c) must recover.
GOAL_RECOVERED = 0.8


def recovered_share(alone, unlabelled_too, all_labels):
    """(c) − (a) over (all labels − (a)), or None if (a) is not below.

    Example:

    >>> round(recovered_share(0.8, 0.88, 0.9), 2)
    0.8
    """
    difference = all_labels - alone
    return (unlabelled_too - alone) / difference if difference > 0 else None


def percent(fraction):
    """A fraction of the labels as text, e.g. `3%`."""
    return f"{100 * fraction:g}%"


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
    ...     {"fraction": None, "how": ALL_LABELS,
    ...      "accuracy": [0.9, 0.9]},
    ...     {"fraction": 0.1, "how": ALONE, "accuracy": [0.8, 0.82]},
    ...     {"fraction": 0.1, "how": DISTILLED, "accuracy": [0.85, 0.85]},
    ...     {"fraction": 0.1, "how": UNLABELLED_TOO, "accuracy": [0.9, 0.88]}]
    >>> [(round(g["recovered"], 2), round(g["gain"], 2), g["seeds_better"])
    ...  for g in goals({"rows": rows})]
    [(0.89, 0.04, 2)]
    """
    full = statistics.fmean(
        next(row for row in result["rows"] if row["how"] == ALL_LABELS)["accuracy"]
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
        outcome.append(
            {
                "fraction": fraction,
                "recovered": recovered_share(
                    statistics.fmean(alone),
                    statistics.fmean(by_how[UNLABELLED_TOO]),
                    full,
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


def render_markdown(result, command, how_run=""):
    """The 'less-data' section of RESULTS.md for a `run` result.

    Args:
        result: A `less_data.run` result.
        command: The command reproducing it.
        how_run: Optional text on how the command was run, after it.
    """
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
        f"Reproduce with `{command}`{how_run}",
        f"(written {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"{os.cpu_count()} CPUs on {platform.machine()}, shared with other "
        "jobs: times are indicative).",
        "",
        f"Data: Fashion-MNIST, {result['train_size']} training and "
        f"{result['test_size']} test images. Teacher: "
        f"`models.build_cnn_teacher()`, seed 0, trained on all "
        f"{result['train_size']} labelled training images "
        f"({describe_teacher(result['teacher_recipe'])}). "
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
            else f"{percent(row['fraction'])} ({row['labelled']:,})"
        )
        teacher_row = row is result["rows"][0]
        passes = (
            f"{result['teacher_recipe'].epochs}"
            if teacher_row
            else f"{settings['steps'] * recipe.batch_size / row['examples']:.1f}"
        )
        errors = [test_size * (1.0 - value) for value in row["accuracy"]]
        seconds = mean_std(row["seconds"]) if row["seconds"] else "cached"
        lines.append(
            f"| {labels} | {row['how']} | {row['examples']:,} | {passes} "
            f"| {mean_std(row['accuracy'], 2, 100)} | {mean_std(errors, 1)} "
            f"| {mean_std(row['agreement'], 2, 100)} | {seconds} |"
        )
    lines += ["", "Per-seed test accuracy (%):", ""]
    for row in result["rows"][1:]:
        label = "all labels" if row["fraction"] is None else percent(row["fraction"])
        values = ", ".join(f"{100 * value:.2f}" for value in row["accuracy"])
        lines.append(f"- {label}, {row['how']}: {values}")
    lines += ["", "The experiment's goals:", ""]
    smallest = min(settings["fractions"])
    for goal in goals(result):
        name = percent(goal["fraction"])
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
        "(`experiments.less_data.subsets.select_labelled`); the same subset in (a), "
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
        "- How T and alpha were chosen: `python -m experiments.less_data.probe` "
        "(the section after this one: the (c) of the highest accuracy), with "
        "a seed that is not among the seeds above, measuring the students on "
        "the last training images, held out of their training, not on the "
        "test set. The number of steps was not tuned. The teacher's recipe "
        "(`--teacher-recipe`) is examples/demo.py's, which had fewer test "
        "errors than the constant learning rate: that choice did see the "
        "test set.",
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
