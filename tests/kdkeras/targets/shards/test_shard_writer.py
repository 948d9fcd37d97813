"""Tests for kdkeras/targets/shards/writer.py: the streamed, sharded cache."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdkeras.targets import topk
from kdkeras.targets.batch import TopKTargets
from kdkeras.targets.batch import split_targets
from kdkeras.targets.memory import cache
from kdkeras.targets.shards import writer as shards_lib
from kdkeras.targets.shards.dataset import soft_target_shards_dataset
from tests import reference
from tests.kdkeras.targets.shards.shards_setup import CLASSES
from tests.kdkeras.targets.shards.shards_setup import COUNT
from tests.kdkeras.targets.shards.shards_setup import PER_SHARD
from tests.kdkeras.targets.shards.shards_setup import all_logits
from tests.kdkeras.targets.shards.shards_setup import assert_same_files
from tests.kdkeras.targets.shards.shards_setup import build_cache
from tests.kdkeras.targets.shards.shards_setup import build_teacher
from tests.kdkeras.targets.shards.shards_setup import collect
from tests.kdkeras.targets.shards.shards_setup import indexed_x
from tests.kdkeras.targets.shards.shards_setup import stream


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_streamed_cache_holds_the_teachers_logits_in_shards(tmp_path, dtype):
    teacher, _, shards = build_cache(tmp_path, dtype=dtype)
    x = indexed_x()
    expected = reference.dense_relu_logits(teacher, x).astype(dtype)
    np.testing.assert_allclose(all_logits(shards), expected, rtol=1e-3, atol=1e-5)
    assert sorted(os.listdir(tmp_path)) == ["targets"]  # no staging left
    names = sorted(os.listdir(tmp_path / "targets"))
    assert names == ["index.json"] + [
        f"shard-{i:05d}.{kind}.npy" for i in range(6) for kind in ("inputs", "logits")
    ]
    last = np.load(tmp_path / "targets" / names[-1], mmap_mode="r")
    assert isinstance(last, np.memmap) and last.shape == (3, CLASSES)
    assert last.dtype == np.dtype(dtype)
    # The in-memory cache of the same data holds the same logits.
    in_memory = cache.cache_soft_targets(teacher, x, tmp_path / "a.npz", dtype=dtype)
    np.testing.assert_allclose(all_logits(shards), in_memory, rtol=1e-3, atol=1e-6)


def test_matching_cache_is_reused_and_the_teacher_does_not_run(tmp_path, monkeypatch):
    teacher, data, _ = build_cache(tmp_path)
    index = tmp_path / "targets" / "index.json"
    before = os.stat(index)

    def no_teacher(model):
        raise AssertionError("the teacher ran")

    monkeypatch.setattr(shards_lib.teachers, "logits_model", no_teacher)
    again = shards_lib.cache_soft_target_shards(
        teacher, data, tmp_path / "targets", examples_per_shard=PER_SHARD
    )
    assert len(again) == COUNT
    assert os.stat(index).st_ino == before.st_ino


def test_two_workers_merged_equal_one_process_byte_for_byte(tmp_path):
    teacher, data, single = build_cache(tmp_path, name="single")
    parts = []
    for worker in range(2):
        _, _, part = build_cache(
            tmp_path,
            teacher=teacher,
            data=data,
            name=f"part{worker}",
            shard=(worker, 2),
        )
        computed = [entry["id"] for entry in part.index["shards"]]
        assert computed == list(range(worker, 6, 2))
        parts.append(part.path)
    with pytest.raises(cache.StaleSoftTargetsError, match="merge"):
        shards_lib.load_soft_target_shards(parts[0])
    merged = shards_lib.merge_soft_target_shards(parts[::-1], tmp_path / "merged")
    assert_same_files(tmp_path / "merged", tmp_path / "single")
    shards_lib.load_soft_target_shards(merged.path, teacher, data)


def test_merge_refuses_missing_or_disagreeing_parts(tmp_path):
    teacher, data, part0 = build_cache(tmp_path, name="p0", shard=(0, 2))
    with pytest.raises(cache.StaleSoftTargetsError, match="workers 0..1"):
        shards_lib.merge_soft_target_shards([part0.path], tmp_path / "m")
    other = stream(indexed_x(seed=9))
    _, _, part1 = build_cache(
        tmp_path, teacher=teacher, data=other, name="p1", shard=(1, 2)
    )
    with pytest.raises(cache.StaleSoftTargetsError, match="disagrees"):
        shards_lib.merge_soft_target_shards([part0.path, part1.path], tmp_path / "m")
    assert not os.path.exists(tmp_path / "m")


def damage(path, how):
    shard = path / "shard-00002.logits.npy"
    if how == "missing-shard":
        shard.unlink()
    elif how == "truncated-shard":
        shard.write_bytes(shard.read_bytes()[:-8])
    elif how == "edited-shard":  # same size, same header, one value changed
        array = np.load(shard)
        array[1, 2] += 0.5
        np.save(shard, array)
    elif how == "dropped-shard-from-index":
        index = json.loads((path / "index.json").read_text())
        del index["shards"][2]
        (path / "index.json").write_text(json.dumps(index))
    else:
        raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "missing-shard",
        "truncated-shard",
        "edited-shard",
        "dropped-shard-from-index",
    ],
)
def test_damaged_cache_is_detected_and_recomputed(tmp_path, how):
    teacher, data, shards = build_cache(tmp_path)
    truth = all_logits(shards)
    damage(tmp_path / "targets", how)
    with pytest.raises(cache.StaleSoftTargetsError) as raised:
        shards_lib.load_soft_target_shards(tmp_path / "targets", teacher, data)
    assert "targets" in str(raised.value) and "\n" not in str(raised.value)
    with pytest.raises(cache.StaleSoftTargetsError):
        build_cache(tmp_path, teacher=teacher, data=data, on_stale="error")
    _, _, recomputed = build_cache(tmp_path, teacher=teacher, data=data)
    np.testing.assert_array_equal(all_logits(recomputed), truth)
    shards_lib.load_soft_target_shards(tmp_path / "targets", teacher, data)


@pytest.mark.parametrize("change", ["order", "values", "shorter", "longer", "teacher"])
def test_other_data_order_or_teacher_is_stale(tmp_path, change):
    teacher, data, shards = build_cache(tmp_path)
    x = indexed_x()
    if change == "order":
        x = np.concatenate([x[10:20], x[:10], x[20:]])
    elif change == "values":
        x = x.copy()
        x[44, 3] += 1e-3
    elif change == "shorter":
        x = x[:-1]
    elif change == "longer":
        x = np.concatenate([x, x[:1]])
    elif change == "teacher":
        teacher = build_teacher(seed=2)
    other = stream(x)
    with pytest.raises(cache.StaleSoftTargetsError, match="stale"):
        shards_lib.load_soft_target_shards(tmp_path / "targets", teacher, other)
    with pytest.raises(cache.StaleSoftTargetsError, match="stale"):
        build_cache(tmp_path, teacher=teacher, data=other, on_stale="error")
    if change != "teacher":
        # The training dataset checks the stream it is given.
        with pytest.raises(cache.StaleSoftTargetsError, match="stale"):
            soft_target_shards_dataset(other, shards)


def test_top_k_cache_stores_k_logits_their_classes_and_the_tail(tmp_path):
    teacher, data, shards = build_cache(tmp_path, top_k=3, temperature=2.0)
    full = reference.dense_relu_logits(teacher, indexed_x())
    values, indices, tail = topk.top_k_targets(full, 3, 2.0)
    stored = shards.stored(np.arange(COUNT))
    assert stored["values"].dtype == np.float16  # the top-k default
    np.testing.assert_allclose(stored["values"], values, rtol=1e-3)
    np.testing.assert_array_equal(stored["indices"], indices)
    np.testing.assert_allclose(stored["tail"], tail, rtol=1e-5, atol=1e-5)
    assert shards.examples_per_shard == PER_SHARD
    # Training batches carry the top-k targets and the cache's temperature.
    batches = list(soft_target_shards_dataset(data, shards, shuffle=False))
    labels, targets = split_targets(
        {k: np.concatenate([b[1][k] for b in batches]) for k in batches[0][1]}
    )
    assert labels is None and isinstance(targets, TopKTargets)
    np.testing.assert_array_equal(targets.values, stored["values"].astype("float32"))
    np.testing.assert_array_equal(targets.indices, indices)
    np.testing.assert_array_equal(targets.tail, stored["tail"])
    np.testing.assert_array_equal(targets.temperature, np.full(COUNT, 2.0))
    # expand_top_k=True: full logits with the tail spread evenly.
    _, _, logits, _ = collect(
        soft_target_shards_dataset(data, shards, shuffle=False, expand_top_k=True)
    )
    np.testing.assert_allclose(
        logits,
        topk.dense_logits_from_top_k(
            stored["values"], indices, stored["tail"], CLASSES, 2.0
        ),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"top_k": 3}, ValueError, "`temperature`"),
        ({"top_k": CLASSES, "temperature": 1.0}, ValueError, "`top_k`"),
        ({"top_k": 0, "temperature": 1.0}, ValueError, "`top_k`"),
        ({"temperature": 2.0}, ValueError, "`temperature`"),
        ({"top_k": 2, "temperature": float("inf")}, ValueError, "`temperature`"),
        ({"dtype": "int8"}, ValueError, "`dtype`"),
        ({"shard": (2, 2)}, ValueError, "`shard`"),
        ({"examples_per_shard": 0}, ValueError, "`examples_per_shard`"),
        ({"on_stale": "ignore"}, ValueError, "`on_stale`"),
        ({"data": "repeat"}, ValueError, "finite"),
        ({"data": "unknown"}, ValueError, "known number of batches"),
        (
            {"data": "narrow"},
            ValueError,
            r"teacher's inputs \(None, 6\). .*\(None, 5\)",
        ),
        ({"data": "nondeterministic"}, ValueError, "deterministic"),
        ({"data": "empty"}, ValueError, "at least one example"),
        ({"data": "numpy"}, TypeError, "`data`"),
        ({"teacher": "model"}, TypeError, "`teacher`"),
    ],
)
def test_bad_input_is_refused_with_one_line_and_nothing_written(
    tmp_path, kwargs, error, word
):
    data = stream(indexed_x())
    special = {
        "repeat": data.repeat(),
        "unknown": data.repeat().filter(lambda x: x[0, 0] >= 0),
        "narrow": stream(indexed_x()[:, :5]),
        "nondeterministic": data.with_options(_nondeterministic()),
        "empty": data.take(0),
        "numpy": indexed_x(),
    }
    if "data" in kwargs:
        kwargs = {"data": special[kwargs["data"]]}
    arguments = {"teacher": build_teacher(), "data": data, "path": tmp_path / "targets"}
    arguments.update(kwargs)
    with pytest.raises(error, match=word) as raised:
        shards_lib.cache_soft_target_shards(**arguments)
    assert "\n" not in str(raised.value)
    assert os.listdir(tmp_path) == []


def _nondeterministic():
    options = tf.data.Options()
    options.deterministic = False
    return options


def test_non_finite_teacher_writes_nothing(tmp_path):
    teacher = build_teacher()
    teacher.layers[-1].bias.assign(np.where(np.arange(CLASSES) == 4, np.nan, 0.0))
    with pytest.raises(ValueError, match="must be finite"):
        build_cache(tmp_path, teacher=teacher)
    assert os.listdir(tmp_path) == []


def test_target_that_is_a_file_or_a_foreign_folder_is_refused(tmp_path):
    (tmp_path / "file").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="`path`"):
        build_cache(tmp_path, name="file")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="`path`"):
        build_cache(tmp_path, name="folder")
    assert (tmp_path / "folder" / "notes.txt").read_text() == "mine"


def test_cache_files_follow_the_umask(tmp_path):
    previous = os.umask(0o002)
    try:
        build_cache(tmp_path)
    finally:
        os.umask(previous)
    folder = tmp_path / "targets"
    assert os.stat(folder).st_mode & 0o777 == 0o775
    for name in os.listdir(folder):
        assert os.stat(folder / name).st_mode & 0o777 == 0o664, name


def test_stream_that_reshuffles_between_passes_is_refused(tmp_path):
    x = indexed_x()
    data = (
        tf.data.Dataset.from_tensor_slices(x)
        .shuffle(COUNT, seed=1, reshuffle_each_iteration=True)
        .batch(7)
    )
    teacher, data, shards = build_cache(tmp_path, data=data)
    with pytest.raises(cache.StaleSoftTargetsError, match="data order"):
        soft_target_shards_dataset(data, shards)


def test_folder_with_a_foreign_index_is_never_replaced(tmp_path):
    folder = tmp_path / "targets"
    folder.mkdir()
    (folder / "index.json").write_text('{"mine": true}')
    (folder / "data.csv").write_text("1,2")
    with pytest.raises(FileExistsError, match="`path`"):
        build_cache(tmp_path)
    assert sorted(os.listdir(folder)) == ["data.csv", "index.json"]


def test_rows_are_read_by_position_in_any_order_with_repeats(tmp_path):
    teacher, _, shards = build_cache(tmp_path)
    full = all_logits(shards)
    positions = np.array([52, 0, 0, 17, 9, 10, 52, 31])
    np.testing.assert_array_equal(shards.logits(positions), full[positions])
    np.testing.assert_allclose(
        full, reference.dense_relu_logits(teacher, indexed_x()), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="more examples"):
        shards.logits([COUNT])
    shards.close()
    np.testing.assert_array_equal(shards.logits([3]), full[[3]])


class EndlessSequence(keras.utils.PyDataset):
    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        return indexed_x(count=4)


def test_infinite_py_dataset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="`data` must be finite") as raised:
        build_cache(tmp_path, data=EndlessSequence())
    assert "\n" not in str(raised.value)
    assert os.listdir(tmp_path) == []


def softmax64(logits, temperature):
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def test_float16_top_k_of_large_logits_is_refused_not_rounded(tmp_path):
    """Logits near 1000 at T=4: float16's spacing 0.5 moves probabilities."""
    teacher = build_teacher()
    teacher.layers[-1].bias.assign(np.linspace(1000.0, 1003.0, CLASSES))
    full = reference.dense_relu_logits(teacher, indexed_x())
    values, _, _ = topk.top_k_targets(full, 3, 4.0)
    # What float16 storage would do to the top-3 probabilities.
    error = np.abs(
        softmax64(values.astype(np.float16), 4.0) / softmax64(values, 4.0) - 1
    ).max()
    assert error > 0.01
    with pytest.raises(ValueError, match="dtype='float32'") as raised:
        build_cache(tmp_path, teacher=teacher, top_k=3, temperature=4.0)
    assert "\n" not in str(raised.value) and "temperature 4" in str(raised.value)
    assert os.listdir(tmp_path) == []
    _, _, shards = build_cache(
        tmp_path, teacher=teacher, top_k=3, temperature=4.0, dtype="float32"
    )
    np.testing.assert_allclose(shards.stored([0])["values"], values[:1], rtol=1e-6)
