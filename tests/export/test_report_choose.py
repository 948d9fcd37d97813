"""Tests for export.report.choose: Pareto fronts, the budget's release, the release folder.

Synthetic measurement records: fast and deterministic; one small end-to-end run is in
tests/export/test_report_variants.py.
"""

import json
import math
import os

import pytest

from export.report import budgets
from export.report import choose


def _entry(
    model, variant, p99_1, p99_64, size_mb, accuracy, memory_mb=100.0, role="student"
):
    fmt = variant.split("_")[0]
    return {
        "model": model,
        "role": role,
        "variant": variant,
        "format": fmt,
        "quantize": variant.split("_")[1] if "_" in variant else "none",
        "error": None,
        "latency": {
            "1": {"p50_ms": p99_1 / 2, "p99_ms": p99_1},
            "64": {"p50_ms": p99_64 / 2, "p99_ms": p99_64},
        },
        "size_bytes": size_mb * 1e6,
        "gzip_bytes": size_mb * 0.9e6,
        "peak_rss_bytes": memory_mb * 1e6,
        "accuracy": accuracy,
    }


# Each student variant is best at exactly one objective.
RESULTS = [
    _entry("teacher", "onnx", 5.0, 50.0, 20.0, 0.93, role="teacher"),
    _entry("teacher", "keras", 9.0, 90.0, 20.0, 0.93, role="teacher"),
    _entry(
        "pruned", "tflite_int8", 0.10, 9.0, 0.40, 0.90, memory_mb=90
    ),  # fastest at batch 1
    _entry(
        "pruned", "onnx", 0.30, 2.0, 3.00, 0.91, memory_mb=95
    ),  # fastest at batch 64
    _entry(
        "clustered", "tflite_dynamic", 0.20, 6.0, 0.30, 0.89, memory_mb=80
    ),  # smallest
    _entry(
        "clustered", "savedmodel", 2.00, 8.0, 5.00, 0.92, memory_mb=300
    ),  # most accurate
    _entry(
        "clustered", "numpy", 0.01, 0.5, 0.01, 0.99
    ),  # the floor is never a candidate
]


@pytest.mark.parametrize(
    "objective, winner",
    [
        ("p99_ms_batch_1", "pruned tflite_int8"),
        ("p99_ms_batch_64", "pruned onnx"),
        ("p50_ms_batch_64", "pruned onnx"),
        ("size_mb", "clustered tflite_dynamic"),
        ("gzip_size_mb", "clustered tflite_dynamic"),
        ("accuracy_loss", "clustered savedmodel"),
        ("memory_mb", "clustered tflite_dynamic"),
    ],
)
def test_each_objective_picks_its_own_winner(objective, winner):
    budget = budgets.parse_budget({"min_accuracy": 0.85, "minimise": objective})
    release = choose.choose_release(budget, RESULTS)
    assert release["objective"] == objective
    assert release["winner"]["label"] == winner
    labels = [c["label"] for c in release["candidates"]]
    assert len(labels) == 4 and not any(
        "numpy" in label or "teacher" in label for label in labels
    )
    values = [c["value"] for c in release["candidates"]]
    assert values == sorted(values)  # ranked by the objective


def test_a_limit_moves_the_winner_to_the_next_variant():
    budget = budgets.parse_budget(
        {"max_accuracy_drop": 0.035, "minimise": "p99_ms_batch_1"}
    )
    release = choose.choose_release(budget, RESULTS)
    # pruned tflite_int8 drops 0.03 against the teacher's onnx: met; clustered
    # tflite_dynamic drops 0.04: out.
    assert release["winner"]["label"] == "pruned tflite_int8"
    budget = budgets.parse_budget(
        {"max_accuracy_drop": 0.025, "minimise": "p99_ms_batch_1"}
    )
    release = choose.choose_release(budget, RESULTS)
    assert release["winner"]["label"] == "pruned onnx"
    out = {c["label"]: c for c in release["candidates"] if not c["meets"]}
    assert set(out) == {"pruned tflite_int8", "clustered tflite_dynamic"}
    assert "accuracy drop" in out["pruned tflite_int8"]["violations"][0]


