"""Tests of `python -m experiments.less_data`: subsets, goals, a smoke run."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from experiments import report
from experiments.less_data import cli as less_data
from experiments.less_data import markdown as less_data_markdown
from experiments.less_data import students as less_data_students
from experiments.less_data import subsets as less_data_subsets
from kdkeras.targets import UNLABELLED
from models import data
from tests.experiments import table_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*arguments, module="experiments.less_data"):
    command = [sys.executable, "-m", module, *arguments]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def fashion_labels():
    (_, y_train), _ = data.load_fashion_mnist(limit_test=1)
    return y_train


@pytest.mark.parametrize("fraction, size", [(0.03, 1_800), (0.1, 6_000)])
def test_labelled_subset_is_stratified_and_seeded(fashion_labels, fraction, size):
    labelled = less_data_subsets.select_labelled(fashion_labels, fraction, seed=0)
    assert len(labelled) == size == len(np.unique(labelled))
    assert np.all(np.diff(labelled) > 0)
    # Fashion-MNIST has 6,000 training images per class.
    assert np.bincount(fashion_labels[labelled], minlength=10).tolist() == (
        [size // 10] * 10
    )
    again = less_data_subsets.select_labelled(fashion_labels, fraction, seed=0)
    other = less_data_subsets.select_labelled(fashion_labels, fraction, seed=1)
    np.testing.assert_array_equal(labelled, again)
    assert len(np.intersect1d(labelled, other)) < size // 2


def test_partly_labelled_keeps_exactly_the_subsets_labels(fashion_labels):
    labelled = less_data_subsets.select_labelled(fashion_labels, 0.03, seed=2)
    marked = less_data_subsets.partly_labelled(fashion_labels, labelled)
    kept = np.flatnonzero(marked != UNLABELLED)
    np.testing.assert_array_equal(kept, labelled)
    np.testing.assert_array_equal(marked[kept], fashion_labels[kept])
    assert np.sum(marked == UNLABELLED) == len(fashion_labels) - 1_800
    # A seed's smaller subset lies inside its larger one.
    larger = less_data_subsets.select_labelled(fashion_labels, 0.1, seed=2)
    assert np.all(np.isin(labelled, larger))


@pytest.mark.parametrize(
    "counts, fraction",
    [([7, 3, 11], 0.25), ([1, 1, 98], 0.1), ([50, 50], 0.01)],
)
def test_uneven_classes_get_their_share_and_the_total_is_rounded(counts, fraction):
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(0).shuffle(labels)
    labelled = less_data_subsets.select_labelled(labels, fraction, seed=3)
    assert len(labelled) == round(fraction * len(labels))
    per_class = np.bincount(labels[labelled], minlength=len(counts))
    assert np.all(np.abs(per_class - fraction * np.array(counts)) < 1)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, float("nan")])
def test_bad_fraction_is_refused(fraction):
    with pytest.raises(ValueError, match="`fraction` must be in"):
        less_data_subsets.select_labelled(np.arange(10) % 2, fraction, seed=0)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "module, flag",
    [
        ("experiments.less_data", "--fractions=0.03,1.5"),
        ("experiments.less_data", "--fractions=x"),
        ("experiments.less_data", "--seeds=a"),
        ("experiments.less_data", "--steps=0"),
        ("experiments.less_data", "--student-units=0"),
        ("experiments.less_data", "--alpha=2"),
        ("experiments.less_data.probe", "--steps=0"),
        ("experiments.less_data.probe", "--steps=x"),
        ("experiments.less_data.probe", "--temperatures=0"),
        ("experiments.less_data.probe", "--alphas=1.5"),
        ("experiments.less_data.probe", "--fraction=1"),
        ("experiments.less_data.probe", "--validation=0"),
        ("experiments.less_data.probe", "--teacher-epochs=0"),
    ],
)
def test_bad_flag_exits_2_with_one_line(tmp_path, module, flag):
    output = tmp_path / "RESULTS.md"
    completed = _run(flag, f"--output={output}", module=module)
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert completed.stderr.startswith("error: `--")
    assert len(completed.stderr.strip().splitlines()) == 1
    assert not output.exists()


def _table(section):
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 8 and re.match(r"all |\d+%", cells[0]):
            rows.append(cells)
    return rows


@pytest.mark.e2e
def test_smoke_run_writes_a_consistent_section(tmp_path):
    train, test, steps = 400, 200, 3
    output = tmp_path / "RESULTS.md"
    section = table_cli.quick_section(
        "experiments.less_data",
        less_data.SECTION,
        output,
        "--fractions=0.1",
        f"--steps={steps}",
        f"--limit-train={train}",
        f"--limit-test={test}",
        timeout=300,
    )
    assert "Reproduce with `python -m experiments.less_data --quick" in section
    rows = _table(section)
    assert [row[1] for row in rows] == [
        "teacher (CNN), all labels",
        "student alone, all labels",
        *less_data_students.HOWS,
    ]
    expected = {  # labels, images per pass
        "teacher (CNN), all labels": (f"all {train}", train),
        "student alone, all labels": (f"all {train}", train),
        less_data_students.ALONE: ("10% (40)", 40),
        less_data_students.DISTILLED: ("10% (40)", 40),
        less_data_students.UNLABELLED_TOO: ("10% (40)", train),
    }
    for labels, how, examples, passes, accuracy, errors, agrees, _ in rows:
        assert (labels, int(examples)) == expected[how]
        mean_accuracy = float(accuracy.split("±")[0])
        mean_errors = float(errors.split("±")[0])
        assert 0 <= mean_accuracy <= 100 and 0 <= float(agrees.split("±")[0]) <= 100
        assert mean_errors == pytest.approx(test * (1 - mean_accuracy / 100), abs=0.1)
        if how != "teacher (CNN), all labels":
            assert float(passes) == pytest.approx(steps * 128 / int(examples), abs=0.05)
    per_seed = re.findall(r"^- 10%, \(a\) alone, labelled images: (.*)$", section, re.M)
    assert 0 <= float(per_seed[0]) <= 100  # one seed
    assert re.search(r"- 10% labels: \(c\) recovers .* of the accuracy", section)
    assert re.search(
        r"- 10% labels: \(b\) − \(a\) = [+-]\d+\.\d\d points .*: "
        r"(undecided: one seed has no spread|no: \(b\) is not better)",
        section,
    )


def _result(alone, distilled, unlabelled_too, all_labels):
    from experiments.recipe import Recipe

    def row(fraction, how, accuracy):
        return {
            "fraction": fraction,
            "how": how,
            "labelled": 10,
            "examples": 10,
            "accuracy": accuracy,
            "agreement": accuracy,
            "seconds": [1.0] * 3,
        }

    return {
        "settings": {
            "seeds": [0, 1, 2],
            "fractions": [0.03],
            "steps": 5,
            "student_units": [8],
        },
        "seeds_done": [0, 1, 2],
        "recipe": Recipe(epochs=1, augment=False),
        "teacher_recipe": Recipe(epochs=1, augment=False),
        "train_size": 100,
        "test_size": 100,
        "parameters": 1,
        "teacher_cached": True,
        "rows": [
            row(None, "teacher (CNN), all labels", [0.95]),
            row(None, "student alone, all labels", all_labels),
            row(0.03, less_data_students.ALONE, alone),
            row(0.03, less_data_students.DISTILLED, distilled),
            row(0.03, less_data_students.UNLABELLED_TOO, unlabelled_too),
        ],
    }


@pytest.mark.parametrize(
    "distilled, unlabelled_too, recovered, verdict",
    [
        ([0.85, 0.86, 0.84], [0.88, 0.89, 0.87], "**80%** of", "yes, beyond"),
        ([0.85, 0.86, 0.84], [0.8797, 0.8797, 0.8797], "**79.70%** of", "yes"),
        ([0.81, 0.83, 0.79], [0.87, 0.88, 0.86], "**70%** of", "a tie"),
        ([0.79, 0.80, 0.78], [0.80, 0.80, 0.80], "**0%** of", "no: (b)"),
    ],
)
def test_goals_are_judged_on_means_and_the_seeds_spread(
    distilled, unlabelled_too, recovered, verdict
):
    # (a) 0.80 ± 0.01 and all labels 0.90: (c) at 0.88 recovers 80%.
    result = _result([0.80, 0.81, 0.79], distilled, unlabelled_too, [0.9] * 3)
    section = less_data_markdown.render_markdown(
        result, "python -m experiments.less_data"
    )
    assert f"(c) recovers {recovered} the accuracy difference" in section
    met = "met" if recovered == "**80%** of" else "NOT met"
    assert f"(goal ≥ 80%: {met})" in section
    gain = r"\(b\) − \(a\) = [+-]\d+\.\d\d points .*: "
    assert re.search(gain + re.escape(verdict), section)


@pytest.mark.e2e
def test_seeds_run_apart_merge_into_one_section(tmp_path):
    from experiments.less_data import seeds as less_data_seeds

    command = "python -m experiments.less_data --steps=5"
    paths = []
    for seed, shift in ((0, 0.0), (1, 0.01), (2, -0.01)):
        result = _result([0.80 + shift], [0.85], [0.88 + shift], [0.9])
        result["settings"]["seeds"] = result["seeds_done"] = [seed]
        paths.append(tmp_path / f"seed{seed}.json")
        less_data_seeds.write_result(str(paths[-1]), result, command)
    output = tmp_path / "RESULTS.md"
    completed = _run(f"--merge-json={','.join(map(str, paths))}", f"--output={output}")
    assert completed.returncode == 0, completed.stderr[-2000:]
    section = report.read_section(str(output), less_data.SECTION)
    assert f"Reproduce with `{command}` (run as 3 processes" in section
    assert "- 3%, (a) alone, labelled images: 80.00, 81.00, 79.00" in section
    unlabelled_too = "- 3%, (c) distilled, + the other images unlabelled: "
    assert unlabelled_too + "88.00, 89.00, 87.00" in section
    # A result of other settings is refused with one line, nothing written.
    other = _result([0.8], [0.85], [0.88], [0.9])
    other["settings"]["steps"] = 6
    other["settings"]["seeds"] = other["seeds_done"] = [3]
    less_data_seeds.write_result(str(tmp_path / "other.json"), other, command)
    refused = tmp_path / "REFUSED.md"
    completed = _run(
        f"--merge-json={paths[0]},{tmp_path / 'other.json'}", f"--output={refused}"
    )
    assert completed.returncode == 1
    # TensorFlow's start-up logs come first: the error is the last line.
    assert completed.stderr.strip().splitlines()[-1] == (
        "error: `results` must share every setting but the seeds. "
        "Received: steps=5 and steps=6"
    )
    assert not refused.exists()
