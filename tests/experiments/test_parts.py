"""Tests for the experiments' building blocks: augmentation, recipe, report."""

import doctest
import json
import os

import numpy as np
import pytest

from experiments import augment
from experiments import checks
from experiments import cli
from experiments import omitted_class
from experiments import recipe
from experiments import report
from experiments import seed_processes
from experiments.compact import runs as compact_runs
from experiments.table import cli as table
from experiments.table import markdown as table_markdown
from experiments.table import runs as table_runs


def test_shift_and_flip_moves_whole_pixels_within_range():
    images = np.zeros((200, 28, 28, 1), "float32")
    images[:, 10, 6, 0] = 1.0  # off-centre, so a mirror is visible
    moved = augment.shift_and_flip(images, np.random.default_rng(0), max_shift=2)
    offsets = set()
    for example in moved:
        rows, cols = np.nonzero(example[..., 0])
        assert len(rows) == 1 and example[rows[0], cols[0], 0] == 1.0
        row_shift = rows[0] - 10
        assert abs(row_shift) <= 2
        mirrored = cols[0] > 14
        col = 27 - cols[0] if mirrored else cols[0]
        assert abs(col - 6) <= 2
        offsets.add((row_shift, col - 6, mirrored))
    # All 5 x 5 shifts and both orientations occur in 200 draws.
    assert len(offsets) == 50


def test_shift_and_flip_without_flip_or_shift_is_identity():
    images = np.random.default_rng(1).random((5, 28, 28, 1)).astype("float32")
    same = augment.shift_and_flip(images, np.random.default_rng(0), 0, flip=False)
    np.testing.assert_array_equal(same, images)


def test_epoch_images_are_reproducible_and_differ_between_epochs():
    images = np.random.default_rng(1).random((8, 28, 28, 1)).astype("float32")
    first = augment.epoch_images(images, epoch=3, seed=0)
    np.testing.assert_array_equal(first, augment.epoch_images(images, 3, 0))
    assert not np.array_equal(first, augment.epoch_images(images, 4, 0))


def test_shift_and_flip_rejects_bad_input():
    with pytest.raises(ValueError, match="`images`"):
        augment.shift_and_flip(np.zeros((28, 28)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="`max_shift`"):
        augment.shift_and_flip(np.zeros((1, 28, 28, 1)), np.random.default_rng(0), -1)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"epochs": 0}, "epochs"),
        ({"schedule": "step"}, "schedule"),
        ({"alpha": 1.5}, "alpha"),
        ({"temperature": 0}, "temperature"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"batch_size": 2.5}, "batch_size"),
    ],
)
def test_recipe_rejects_bad_settings(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        recipe.Recipe(**kwargs)


def test_recipe_cosine_schedule_decays_to_zero_over_the_run():
    optimizer = recipe.Recipe(epochs=4, learning_rate=0.01).optimizer(10)
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    optimizer.iterations.assign(20)  # half way: cosine at pi/2
    assert float(optimizer.learning_rate) == pytest.approx(0.005, rel=1e-5)
    optimizer.iterations.assign(40)
    assert float(optimizer.learning_rate) == pytest.approx(0.0, abs=1e-7)
    constant = recipe.Recipe(schedule="constant", learning_rate=0.01).optimizer(10)
    assert float(constant.learning_rate) == pytest.approx(0.01)


def test_update_section_replaces_only_its_section(tmp_path):
    path = str(tmp_path / "RESULTS.md")
    report.update_section(path, "table", "first table")
    report.update_section(path, "omitted-class", "omitted")
    report.update_section(path, "table", "second table")
    content = open(path).read()
    assert content.count("<!-- begin table -->") == 1
    assert report.read_section(path, "table") == "second table"
    assert report.read_section(path, "omitted-class") == "omitted"
    assert content.index("second table") < content.index("omitted")
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".partial")]
    with pytest.raises(ValueError, match="`name`"):
        report.update_section(path, "Bad Name", "x")


def test_split_transfer_set_removes_the_class_and_holds_out_all_classes():
    labels = np.arange(1000) % 10
    transfer, held = omitted_class.split_transfer_set(labels, 3, 200, seed=0)
    assert len(held) == 200 and not set(transfer) & set(held)
    assert not np.any(labels[transfer] == 3)
    assert set(labels[held]) == set(range(10))  # the holdout keeps class 3
    assert len(transfer) == 800 - np.sum(
        labels[np.setdiff1d(np.arange(1000), held)] == 3
    )
    with pytest.raises(ValueError, match="`holdout`"):
        omitted_class.split_transfer_set(labels, 3, 1000, seed=0)


@pytest.mark.parametrize(
    "module",
    [
        augment,
        checks,
        cli,
        compact_runs,
        recipe,
        report,
        omitted_class,
        seed_processes,
        table,
        table_markdown,
        table_runs,
    ],
)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.failed == 0


def test_worker_command_repeats_the_settings_with_dashed_flags_and_one_seed():
    settings = {
        "epochs": 2,
        "teacher_epochs": 3,
        "seeds": [0, 1],
        "augment": False,
        "teacher_augment": True,
        "limit_train": None,
        "cache_dir": "c",
        "jobs": 2,
    }
    command = seed_processes.worker_command(settings, 1, 4, "out.json")
    assert command[1:3] == ["-m", "experiments.table"]
    assert command[3:] == [
        "--epochs=2",
        "--teacher-epochs=3",
        "--seeds=1",
        "--noaugment",
        "--teacher-augment",
        "--cache-dir=c",
        "--threads=4",
        "--worker-json=out.json",
    ]


def test_seeds_from_worker_processes_keep_the_int8_file_size(tmp_path):
    # experiments.compact --jobs=3: each seed is trained in its own process;
    # the int8 size column of RESULTS.md came out empty ("—") before.
    rows = []
    for errors, size in [(921, 23_456), (924, 23_460)]:
        row = table_runs.Row("CNN: alone", "d", 10, errors=[errors], seconds=[5.0])
        row.int8_bytes, row.int8_errors = size, [errors + 3]
        rows.append(row)
    results = {}
    for seed, row in enumerate(rows):
        path = tmp_path / f"seed{seed}.json"
        seed_processes.write_worker_json(
            str(path),
            [row],
            {"single_cache_seconds": 1.0, "cache_seconds": 2.0},
            seed_processes.SeedExperiment("m", None, ("CNN: alone",)),
        )
        results[seed] = json.loads(path.read_text())
    parent = {"CNN: alone": table_runs.Row("CNN: alone", "d", 10)}
    merged, _ = seed_processes.merge_seeds(parent, {}, {"seeds": [0, 1]}, results)
    assert merged[0].errors == [921, 924]
    assert merged[0].int8_errors == [924, 927]
    assert merged[0].int8_bytes == 23_460
