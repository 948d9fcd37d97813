"""kdutils.staging: atomic staged writes, what they leave behind, process checks."""

import os
import subprocess
import sys

import pytest

from kdutils import staging


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_process_alive_tells_a_running_process_from_a_finished_one():
    assert staging.process_alive(os.getpid())
    assert not staging.process_alive(_dead_pid())
    assert not staging.process_alive(0)


@pytest.mark.parametrize("data", [b"\x00bytes\xff", "text ± é\n"])
def test_write_atomically_leaves_exactly_the_target(tmp_path, data):
    path = tmp_path / "out.md"
    path.write_text("previous")
    assert staging.write_atomically(str(path), data) == str(path)
    expected = data.encode("utf-8") if isinstance(data, str) else data
    assert path.read_bytes() == expected
    assert os.listdir(tmp_path) == ["out.md"]


def test_a_failed_write_keeps_the_previous_file_and_no_staging(tmp_path, monkeypatch):
    path = tmp_path / "out.json"
    path.write_text("previous")

    def broken(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(staging.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        staging.write_atomically(str(path), "new")
    assert path.read_text() == "previous"
    assert os.listdir(tmp_path) == ["out.json"]


def test_temporary_sibling_is_hidden_beside_the_target_and_names_the_process(tmp_path):
    sibling = staging.temporary_sibling(str(tmp_path / "m.onnx"), tag="old")
    assert os.path.dirname(sibling) == str(tmp_path)
    assert os.path.basename(sibling).startswith(f".m.onnx.old-{os.getpid()}-")
    assert sibling != staging.temporary_sibling(str(tmp_path / "m.onnx"), tag="old")


def test_replace_path_swaps_a_folder_and_restores_it_if_the_swap_fails(
    tmp_path, monkeypatch
):
    target, new = tmp_path / "saved", tmp_path / ".saved.partial"
    target.mkdir()
    (target / "old.pb").write_text("old")
    new.mkdir()
    (new / "new.pb").write_text("new")
    real_replace = os.replace
    calls = []

    def second_rename_fails(source, destination):
        calls.append(source)
        if len(calls) == 2:
            raise OSError("interrupted")
        real_replace(source, destination)

    monkeypatch.setattr(staging.os, "replace", second_rename_fails)
    with pytest.raises(OSError, match="interrupted"):
        staging.replace_path(str(new), str(target))
    assert os.listdir(target) == ["old.pb"]  # restored
    monkeypatch.setattr(staging.os, "replace", real_replace)
    staging.replace_path(str(new), str(target))
    assert os.listdir(target) == ["new.pb"]
    assert sorted(os.listdir(tmp_path)) == ["saved"]


def test_remove_path_removes_a_link_not_its_target(tmp_path):
    folder = tmp_path / "kept"
    folder.mkdir()
    (folder / "file").write_text("x")
    link = tmp_path / "link"
    link.symlink_to(folder)
    staging.remove_path(str(link))
    staging.remove_path(str(tmp_path / "missing"))
    assert os.listdir(tmp_path) == ["kept"] and os.listdir(folder) == ["file"]
