"""Hostile inputs to the soft-target cache: empty, truncated, tampered files,
NaN teachers, empty data, directories, file modes."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from kdkeras.targets import online
from kdkeras.targets.cache import soft_target_dataset
from kdkeras.targets.memory import cache
from tests import reference
from tests.kdkeras.targets import targets_setup
from tests.kdkeras.targets.targets_setup import CLASSES
from tests.kdkeras.targets.targets_setup import FEATURES


def build_teacher():
    return targets_setup.dense_model(5)


def random_x():
    return targets_setup.random_x(6, count=30)


def valid_cache(tmp_path):
    teacher, x = build_teacher(), random_x()
    path = tmp_path / "targets.npz"
    cache.cache_soft_targets(teacher, x, path)
    return teacher, x, path


def damage(path, how):
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif how == "no-metadata":
        with np.load(path) as archive:
            np.savez(path, logits=archive["logits"])
    elif how == "metadata-not-json":
        with np.load(path) as archive:
            np.savez(path, logits=archive["logits"], metadata=np.array("{"))
    elif how == "pickled-logits":
        with np.load(path) as archive:
            metadata = archive["metadata"]
        logits = np.empty((30, CLASSES), dtype=object)
        logits[:] = 1.0
        np.savez(path, logits=logits, metadata=metadata)
    else:
        raise AssertionError(how)


DAMAGES = [
    "empty",
    "truncated",
    "garbage",
    "no-metadata",
    "metadata-not-json",
    "pickled-logits",
]


@pytest.mark.parametrize("how", DAMAGES)
def test_unreadable_cache_is_named_never_eof_or_zip_errors(tmp_path, how):
    teacher, x, path = valid_cache(tmp_path)
    damage(path, how)
    for call in (
        lambda: cache.load_soft_targets(path, teacher, x),
        lambda: cache.cache_soft_targets(teacher, x, path, on_stale="error"),
    ):
        with pytest.raises(cache.StaleSoftTargetsError) as raised:
            call()
        message = str(raised.value)
        assert str(path) in message and "\n" not in message


@pytest.mark.parametrize("how", DAMAGES)
def test_unreadable_cache_is_recomputed(tmp_path, teacher_calls, how):
    teacher, x, path = valid_cache(tmp_path)
    damage(path, how)
    logits = cache.cache_soft_targets(teacher, x, path)
    np.testing.assert_allclose(
        logits, reference.dense_relu_logits(teacher, x), atol=1e-5
    )
    assert len(teacher_calls) == 2  # the first write and the recomputation
    np.testing.assert_array_equal(cache.load_soft_targets(path, teacher, x), logits)
    assert sorted(os.listdir(tmp_path)) == ["targets.npz"]


def tamper(path, edit):
    """Rewrites the cache with edited logits and its ORIGINAL metadata."""
    with np.load(path) as archive:
        logits, metadata = archive["logits"].copy(), archive["metadata"]
    edit(logits)
    size = os.path.getsize(path)
    np.savez(path, logits=logits, metadata=metadata)
    assert os.path.getsize(path) == size  # a same-size edit


@pytest.mark.parametrize(
    "edit",
    [
        lambda logits: logits.__setitem__((3, 1), logits[3, 1] + 1e-3),
        lambda logits: logits.__setitem__(slice(None), logits[::-1]),
        lambda logits: logits.__setitem__((0, 0), np.nan),
    ],
    ids=["one-value", "rows-swapped", "nan"],
)
def test_tampered_logits_are_detected_and_never_used(tmp_path, teacher_calls, edit):
    teacher, x, path = valid_cache(tmp_path)
    truth = cache.load_soft_targets(path, teacher, x)
    tamper(path, edit)
    with pytest.raises(cache.StaleSoftTargetsError, match="digest"):
        cache.load_soft_targets(path, teacher, x)
    with pytest.raises(cache.StaleSoftTargetsError, match="digest"):
        cache.cache_soft_targets(teacher, x, path, on_stale="error")
    np.testing.assert_array_equal(cache.cache_soft_targets(teacher, x, path), truth)
    assert len(teacher_calls) == 2


def test_cache_of_other_classes_is_refused_even_with_a_matching_digest(tmp_path):
    """A rewritten cache that is self-consistent but has the wrong classes."""
    from kdkeras.targets import fingerprint

    teacher, x, path = valid_cache(tmp_path)
    with np.load(path) as archive:
        metadata = json.loads(str(archive["metadata"]))
    logits = np.ones((len(x), CLASSES + 1), "float32")
    metadata.update(classes=CLASSES + 1, logits_sha256=fingerprint.array_digest(logits))
    np.savez(path, logits=logits, metadata=np.array(json.dumps(metadata)))
    with pytest.raises(cache.StaleSoftTargetsError, match="shape"):
        cache.load_soft_targets(path, teacher, x)


def test_cache_path_that_is_a_directory(tmp_path):
    teacher, x = build_teacher(), random_x()
    folder = tmp_path / "targets.npz"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="`path`") as raised:
        cache.cache_soft_targets(teacher, x, folder)
    assert "\n" not in str(raised.value)
    with pytest.raises(cache.StaleSoftTargetsError, match="directory"):
        cache.load_soft_targets(folder, teacher, x)
    assert os.listdir(folder) == []


def nan_teacher(value=np.nan):
    teacher = build_teacher()
    bias = teacher.layers[-1].bias
    bias.assign(np.array([0.0, value, 0.0, 0.0], "float32"))
    return teacher


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_teacher_logits_are_never_cached(tmp_path, value):
    with pytest.raises(ValueError, match="`teacher_logits` must be finite") as raised:
        cache.cache_soft_targets(nan_teacher(value), random_x(), tmp_path / "t.npz")
    assert "30 of 30 rows" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert os.listdir(tmp_path) == []


def test_non_finite_logits_are_refused_by_the_dataset():
    logits = np.zeros((30, CLASSES), "float32")
    logits[7, 2] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        soft_target_dataset(random_x(), np.zeros(30), logits)


def test_non_finite_teacher_stops_the_online_pipeline():
    import tensorflow as tf

    pipeline = online.online_soft_target_dataset(
        random_x(), np.zeros(30), nan_teacher(), batch_size=8, jit_compile=False
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-finite"):
        list(pipeline)


EMPTY = np.zeros((0, FEATURES), "float32")


@pytest.mark.parametrize(
    "call",
    [
        lambda path: cache.cache_soft_targets(build_teacher(), EMPTY, path),
        lambda path: cache.compute_soft_targets(build_teacher(), EMPTY),
        lambda path: soft_target_dataset(EMPTY, np.zeros(0), np.zeros((0, CLASSES))),
        lambda path: soft_target_dataset({"a": EMPTY}, None, np.zeros((0, CLASSES))),
        lambda path: online.online_soft_target_dataset(
            EMPTY, np.zeros(0), build_teacher()
        ),
        lambda path: online.online_soft_target_dataset(EMPTY, None, build_teacher()),
    ],
    ids=["cache", "compute", "dataset", "dataset-dict", "online", "online-no-y"],
)
def test_empty_inputs_are_refused_with_one_line(tmp_path, call):
    message = "`x` must have at least one example"
    with pytest.raises(ValueError, match=message) as raised:
        call(tmp_path / "t.npz")
    assert "\n" not in str(raised.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_cache_file_follows_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        teacher, x, path = valid_cache(tmp_path)
    finally:
        os.umask(previous)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_staging_files_of_dead_processes_are_removed(tmp_path):
    """A `kill -9` mid-write leaves a staging file: the next write removes it."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    host = socket.gethostname()
    abandoned = tmp_path / f".targets.npz.{host}-{dead.stdout.strip()}.ab12.partial"
    abandoned.write_bytes(b"half a cache")
    running = tmp_path / f".targets.npz.{host}-{os.getpid()}.cd34.partial"
    running.write_bytes(b"a concurrent writer")
    other = tmp_path / ".other.npz.x-1.ef56.partial"
    other.write_bytes(b"another target's")
    valid_cache(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(
        [running.name, other.name, "targets.npz"]
    )


@pytest.mark.parametrize("kind", ["cached", "online"])
def test_non_finite_sample_weights_are_refused(kind):
    weights = np.ones(30, "float32")
    weights[4] = np.inf
    with pytest.raises(ValueError, match="`sample_weight` must be finite"):
        if kind == "cached":
            soft_target_dataset(
                random_x(),
                np.zeros(30),
                np.zeros((30, CLASSES)),
                sample_weight=weights,
            )
        else:
            online.online_soft_target_dataset(
                random_x(), np.zeros(30), build_teacher(), sample_weight=weights
            )
