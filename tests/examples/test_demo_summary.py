"""Tests for `examples.demo_summary`: the demo's goals and the table."""

import math

import pytest

from examples import demo_summary


def _row(parameters, flops, errors, p50=None, test_examples=10_000):
    return demo_summary.row(
        parameters, flops, errors, test_examples, size=1000, p50=p50 or {}
    )


def _summary(
    alone,
    distilled,
    int8,
    test_examples=10_000,
    wall_time_s=300.0,
    train_examples=60_000,
    teacher_trained=True,
):
    rows = {
        "teacher": _row(824_458, 9_287_680, 850, {"1": 0.2, "64": 20.0}),
        "student_alone": _row(20_490, 539_392, alone),
        "student_distilled": _row(20_490, 539_392, distilled, {"1": 0.05, "64": 2.0}),
        "student_distilled_int8": _row(20_490, 539_392, int8),
    }
    for row in rows.values():
        row["accuracy"] = (test_examples - row["errors"]) / test_examples
    gap = (alone - distilled) / (alone - 850) if alone > 850 else None
    return {
        "rows": rows,
        "test_examples": test_examples,
        "gap_closed": gap,
        "wall_time_s": wall_time_s,
        "teacher_trained": teacher_trained,
        "train_examples": train_examples,
    }


def _verdicts(summary):
    goals = demo_summary.goals(summary, report=None, int8={"path": "x"})
    return {goal["goal"]: goal for goal in goals}


def _find(verdicts, word):
    found = [goal for name, goal in verdicts.items() if word in name]
    assert len(found) == 1, word
    return found[0]


@pytest.mark.parametrize(
    "alone, distilled, int8, closes, int8_holds",
    [
        (950, 905, 910, True, True),  # 45% closed, int8 0.05 pp lower
        (950, 970, 975, False, True),  # distillation made it worse
        (950, 905, 960, True, False),  # int8 loses 0.55 pp
    ],
)
def test_goals_hold_exactly_when_the_figures_say_so(
    alone, distilled, int8, closes, int8_holds
):
    verdicts = _verdicts(_summary(alone, distilled, int8))
    assert _find(verdicts, "closes")["holds"] is closes
    assert _find(verdicts, "int8")["holds"] is int8_holds
    assert _find(verdicts, "fewer test errors")["holds"] is (distilled < alone)
    assert _find(verdicts, "parameters")["holds"] is True  # 40x
    assert _find(verdicts, "FLOPs")["holds"] is True  # 17x
    assert _find(verdicts, "batch 64")["measured"] == "10.0x"
    assert _find(verdicts, "batch 1")["holds"] is True  # 4x >= 2x


def test_accuracy_goals_are_not_judged_on_a_slice():
    verdicts = _verdicts(_summary(950, 905, 910, test_examples=300))
    for word in ("closes", "int8", "fewer test errors"):
        assert _find(verdicts, word)["holds"] is None


@pytest.mark.parametrize(
    "teacher_trained, wall_time_s, holds",
    [
        (True, 470.0, True),
        (True, 490.0, False),
        (False, 290.0, True),
        (False, 310.0, False),
    ],
)
def test_wall_time_limit_is_8_minutes_training_the_teacher_5_reusing_it(
    teacher_trained, wall_time_s, holds
):
    summary = _summary(
        950, 905, 910, wall_time_s=wall_time_s, teacher_trained=teacher_trained
    )
    summary["teacher_train_seconds"] = 200.0 if teacher_trained else None
    goal = _find(_verdicts(summary), "minutes")
    assert goal["holds"] is holds
    assert ("8 minutes training" if teacher_trained else "5 minutes reusing") in goal[
        "goal"
    ]
    assert ("of which the teacher 200 s" in goal["measured"]) is teacher_trained


def test_format_table_lists_every_model_and_the_gap():
    text = demo_summary.format_table(_summary(950, 905, 910))
    for label in ("teacher (CNN)", "student alone", "student distilled", "int8"):
        assert label in text
    assert "Distillation closed 45.0% of" in text


# ------------------------------------------------- figures missing or NaN


@pytest.mark.parametrize("missing", [None, math.nan, 0.0, math.inf])
@pytest.mark.parametrize("model", ["teacher", "student_distilled"])
@pytest.mark.parametrize("batch", ["1", "64"])
def test_speedup_is_not_judged_without_both_p50(missing, model, batch):
    summary = _summary(950, 905, 910)
    summary["rows"][model]["p50_ms"][batch] = missing
    goal = _find(_verdicts(summary), f"batch {batch}")
    assert goal["holds"] is None and "not measured" in goal["measured"]
    other = "64" if batch == "1" else "1"
    assert _find(_verdicts(summary), f"batch {other}")["holds"] is True


def test_speedup_is_not_judged_when_p50_is_absent():
    summary = _summary(950, 905, 910)
    summary["rows"]["student_distilled"]["p50_ms"] = {}
    for batch in ("1", "64"):
        assert _find(_verdicts(summary), f"batch {batch}")["holds"] is None


@pytest.mark.parametrize("field", ["parameters", "flops"])
@pytest.mark.parametrize("missing", [None, math.nan, 0])
def test_size_ratios_are_not_judged_without_the_figures(field, missing):
    summary = _summary(950, 905, 910)
    summary["rows"]["student_distilled"][field] = missing
    word = "parameters" if field == "parameters" else "FLOPs"
    goal = _find(_verdicts(summary), word)
    assert goal["holds"] is None and "not measured" in goal["measured"]


