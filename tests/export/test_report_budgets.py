"""Tests for export.report.budgets: parsing (one-line errors) and checking against results."""

import json

import pytest

from export.report import budgets


def _entry(
    model, fmt, p99=(1.0, 10.0), size=5e6, memory=100e6, accuracy=0.9, p50=(0.5, 5.0)
):
    return {
        "model": model,
        "format": fmt,
        "error": None,
        "latency": {
            "1": {"p50_ms": p50[0], "p99_ms": p99[0]},
            "64": {"p50_ms": p50[1], "p99_ms": p99[1]},
        },
        "size_bytes": size,
        "gzip_bytes": size * 0.9,
        "peak_rss_bytes": memory,
        "accuracy": accuracy,
    }


RESULTS = [
    _entry("teacher", "onnx", p99=(3.0, 30.0), size=20e6, accuracy=0.92),
    _entry("teacher", "keras", p99=(5.0, 50.0), size=20e6, accuracy=0.92),
    _entry("student", "onnx"),
    _entry("student", "keras", p99=(2.5, 12.0), memory=800e6, accuracy=0.91),
    # The floor is never gated, however slow.
    _entry("student", "numpy", p99=(99.0, 999.0), accuracy=0.0),
]


def _check(content):
    return budgets.check_budget(budgets.parse_budget(content), RESULTS)


def test_budget_met_gives_no_violations():
    assert (
        _check(
            {
                "max_p99_ms": {1: 3, 64: 20},
                "max_size_mb": 6,
                "max_memory_mb": 900,
                "min_accuracy": 0.9,
                "max_accuracy_drop": 0.02,
            }
        )
        == []
    )


@pytest.mark.parametrize(
    "content, expected",
    [
        (
            {"max_p99_ms": 2.0},
            {("keras", "p99_ms@1"), ("onnx", "p99_ms@64"), ("keras", "p99_ms@64")},
        ),
        ({"max_p99_ms": {"64": 11}}, {("keras", "p99_ms@64")}),
        ({"max_p50_ms": {1: 0.4}}, {("onnx", "p50_ms@1"), ("keras", "p50_ms@1")}),
        ({"max_size_mb": 4.9}, {("onnx", "size_mb"), ("keras", "size_mb")}),
        ({"max_memory_mb": 500}, {("keras", "memory_mb")}),
        ({"min_accuracy": 0.905}, {("onnx", "accuracy")}),
        # drop = teacher (same format) - student: onnx 0.02, keras 0.01
        ({"max_accuracy_drop": 0.015}, {("onnx", "accuracy_drop")}),
        ({"max_p99_ms": 2.0, "formats": ["onnx"]}, {("onnx", "p99_ms@64")}),
    ],
)
def test_each_limit_reports_exactly_its_violations(content, expected):
    violations = _check(content)
    assert {(v["format"], v["metric"]) for v in violations} == expected
    for violation in violations:
        assert violation["model"] == "student"
        assert violation["format"] in violation["message"]


def test_teacher_gated_only_when_asked():
    violations = _check({"max_size_mb": 10, "model": "both"})
    assert {(v["model"], v["format"]) for v in violations} == {
        ("teacher", "onnx"),
        ("teacher", "keras"),
    }


def test_failed_measurement_is_a_violation():
    failed = [{"model": "student", "format": "tflite", "error": "RuntimeError: boom"}]
    violations = budgets.check_budget(budgets.parse_budget({"max_size_mb": 1}), failed)
    assert [v["metric"] for v in violations] == ["measured"]


@pytest.mark.parametrize(
    "content, match",
    [
        ([1, 2], "must be a mapping"),
        ({"max_p99": 3}, "Received: unknown key.*max_p99"),
        (
            {"max_p99_ms": "fast"},
            "`max_p99_ms` must be a number. Received: max_p99_ms='fast'",
        ),
        ({"max_p99_ms": {"one": 3}}, "keys must be positive batch sizes"),
        ({"max_p99_ms": -1}, "must be >= 0"),
        ({"min_accuracy": 90}, r"`min_accuracy` must be in \[0.0, 1.0\]"),
        ({"min_accuracy": True}, "must be a number"),
        ({"model": "student"}, "must set a limit"),
        ({"max_size_mb": 1, "model": "pupil"}, "`model` must be one of"),
        ({"max_size_mb": 1, "formats": []}, "`formats` must be a non-empty list"),
    ],
)
def test_malformed_budget_is_one_line_error(content, match):
    with pytest.raises(budgets.BudgetError, match=match) as error:
        budgets.parse_budget(content)
    assert "\n" not in str(error.value)


