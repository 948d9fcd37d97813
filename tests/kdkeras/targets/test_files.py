"""Tests for kdkeras/targets/files.py: staged, atomic, umask-respecting writes."""

import os
import socket

import pytest

from kdkeras.targets import files


@pytest.mark.parametrize("suffix", ["", "/"])
def test_staging_lives_beside_the_target_and_follows_the_umask(tmp_path, suffix):
    previous = os.umask(0o027)
    try:
        handle, staged = files.create_staging_file(str(tmp_path / "t.npz"))
        os.close(handle)
        folder = files.create_staging_directory(str(tmp_path / "cache") + suffix)
    finally:
        os.umask(previous)
    assert os.path.dirname(staged) == str(tmp_path)
    assert os.path.basename(staged).startswith(".t.npz.")
    assert os.path.basename(folder).startswith(".cache.")
    assert os.path.dirname(folder) == str(tmp_path)
    assert os.stat(staged).st_mode & 0o777 == 0o640
    assert os.stat(folder).st_mode & 0o777 == 0o750


def test_replace_directory_swaps_complete_folders(tmp_path):
    target = tmp_path / "cache"
    target.mkdir()
    (target / "old").write_text("old")
    staged = files.create_staging_directory(str(target))
    with open(os.path.join(staged, "new"), "w") as file:
        file.write("new")
    files.replace_directory(staged, str(target))
    assert os.listdir(target) == ["new"]
    assert sorted(os.listdir(tmp_path)) == ["cache"]


def test_only_dead_local_writers_staging_is_removed(tmp_path):
    host = socket.gethostname()
    dead = tmp_path / f".t.npz.{host}-999999999.aa.partial"
    alive = tmp_path / f".t.npz.{host}-{os.getpid()}.bb.partial"
    remote = tmp_path / ".t.npz.elsewhere-999999999.cc.partial"
    for path in (dead, alive, remote):
        path.mkdir()
    files.remove_abandoned_staging(str(tmp_path / "t.npz"))
    assert sorted(os.listdir(tmp_path)) == sorted([alive.name, remote.name])