@pytest.mark.parametrize("alone", [850, 800])
def test_no_gap_is_never_a_gap_closed(alone):
    """Student alone as good as (or better than) the teacher: nothing to
    close, and the distilled student is worse than the alone one."""
    summary = _summary(alone, 860, 865)
    assert summary["gap_closed"] is None
    verdicts = _verdicts(summary)
    assert _find(verdicts, "closes")["holds"] is False
    assert "no gap" in _find(verdicts, "closes")["measured"]
    text = demo_summary.format_table(summary)
    assert "Distillation closed - of" in text


def test_a_nan_gap_fraction_is_not_judged():
    summary = _summary(950, 905, 910)
    summary["gap_closed"] = math.nan
    assert _find(_verdicts(summary), "closes")["holds"] is None


def test_int8_is_not_judged_without_its_row_or_with_nan_accuracy():
    summary = _summary(950, 905, 910)
    del summary["rows"]["student_distilled_int8"]
    assert _find(_verdicts(summary), "int8")["holds"] is None
    summary = _summary(950, 905, 910)
    summary["rows"]["student_distilled_int8"]["accuracy"] = math.nan
    assert _find(_verdicts(summary), "int8")["holds"] is None
    goals = demo_summary.goals(_summary(950, 905, 910), report=None, int8=None)
    assert [g["holds"] for g in goals if "int8" in g["goal"]] == [None]


@pytest.mark.parametrize(
    "kwargs, holds",
    [
        ({}, True),
        ({"teacher_trained": False, "wall_time_s": 250.0}, True),  # 5 minutes
        ({"train_examples": 512}, None),  # a slice of the training set
        ({"test_examples": 300}, None),
        ({"wall_time_s": math.nan}, None),
        ({"wall_time_s": 400.0, "teacher_trained": False}, False),
        ({"wall_time_s": 500.0, "train_examples": 512}, False),
    ],
)
def test_wall_time_holds_only_for_a_full_run(kwargs, holds):
    goal = _find(_verdicts(_summary(950, 905, 910, **kwargs)), "minutes")
    assert goal["holds"] is holds


def test_budget_holds_only_when_the_report_says_passed():
    summary = _summary(950, 905, 910)
    for budget, holds in [
        ({"passed": True}, True),
        ({"passed": False, "violations": ["size"]}, False),
        ({"violations": []}, False),
        ({"passed": "yes"}, False),
    ]:
        goals = demo_summary.goals(summary, {"budget": budget}, int8={"path": "x"})
        assert [g["holds"] for g in goals if "budget" in g["goal"]] == [holds]


def test_format_table_shows_missing_figures_as_dashes():
    summary = _summary(950, 905, 910, test_examples=300)
    summary["rows"]["student_alone"]["tflite_bytes"] = None
    del summary["rows"]["student_distilled_int8"]
    lines = demo_summary.format_table(summary).splitlines()
    assert len(lines) == 2 + 3 + 1  # header, rule, three models, the gap
    alone = next(line for line in lines if line.startswith("student alone"))
    assert alone.split()[3] == "-"  # TFLite MB
    assert alone.split()[-2:] == ["-", "-"]  # no p50 at 1 and 64
    assert "int8" not in "\n".join(lines)
    assert "(300 test images;" in lines[-1]


def test_the_release_goal_and_line_name_the_released_file(tmp_path):
    release_json = tmp_path / "release" / "release.json"
    release_json.parent.mkdir()
    release_json.write_text('{"artifact": "student_int8.tflite"}')
    report = {
        "release": {
            "objective": "p99_ms_batch_1",
            "winner": {
                "label": "student tflite int8",
                "variant": "tflite_int8",
                "format": "tflite",
                "value": 0.01,
            },
            "candidates": [{}, {}, {}],
            "written": str(release_json),
        },
        "budget": {"passed": False, "violations": ["onnx too slow"]},
    }
    summary = _summary(950, 905, 910)
    summary["released"] = demo_summary.released(report)
    released_file = str(tmp_path / "release" / "student_int8.tflite")
    assert summary["released"]["file"] == released_file
    goal = _find(_verdicts_with(summary, report), "released")
    assert goal["holds"] is True and released_file in goal["measured"]
    text = demo_summary.format_table(summary)
    assert f"Released: {released_file} (student tflite int8" in text
    # No winner: nothing released, the goal does not hold.
    report["release"]["winner"] = None
    summary["released"] = demo_summary.released(report)
    assert summary["released"] is None
    assert _find(_verdicts_with(summary, report), "released")["holds"] is False
    assert "Released" not in demo_summary.format_table(summary)


def _verdicts_with(summary, report):
    goals = demo_summary.goals(summary, report=report, int8={"path": "x"})
    return {goal["goal"]: goal for goal in goals}


def test_the_table_says_one_seed_and_points_to_results():
    summary = _summary(950, 905, 910)
    summary["seeds_note"] = "one run, one seed (--seed=0); RESULTS.md reports it"
    assert demo_summary.format_table(summary).splitlines()[-1] == (
        "One run, one seed (--seed=0); RESULTS.md reports it."
    )


def test_variant_p50_reads_the_reports_variant():
    report = {
        "results": [
            {"model": "student", "format": "tflite", "latency": {"1": {"p50_ms": 9}}},
            {
                "model": "student",
                "variant": "tflite_int8",
                "latency": {"1": {"p50_ms": 0.01}, "64": {"p50_ms": math.nan}},
            },
        ]
    }
    assert demo_summary.variant_p50(report, "student", "tflite_int8") == {"1": 0.01}
    assert demo_summary.variant_p50(report, "student", "onnx_int8") is None
    assert demo_summary.variant_p50(None, "student", "tflite_int8") is None
