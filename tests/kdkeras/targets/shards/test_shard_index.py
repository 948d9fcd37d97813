"""Tests for kdkeras/targets/shards/index.py: a cache's index is verified in
full (its own digest, its schema, its file names) before anything is read,
written or deleted."""

import gc
import json
import os
import sys

import numpy as np
import pytest

from kdkeras.targets.memory.cache import StaleSoftTargetsError
from kdkeras.targets.shards import index as index_lib
from kdkeras.targets.shards import writer as shards_lib
from kdkeras.targets.shards.dataset import soft_target_shards_dataset
from kdkeras.targets.shards.reader import SoftTargetShards
from tests.kdkeras.targets.shards.shards_setup import all_logits
from tests.kdkeras.targets.shards.shards_setup import build_cache


def tree(folder):
    """Every path under `folder` (files and folders), relative to it."""
    return sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, dirs, names in os.walk(folder)
        for name in dirs + names
    )


def edit_index(folder, edit, resign):
    """Edits `folder`'s index.json; `resign`: with a matching own digest
    (what a forger, or a careful user, would write)."""
    path = folder / "index.json"
    index = json.loads(path.read_text())
    edit(index)
    if resign:
        index_lib.write_index(folder, index)
    else:
        path.write_text(json.dumps(index))


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize("resign", [False, True], ids=["edited", "resigned"])
def test_merge_never_writes_outside_its_folder(tmp_path, resign):
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    teacher, data, _ = build_cache(deep, name="p0", shard=(0, 2))
    build_cache(deep, teacher=teacher, data=data, name="p1", shard=(1, 2))
    # The part names a file two folders up, and the file is there, intact.
    name = "../../escaped.npy"
    (deep / "p0" / name).write_bytes(
        (deep / "p0" / "shard-00000.logits.npy").read_bytes()
    )
    edit_index(
        deep / "p0",
        lambda index: index["shards"][0]["files"]["logits"].update(name=name),
        resign,
    )
    before = tree(tmp_path)
    with pytest.raises(StaleSoftTargetsError) as raised:
        shards_lib.merge_soft_target_shards(
            [deep / "p0", deep / "p1"], deep / "out" / "merged"
        )
    assert "\n" not in str(raised.value)
    assert tree(tmp_path) == before  # nothing written anywhere
    with pytest.raises(StaleSoftTargetsError):
        shards_lib.load_soft_target_shards(deep / "p0")


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "sub/shard-00000.logits.npy", "..", "shard-00001.logits.npy"],
)
def test_file_names_are_the_writers_own(tmp_path, name):
    teacher, data, _ = build_cache(tmp_path)
    folder = tmp_path / "targets"
    edit_index(
        folder,
        lambda index: index["shards"][0]["files"]["logits"].update(name=name),
        resign=True,
    )
    with pytest.raises(StaleSoftTargetsError, match="`shards\\[0\\].files.logits`"):
        shards_lib.load_soft_target_shards(folder, teacher, data)


def test_a_shard_file_that_is_a_symlink_is_refused(tmp_path):
    teacher, data, _ = build_cache(tmp_path)
    folder = tmp_path / "targets"
    outside = tmp_path / "elsewhere.npy"
    os.replace(folder / "shard-00001.logits.npy", outside)
    os.symlink(outside, folder / "shard-00001.logits.npy")
    with pytest.raises(StaleSoftTargetsError, match="not a plain file"):
        shards_lib.load_soft_target_shards(folder, teacher, data)
    # Recomputing replaces the link, never the file it points to.
    before = outside.read_bytes()
    build_cache(tmp_path, teacher=teacher, data=data)
    assert not os.path.islink(folder / "shard-00001.logits.npy")
    assert outside.read_bytes() == before


# ------------------------------------------------------- the user's folders


@pytest.mark.parametrize(
    "files",
    [
        {"index.json": '{"mine": true}'},
        {"index.json": "my notes, not JSON"},
        {"index.json": ""},
        {"index.json": '{"format": "something-else"}'},
        {"shard-00000.logits.npy": "mine"},
    ],
    ids=["own-index", "text-index", "empty-index", "other-format", "no-index"],
)
@pytest.mark.parametrize("call", ["cache", "merge"])
def test_a_folder_this_tool_did_not_write_is_never_replaced(tmp_path, files, call):
    folder = tmp_path / "targets"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(FileExistsError, match="`path`") as raised:
        if call == "cache":
            build_cache(tmp_path)
        else:
            teacher, data, _ = build_cache(tmp_path, name="p0", shard=(0, 1))
            shards_lib.merge_soft_target_shards([tmp_path / "p0"], folder)
    message = str(raised.value)
    assert index_lib.shown(str(folder)) in message and "\n" not in message
    for name, text in files.items():
        assert (folder / name).read_text() == text
    assert sorted(os.listdir(folder)) == sorted(files)