def test_no_variant_meets_the_budget_lists_how_far_each_came():
    budget = budgets.parse_budget({"max_p99_ms": {1: 0.05}, "minimise": "size_mb"})
    release = choose.choose_release(budget, RESULTS)
    assert release["winner"] is None
    assert all(not c["meets"] for c in release["candidates"])
    for candidate in release["candidates"]:
        (message,) = candidate["violations"]
        assert (
            "p99 latency at batch 1 too high" in message and "vs limit 0.05" in message
        )


def test_an_unmeasured_or_nan_objective_never_wins():
    broken = _entry("pruned", "tflite_float16", math.nan, math.nan, math.nan, math.nan)
    failed = {
        "model": "pruned",
        "role": "student",
        "variant": "onnx_int8",
        "format": "onnx",
        "error": "ParityError: top-1 agreement 0.5 < 0.97",
        "rejected": True,
    }
    budget = budgets.parse_budget({"max_size_mb": 100, "minimise": "size_mb"})
    release = choose.choose_release(budget, [broken, failed] + RESULTS)
    assert release["winner"]["label"] == "clustered tflite_dynamic"
    by_label = {c["label"]: c for c in release["candidates"]}
    assert not by_label["pruned tflite_float16"]["meets"]
    assert not by_label["pruned onnx_int8"]["meets"]
    assert "not measured" in by_label["pruned onnx_int8"]["violations"][0]


def test_pareto_front_marks_the_undominated_points():
    points = [
        {"loss": -0.9, "p99": 1.0},
        {"loss": -0.8, "p99": 0.5},
        {"loss": -0.8, "p99": 2.0},
        {"loss": -0.95, "p99": 3.0},
        {"loss": None, "p99": 0.1},
        {"loss": -0.9, "p99": 1.0},
    ]
    assert choose.pareto_front(points, ("loss", "p99")) == [
        True,
        True,
        False,
        True,
        False,
        True,
    ]
    assert choose.pareto_front([{"a": math.nan}], ("a",)) == [False]


def _release_report(tmp_path, tflite, digest=None, edit=None):
    """A report whose winner is a copy of the tiny MLP's float .tflite and its sidecar.

    `edit(content)` changes the sidecar after the report recorded it (an edit
    between the export and the release step); returning "absent" deletes it.
    """
    artifact = tmp_path / "pruned.tflite"
    artifact.write_bytes(open(tflite, "rb").read())
    content = json.load(open(tflite + ".json"))
    content["artifact"] = "pruned.tflite"
    sidecar = tmp_path / "pruned.tflite.json"
    sidecar.write_text(json.dumps(content))
    recorded = {
        "sidecar_path": str(sidecar),
        "parity": json.loads(json.dumps(content["parity"])),
        "sidecar_sha256": choose.file_digest(str(sidecar)),
    }
    if edit is not None:
        if edit(content) == "absent":
            sidecar.unlink()
        else:
            sidecar.write_text(json.dumps(content))
    entry = dict(
        RESULTS[2],
        quantize="none",
        artifact=str(artifact),
        export=recorded,
        sha256=digest or choose.file_digest(str(artifact)),
        lineage={"converter": "x"},
    )
    budget = budgets.parse_budget({"min_accuracy": 0.85, "minimise": "p99_ms_batch_1"})
    results = [entry] + RESULTS[3:]
    return {
        "results": results,
        "release": choose.choose_release(budget, results),
        "budget": {"limits": budgets.describe(budget)},
        "created_utc": "now",
        "command": "python -m export.report",
    }


@pytest.fixture(scope="module")
def tflite(artifacts):
    """The tiny MLP's float .tflite, exported with its sidecar."""
    return artifacts[1]["tflite"]