def test_load_yaml_and_json_files(tmp_path):
    yaml_path = tmp_path / "budget.yaml"
    yaml_path.write_text("max_p99_ms:\n  1: 0.5\n  64: 4\nmin_accuracy: 0.85\n")
    json_path = tmp_path / "budget.json"
    json_path.write_text(
        json.dumps({"max_p99_ms": {"1": 0.5, "64": 4}, "min_accuracy": 0.85})
    )
    from_yaml, from_json = (
        budgets.load_budget(str(yaml_path)),
        budgets.load_budget(str(json_path)),
    )
    assert from_yaml == from_json
    assert from_yaml["max_p99_ms"] == {1: 0.5, 64: 4.0}


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("bad.yaml", "max_p99_ms: [1, 2\n", "is not valid YAML"),
        ("bad.json", '{"max_p99_ms": ', "is not valid JSON"),
        (
            "budget.toml",
            "max_p99_ms = 1",
            "`--budget` must end in .yaml, .yml or .json",
        ),
        ("twice.yaml", "max_size_mb: 1\nmax_size_mb: 50\n", "'max_size_mb' twice"),
        ("twice.json", '{"max_size_mb": 1, "max_size_mb": 50}', "'max_size_mb' twice"),
        ("nested.yaml", "max_p99_ms: {1: 2, 1: 90}\n", "1 twice"),
        (
            "binary.yaml",
            b"\xff\xfemax_size_mb: 1\n",
            "`--budget` must be a readable UTF-8 .yaml or .json file",
        ),
    ],
)
def test_unreadable_file_is_one_line_error(tmp_path, name, text, match):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(budgets.BudgetError, match=match) as error:
        budgets.load_budget(str(path))
    assert "\n" not in str(error.value)


def test_budget_for_unmeasured_batch_size_or_format_is_an_error():
    budget = budgets.parse_budget({"max_p99_ms": {8: 1.0}, "formats": ["onnx"]})
    with pytest.raises(budgets.BudgetError, match="batch size 8"):
        budgets.check_requested(budget, ["onnx"], [1, 64])
    with pytest.raises(budgets.BudgetError, match="onnx are not measured"):
        budgets.check_requested(budget, ["tflite"], [8])


def _alias_bomb(levels):
    """A YAML file of a few hundred bytes whose value expands to 9**levels strings."""
    items = ['&a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        items.append(f"&a{level} [{','.join([f'*a{level - 1}'] * 9)}]")
    return f"max_size_mb: [{', '.join(items)}]\n"


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("bomb.yaml", _alias_bomb(7), "must not use YAML anchors or aliases"),
        ("anchor.yaml", "max_size_mb: &limit 1\n", "must not use YAML anchors"),
        ("huge.yaml", "max_size_mb: 1\n" + "#" * 2_000_000 + "\n", "at most"),
        ("huge.json", '{"max_size_mb": 1' + " " * 2_000_000 + "}", "at most"),
    ],
)
def test_budget_bombs_are_refused_before_they_are_built(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(budgets.BudgetError, match=match) as error:
        budgets.load_budget(str(path))
    assert "\n" not in str(error.value)
    assert len(str(error.value)) < 500


@pytest.mark.parametrize(
    "content",
    [
        {"max_size_mb": "x" * 1_000_000},
        {"max_p99_ms": {"y" * 1_000_000: 1}},
        {"max_size_mb": 1, "z" * 1_000_000: 1},
        {"max_size_mb": 1, "model": "m" * 1_000_000},
        {"max_size_mb": 1, "minimise": "p" * 1_000_000},
        {"max_size_mb": 1, "formats": ["f", 1_000_000 * "g", 1]},
        {"max_size_mb": 1, "formats": [[1] * 1_000_000]},
        {"max_p99_ms": {}, "ignored": "q" * 1_000_000},
    ],
)
def test_long_user_values_are_echoed_bounded(content):
    with pytest.raises(budgets.BudgetError) as error:
        budgets.parse_budget(content)
    assert "\n" not in str(error.value)
    assert len(str(error.value)) < 500


def test_long_unmeasured_format_is_echoed_bounded():
    budget = budgets.parse_budget({"max_size_mb": 1, "formats": ["f" * 1_000_000]})
    with pytest.raises(budgets.BudgetError, match="not measured") as error:
        budgets.check_requested(budget, ["onnx"], [1])
    assert len(str(error.value)) < 500


def test_long_budget_path_is_echoed_bounded(tmp_path):
    with pytest.raises(budgets.BudgetError) as error:
        budgets.load_budget(str(tmp_path / ("d" * 200) / ("b" * 200 + ".yaml")))
    assert len(str(error.value)) < 500