def test_a_long_path_is_echoed_bounded(tmp_path):
    folder = tmp_path / ("x" * 200)
    folder.mkdir()
    (folder / "index.json").write_text("{}")
    with pytest.raises(FileExistsError) as raised:
        build_cache(tmp_path, name="x" * 200)
    assert len(str(raised.value)) < 300


# --------------------------------------------- edited indexes, one error type


def _remove(key):
    return lambda index: index.pop(key)


def _set(key, value):
    return lambda index: index.__setitem__(key, value)


def _set_rows(value):
    return lambda index: index["shards"][1].__setitem__("rows", value)


EDITS = {
    "temperature-2-to-4": _set("temperature", 4.0),
    "top_k-removed": _remove("top_k"),
    "classes-removed": _remove("classes"),
    "shards-removed": _remove("shards"),
    "rows-a-string": _set_rows("10"),
    "rows-a-bool": _set_rows(True),
    "rows-too-many": _set_rows(11),
    "classes-10-to-11": _set("classes", 11),
    "top_k-0": _set("top_k", 0),
    "top_k-a-list": _set("top_k", [3]),
    "examples-negative": _set("examples", -5),
    "temperature-nan": _set("temperature", float("nan")),
    "dtype-int8": _set("dtype", "int8"),
    "shard-out-of-range": _set("shard", [2, 2]),
    "files-a-list": lambda index: index["shards"][0].__setitem__("files", []),
    "extra-key": _set("mine", 1),
}


#: Edits that follow the schema: found by the index's own digest only (a
#: forger who re-signs the index is not in reach of a digest).
WITHIN_SCHEMA = {"temperature-2-to-4"}


@pytest.mark.parametrize(
    "edit, resign",
    [(edit, False) for edit in sorted(EDITS)]
    + [(edit, True) for edit in sorted(EDITS) if edit not in WITHIN_SCHEMA],
)
def test_an_edited_index_is_stale_and_recomputed(tmp_path, edit, resign):
    teacher, data, shards = build_cache(tmp_path, top_k=3, temperature=2.0)
    truth = all_logits(shards)
    folder = tmp_path / "targets"
    edit_index(folder, EDITS[edit], resign)
    with pytest.raises(StaleSoftTargetsError) as raised:
        shards_lib.load_soft_target_shards(folder, teacher, data)
    assert "\n" not in str(raised.value) and len(str(raised.value)) < 400
    if not resign:
        assert "own SHA-256 digest" in str(raised.value)
    with pytest.raises(StaleSoftTargetsError):
        build_cache(
            tmp_path,
            teacher=teacher,
            data=data,
            top_k=3,
            temperature=2.0,
            on_stale="error",
        )
    # The tool's own (damaged) cache: recomputed, not a crash.
    _, _, again = build_cache(
        tmp_path, teacher=teacher, data=data, top_k=3, temperature=2.0
    )
    np.testing.assert_array_equal(all_logits(again), truth)
    assert again.temperature == 2.0


def test_the_index_digest_covers_its_content(tmp_path):
    _, _, shards = build_cache(tmp_path, top_k=3, temperature=2.0)
    written = json.loads((tmp_path / "targets" / "index.json").read_text())
    assert written[index_lib.INDEX_DIGEST_KEY] == index_lib.index_digest(written)
    assert shards.index == written
    for key in ("temperature", "top_k", "classes", "shards", "input_digests"):
        changed = dict(written, **{key: None})
        assert index_lib.index_digest(changed) != index_lib.index_digest(written)


def test_a_half_built_cache_object_is_collected_quietly(tmp_path, monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with pytest.raises(KeyError):
        SoftTargetShards(str(tmp_path), {"examples": 3})
    gc.collect()
    assert unraisable == []


def test_the_dataset_refuses_a_worker_part_without_a_key_error(tmp_path):
    teacher, data, part = build_cache(tmp_path, name="p0", shard=(0, 2))
    with pytest.raises(StaleSoftTargetsError, match="merge"):
        soft_target_shards_dataset(data, part)
