"""Smoke test of `python -m experiments.compact --quick` and its parts."""

import re

import pytest

import models
from experiments import report
from experiments.compact import cli as compact
from experiments.compact import runs as compact_runs
from experiments.table import runs as table_runs
from tests.experiments import table_cli

TRAIN, TEST = 500, 300
COLUMNS = 9


def _run(*arguments):
    return table_cli.run_experiment("experiments.compact", *arguments)


def _table_rows(markdown):
    return table_cli.table_rows(markdown, COLUMNS)


@pytest.mark.e2e
def test_quick_run_writes_every_row_with_int8_figures(tmp_path):
    section = table_cli.quick_section(
        "experiments.compact",
        compact.SECTION,
        tmp_path / "RESULTS.md",
        f"--limit-train={TRAIN}",
        f"--limit-test={TEST}",
    )
    assert "python -m experiments.compact --quick" in section
    rows = _table_rows(section)
    expected = [table_runs.ROW_TEACHER, table_runs.ROW_ENSEMBLE] + [
        compact_runs.row_name(kind, method)
        for kind in compact_runs.STUDENTS.values()
        for method in compact_runs.METHODS
    ]
    assert list(rows) == expected
    teacher = rows[table_runs.ROW_TEACHER]
    assert teacher[4:6] == ["824,458", "9,287,680"]
    for kind in compact_runs.STUDENTS.values():
        student = kind.build()
        for method in compact_runs.METHODS:
            _, _, errors, gap, parameters, flops, kb, int8, seconds = rows[
                compact_runs.row_name(kind, method)
            ]
            assert 0 <= int(errors) <= TEST
            assert parameters == f"{student.count_params():,}"
            assert flops == f"{models.count_flops(student):,}"
            # int8: about a byte per parameter, well under float32's four.
            assert (
                0.5 * student.count_params()
                < 1000 * float(kb)
                < 2 * (student.count_params() + 10_000)
            )
            assert 0 <= int(int8) <= TEST
            assert float(seconds) > 0
            if not method.teacher:
                assert gap == "0% (reference)"
            else:
                assert re.fullmatch(r"-?\d+%|n/a \(teacher not better\)", gap)
        # The online row is measured against the student alone on the same
        # kind of augmented batches, not against the plain baseline.
        online = rows[f"{kind.label}: kdkeras, KD, online"]
        baseline = int(rows[f"{kind.label}: alone, augmented online"][2])
        gap = baseline - int(teacher[2])
        if gap > 0:
            expected = (baseline - int(online[2])) / gap
            assert online[3] == f"{expected:.0%}"


@pytest.mark.e2e
def test_methods_flag_limits_the_rows_and_students_flag_the_students(tmp_path):
    output = tmp_path / "RESULTS.md"
    completed = _run(
        "--quick",
        "--students=mlp",
        "--methods=dist",
        "--noint8",
        "--limit-train=300",
        "--limit-test=200",
        f"--output={output}",
        "--verbose",
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    # Only the teacher the asked method learns from is trained.
    log = completed.stdout + completed.stderr
    assert "teacher 0: training" in log
    assert "teacher 1:" not in log
    rows = _table_rows(report.read_section(str(output), compact.SECTION))
    mlp = compact_runs.STUDENTS["mlp"]
    assert list(rows) == [  # no ensemble row: no student learns from it
        table_runs.ROW_TEACHER,
        compact_runs.row_name(mlp, compact_runs.METHOD_ALONE),
        f"{mlp.label}: kdkeras, DIST, cached",
    ]
    assert rows[f"{mlp.label}: kdkeras, DIST, cached"][6:8] == ["—", "—"]


@pytest.mark.e2e
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--students=mlp,vit"], "--students"),
        (["--methods=kd,pkd"], "--methods"),
        (["--students="], "--students"),
        (["--seeds=a"], "--seeds"),
        (["--epochs=0"], "--epochs"),
    ],
)
def test_bad_flags_exit_2_with_one_line(tmp_path, arguments, message):
    output = tmp_path / "RESULTS.md"
    completed = _run(*arguments, f"--output={output}")
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
    # One line: TensorFlow's start-up notices (cuInit, absl) are not printed.
    assert len(completed.stderr.strip().splitlines()) == 1, completed.stderr
    assert not output.exists()


def test_distillation_losses_follow_the_method():
    import kdkeras

    by_key = {method.key: method for method in compact_runs.METHODS}
    assert compact_runs.distillation_loss(by_key["kd"], 2.0) is None
    dkd = compact_runs.distillation_loss(by_key["dkd"], 2.0)
    dist = compact_runs.distillation_loss(by_key["dist-ensemble"], 3.0)
    assert isinstance(dkd, kdkeras.DKD) and dkd.temperature == 2.0
    assert isinstance(dist, kdkeras.DIST) and dist.temperature == 3.0