def test_write_release_copies_artifact_and_sidecar_and_records_only_what_it_holds(
    tmp_path, tflite
):
    report = _release_report(tmp_path, tflite)
    winner = report["results"][0]
    winner["latency"] = {
        b: dict(stats, p50_spread_ms=[0.9 * stats["p50_ms"], 1.2 * stats["p50_ms"]])
        for b, stats in winner["latency"].items()
    }
    path = choose.write_release(report, str(tmp_path / "release"))
    assert sorted(os.listdir(tmp_path / "release")) == [
        "pruned.tflite",
        "pruned.tflite.json",
        "release.json",
    ]
    with open(path) as handle:
        record = json.load(handle)
    assert (
        record["variant"] == "tflite_int8" and record["objective"] == "p99_ms_batch_1"
    )
    assert record["sha256"] == choose.file_digest(
        str(tmp_path / "release" / "pruned.tflite")
    )
    assert record["size_bytes"] == os.path.getsize(tflite)
    assert [b["label"] for b in record["beaten"]] == [
        "clustered tflite_dynamic",
        "pruned onnx",
        "clustered savedmodel",
    ]
    assert "lowest p99_ms_batch_1" in record["why"]
    for stats in record["measured"]["latency"].values():
        low, high = stats["p50_spread_ms"]
        assert low <= stats["p50_ms"] <= high


def test_write_release_refuses_a_changed_artifact_and_leaves_nothing(tmp_path, tflite):
    report = _release_report(tmp_path, tflite, digest="0" * 64)
    with pytest.raises(RuntimeError, match="changed after it was measured"):
        choose.write_release(report, str(tmp_path / "release"))
    assert not os.path.exists(tmp_path / "release")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".release")]


def _set(**changes):
    def edit(content):
        for key, value in changes.items():
            target = content
            *path, last = key.split("__")
            for part in path:
                target = target[part]
            target[last] = value

    return edit


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda content: "absent", "cannot be copied"),
        (_set(artifact="other.tflite"), "artifact 'other.tflite' != 'pruned.tflite'"),
        (_set(size_bytes=99), "size_bytes 99 != "),
        (_set(parity__max_abs_diff=0.5), "parity differs"),
        (lambda content: content.clear() or content.update(a=[1, 2]), "describe it"),
        (_set(options__quantize="int8"), "quantize 'int8' != 'none'"),
        (_set(options__tensor_types={"kernels": {"int8": 3}}), "edited since"),
        (_set(source="the teacher"), "edited since the export"),
    ],
    ids=[
        "absent",
        "name",
        "size",
        "parity",
        "not-a-sidecar",
        "quantize",
        "types",
        "source",
    ],
)
def test_write_release_refuses_a_missing_or_stale_sidecar_and_leaves_nothing(
    tmp_path, tflite, edit, match
):
    report = _release_report(tmp_path, tflite, edit=edit)
    with pytest.raises(RuntimeError, match=match):
        choose.write_release(report, str(tmp_path / "release"))
    assert not os.path.exists(tmp_path / "release")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".release")]


def test_release_dir_must_be_new_or_empty(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.tflite").write_bytes(b"x")
    with pytest.raises(
        ValueError, match="`--release-dir` must be a new or empty folder"
    ):
        choose.check_release_dir(str(tmp_path / "full"))
    with pytest.raises(ValueError, match="must be in an existing folder"):
        choose.check_release_dir(str(tmp_path / "missing" / "release"))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda tmp: (_link(tmp / "release", tmp / "empty"), tmp / "report"), "link"),
        (lambda tmp: (_link(tmp / "release", tmp / "no"), tmp / "report"), "not exist"),
        (lambda tmp: (tmp / "report", tmp / "report"), "apart from --output-dir"),
        (lambda tmp: (tmp / "report" / "r", tmp / "report"), "apart from --output-dir"),
        (lambda tmp: (tmp / "empty", tmp / "empty" / "new"), "apart from --output-dir"),
    ],
    ids=["link-to-empty", "dangling-link", "same-folder", "inside", "around"],
)
def test_release_dir_that_the_release_step_could_not_fill_is_refused_up_front(
    tmp_path, make, match
):
    (tmp_path / "empty").mkdir()
    (tmp_path / "report").mkdir()
    release_dir, output_dir = make(tmp_path)
    with pytest.raises(ValueError, match=match) as error:
        choose.check_release_dir(str(release_dir), str(output_dir))
    assert str(error.value).startswith("`--release-dir` must be")
    assert os.path.isdir(tmp_path / "empty") and os.path.isdir(tmp_path / "report")


def _link(path, target):
    os.symlink(target, path)
    return path
