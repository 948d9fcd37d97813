"""Smoke test of `python -m experiments.table --quick` and its parts."""

import re

import pytest

from experiments import report
from experiments.table import cli as table
from experiments.table import markdown as table_markdown
from experiments.table import runs as table_runs
from tests.experiments import table_cli

TRAIN, TEST = 600, 300


def _run(*arguments):
    return table_cli.run_experiment("experiments.table", *arguments, timeout=300)


def _table_rows(markdown):
    return table_cli.table_rows(markdown, 6)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "teacher, label, teacher_parameters",
    [
        ("cnn", "CNN", 824_458),
        # The paper's MLP teacher: the same code path with another builder;
        # slow to keep the default suite near 15 minutes on 2 cores.
        pytest.param("mlp", "MLP 1200-1200", 2_395_210, marks=pytest.mark.slow),
    ],
)
def test_quick_run_writes_the_results_table(
    tmp_path, teacher, label, teacher_parameters
):
    section = table_cli.quick_section(
        "experiments.table",
        table.SECTION,
        tmp_path / "RESULTS.md",
        f"--limit-train={TRAIN}",
        f"--limit-test={TEST}",
        f"--teacher={teacher}",
        timeout=300,
    )
    assert "python -m experiments.table --quick" in section
    rows = _table_rows(section)
    assert list(rows) == list(table_runs.ROW_NAMES)
    for name, (_, _, errors, parameters, seconds, _gap) in rows.items():
        mean = float(errors.split("±")[0])
        assert 0 <= mean <= TEST, (name, errors)
        if name.startswith("Student"):
            assert parameters == "1,276,810"
            assert float(seconds.split("±")[0]) > 0
    assert rows[table_runs.ROW_TEACHER][3] == f"{teacher_parameters:,}"
    assert (
        rows[table_runs.ROW_ENSEMBLE][3] == f"{2 * teacher_parameters:,}"
    )  # two teachers
    assert rows[table_runs.ROW_TEACHER][1].startswith(f"{label}: ")
    for name in (table_runs.ROW_KDKERAS, table_runs.ROW_KERAS):
        assert f", {label} teacher, " in rows[name][1]
    assert rows[table_runs.ROW_ALONE][5] == "0% (reference)"
    for name in (
        table_runs.ROW_KDKERAS,
        table_runs.ROW_KERAS,
        table_runs.ROW_KDKERAS_ENSEMBLE,
    ):
        assert re.fullmatch(r"-?\d+%|n/a \(teacher not better\)", rows[name][5])
    per_seed = re.findall(r"- Student alone: (\d+)$", section, re.M)
    assert per_seed and 0 <= int(per_seed[0]) <= TEST


@pytest.mark.e2e
def test_parallel_seeds_run_in_their_own_processes_and_are_merged(tmp_path):
    output = tmp_path / "RESULTS.md"
    completed = _run(
        "--quick",
        "--seeds=0,1",
        "--jobs=2",
        "--epochs=1",
        f"--limit-train={TRAIN // 2}",
        f"--limit-test={TEST}",
        f"--output={output}",
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    section = report.read_section(str(output), table.SECTION)
    assert "Seeds ran 2 at a time, each in its own process" in section
    assert "seeds 0, 1 (mean ± std over seeds)" in section
    for name in table_runs.ROW_NAMES[2:]:
        per_seed = re.findall(rf"^- {re.escape(name)}: (\d+), (\d+)$", section, re.M)
        assert per_seed, name  # both seeds' errors, merged in seed order
        assert all(0 <= int(e) <= TEST for e in per_seed[0])


def test_render_markdown_reports_mean_std_and_gap_over_seeds():
    from experiments.recipe import Recipe

    def row(name, errors, teacher=""):
        return table_runs.Row(
            name, "how", 1000, list(errors), [1.0] * len(errors), teacher
        )

    rows = [
        row(table_runs.ROW_TEACHER, [80]),
        row(table_runs.ROW_ENSEMBLE, [70]),
        row(table_runs.ROW_ALONE, [100, 104]),
        row(table_runs.ROW_KDKERAS, [90, 92], table_runs.ROW_TEACHER),
        row(table_runs.ROW_KERAS, [96, 98], table_runs.ROW_TEACHER),
        row(table_runs.ROW_KDKERAS_ENSEMBLE, [110, 110], table_runs.ROW_ENSEMBLE),
    ]
    info = {
        "train_size": 10,
        "test_size": 200,
        "student_recipe": Recipe(),
        "teacher_recipe": Recipe(),
        "seeds": [0],
        "all_seeds": [0, 1],
        "single_cache_seconds": 1.0,
        "cache_seconds": 2.0,
        "teachers_cached": True,
    }
    cells = _table_rows(table_markdown.render_markdown(rows, info, "cmd"))
    assert cells[table_runs.ROW_ALONE][2] == "102.0 ± 2.8"
    assert cells[table_runs.ROW_KDKERAS][5] == "50%"  # (102 - 91) / (102 - 80)
    assert cells[table_runs.ROW_KERAS][5] == "23%"  # (102 - 97) / 22
    assert cells[table_runs.ROW_KDKERAS_ENSEMBLE][5] == "-25%"  # worse than alone
    assert "Partial results: 1 of 2 seeds" in table_markdown.render_markdown(
        rows, info, "cmd"
    )
    assert "2 s including the ensemble members" in table_markdown.render_markdown(
        rows, info, "cmd"
    )
    # No ensemble trained (no method learns from it): the note does not
    # claim one.
    alone = table_markdown.render_markdown(
        [r for r in rows if r.name != table_runs.ROW_ENSEMBLE and not r.teacher]
        + [rows[3]],
        dict(info, cache_seconds=1.0),
        "cmd",
    )
    assert "1 s for the CNN teacher; not in the training-time column" in alone
    assert "ensemble members" not in alone


@pytest.mark.e2e
@pytest.mark.parametrize(
    "arguments, message, expected_code",
    [
        (["--seeds=a,b"], "--seeds", 2),
        (["--epochs=0"], "--epochs", 2),
        (["--quick", "--temperature=-1"], "temperature", 1),
    ],
)
def test_bad_flags_exit_non_zero_with_one_line(
    tmp_path, arguments, message, expected_code
):
    output = tmp_path / "RESULTS.md"
    completed = _run(*arguments, f"--output={output}", "--limit-train=10")
    assert completed.returncode == expected_code
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not output.exists()


@pytest.mark.parametrize(
    "alone, distilled, teacher, expected",
    [
        (146, 74, 67, 72 / 79),
        (1187, 989, 775, 198 / 412),
        (100, 100, 80, 0.0),
        (100, 110, 80, -0.5),
        (100, 90, 100, None),
        (100, 90, 120, None),
    ],
)
def test_gap_closed(alone, distilled, teacher, expected):
    result = table_markdown.gap_closed(alone, distilled, teacher)
    assert result == (pytest.approx(expected) if expected is not None else None)
