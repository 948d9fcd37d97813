"""No value a budget parser accepts can turn a gate off.

Every limit key is written with hostile values, in YAML and in JSON, and read with
`load_budget`. Each value is either refused with a one-line `BudgetError`, or the gate
it sets is live: a result beyond the limit, and a NaN or infinite result, are violations.
"""

import json
import math

import pytest

from export.report import budgets

# Scalars as YAML 1.1 (PyYAML) reads them: NaN, infinities, booleans, null, strings,
# octal/hex/sexagesimal integers, an overflowing float, dates, lists and mappings.
YAML_VALUES = [
    ".nan",
    ".NaN",
    ".inf",
    "-.inf",
    "+.inf",
    "~",
    "null",
    "yes",
    "on",
    "true",
    "false",
    "'1'",
    "1e3",
    "1.0e+3",
    "0x10",
    "017",
    "1_000",
    "12:30",
    "-1",
    "-0.0",
    "0",
    ".5",
    "2.0e+308",
    "-2.0e+308",
    "1.0e-320",
    "2001-12-14",
    "[]",
    "[1]",
    "{}",
    "!!float nan",
    "!!float inf",
    "!!bool 1",
    "0.5",
    "1",
    "250",
]
# JSON as Python's json module reads it (NaN and Infinity are accepted by default).
JSON_VALUES = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "true",
    "false",
    "null",
    '"5"',
    "[]",
    "{}",
    "[1]",
    "-1",
    "-0.0",
    "0",
    "0.5",
    "1",
    "1.5",
    "250",
    "5e-324",
]


def _parsed(key, text, extension, per_batch, tmp_path):
    value = f"{{1: {text}}}" if per_batch and extension == ".yaml" else text
    if extension == ".json":
        value = f'{{"1": {text}}}' if per_batch else text
        content = f'{{"{key}": {value}}}'
    else:
        content = f"{key}: {value}\n"
    path = tmp_path / f"budget{extension}"
    path.write_text(content)
    try:
        return budgets.load_budget(str(path))
    except budgets.BudgetError as error:
        assert "\n" not in str(error)
        assert f"`{key}" in str(error) or "not valid" in str(error), str(error)
        return None


def _limit(budget, key):
    value = budget[key]
    return (value.get(1, value.get("*"))) if isinstance(value, dict) else value


def _results(key, figure):
    """A teacher and a student whose figure for `key` is `figure`."""
    latency = {"1": {"p50_ms": 0.0, "p99_ms": 0.0}}
    student = {
        "model": "student",
        "format": "onnx",
        "error": None,
        "latency": latency,
        "size_bytes": 0.0,
        "gzip_bytes": 0.0,
        "peak_rss_bytes": 0.0,
        "accuracy": 1.0,
    }
    teacher = dict(student, model="teacher", accuracy=1.0)
    if key in ("max_p99_ms", "max_p50_ms"):
        student["latency"] = {"1": dict(latency["1"], **{key[4:]: figure})}
    elif key == "min_accuracy":
        student["accuracy"] = figure
    elif key == "max_accuracy_drop":
        student["accuracy"] = 1.0 - figure
    else:
        field = {
            "max_size_mb": "size_bytes",
            "max_gzip_size_mb": "gzip_bytes",
            "max_memory_mb": "peak_rss_bytes",
        }[key]
        student[field] = figure * 1e6
    return [teacher, student]


@pytest.mark.parametrize("key", budgets.LIMIT_KEYS)
@pytest.mark.parametrize(
    "extension, text",
    [(".yaml", v) for v in YAML_VALUES] + [(".json", v) for v in JSON_VALUES],
)
def test_no_accepted_value_disables_a_gate(key, extension, text, tmp_path):
    per_batch_forms = (False, True) if key in budgets.PER_BATCH_KEYS else (False,)
    for per_batch in per_batch_forms:
        budget = _parsed(key, text, extension, per_batch, tmp_path)
        if budget is None:
            continue  # refused, one line
        limit = _limit(budget, key)
        assert isinstance(limit, float) and math.isfinite(limit), (text, limit)
        beyond = limit - 0.25 if key == "min_accuracy" else limit * 2 + 0.25
        for figure in (
            beyond,
            math.nan,
            -math.inf if key == "min_accuracy" else math.inf,
        ):
            violations = budgets.check_budget(budget, _results(key, figure))
            assert violations, (key, text, per_batch, figure)


@pytest.mark.parametrize(
    "extension, text",
    [
        (".yaml", ".nan"),
        (".yaml", ".inf"),
        (".yaml", "-.inf"),
        (".yaml", "yes"),
        (".yaml", "2.0e+308"),
        (".json", "NaN"),
        (".json", "Infinity"),
        (".json", "1e999"),
        (".json", "true"),
        (".json", "-1"),
    ],
)
def test_non_finite_negative_and_boolean_limits_are_refused(extension, text, tmp_path):
    for key in budgets.LIMIT_KEYS:
        assert _parsed(key, text, extension, False, tmp_path) is None, (key, text)


def test_nan_result_never_meets_a_budget():
    budget = budgets.parse_budget(
        {"max_p99_ms": 5.0, "max_size_mb": 5.0, "min_accuracy": 0.5}
    )
    entry = {
        "model": "student",
        "format": "tflite",
        "error": None,
        "latency": {"1": {"p50_ms": math.nan, "p99_ms": math.nan}},
        "size_bytes": math.nan,
        "gzip_bytes": 1.0,
        "peak_rss_bytes": 1.0,
        "accuracy": math.nan,
    }
    metrics = {v["metric"] for v in budgets.check_budget(budget, [entry])}
    assert metrics == {"p99_ms@1", "size_mb", "accuracy"}


def test_a_limit_on_an_unmeasured_figure_is_a_violation():
    budget = budgets.parse_budget({"max_memory_mb": 100})
    entry = {
        "model": "student",
        "format": "onnx",
        "error": None,
        "latency": {},
        "size_bytes": 1.0,
        "gzip_bytes": 1.0,
        "peak_rss_bytes": None,
        "accuracy": None,
    }
    (violation,) = budgets.check_budget(budget, [entry])
    assert violation["metric"] == "memory_mb" and "not measured" in violation["message"]


@pytest.mark.parametrize(
    "value, match",
    [
        ("p99_ms_batch_0", "`minimise` must be"),
        ("latency", "`minimise` must be"),
        (1, "`minimise` must be"),
        (None, "`minimise` must be"),
    ],
)
def test_bad_objective_is_refused(value, match):
    with pytest.raises(budgets.BudgetError, match=match):
        budgets.parse_budget({"max_size_mb": 1, "minimise": value})


def test_json_nan_is_refused_through_the_loader(tmp_path):
    path = tmp_path / "budget.json"
    path.write_text(json.dumps({"max_p99_ms": float("nan")}))  # writes NaN
    with pytest.raises(
        budgets.BudgetError, match="`max_p99_ms` must be a finite number"
    ):
        budgets.load_budget(str(path))
