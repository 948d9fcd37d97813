"""export.staging: nothing half-written ever appears at the output path."""

import os

import pytest

from export import staging


def test_file_committed_only_on_commit(tmp_path):
    target = tmp_path / "model.onnx"
    with staging.StagedOutput(target) as staged:
        assert os.path.dirname(staged.temporary_path) == str(tmp_path)
        assert os.path.basename(staged.temporary_path).startswith(".model.onnx.partial-")
        with open(staged.temporary_path, "wb") as handle:
            handle.write(b"new")
        assert not target.exists()
        staged.commit()
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_failure_leaves_destination_untouched_and_no_leftovers(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="verification failed"):
        with staging.StagedOutput(target, overwrite=True) as staged:
            with open(staged.temporary_path, "wb") as handle:
                handle.write(b"bad")
            raise RuntimeError("verification failed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_directory_replaced_with_overwrite(tmp_path):
    target = tmp_path / "saved"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with staging.StagedOutput(target, overwrite=True, directory=True) as staged:
        os.mkdir(staged.temporary_path)
        with open(os.path.join(staged.temporary_path, "new.txt"), "w") as handle:
            handle.write("new")
        staged.commit()
    assert os.listdir(target) == ["new.txt"]
    assert os.listdir(tmp_path) == ["saved"]


@pytest.mark.parametrize(
    "setup,kwargs,error,message",
    [
        ("file", {}, staging.OutputExistsError, "must not exist unless --overwrite is given.*already exists"),
        ("dir", {"overwrite": True}, ValueError, "is an existing directory"),
        ("file", {"overwrite": True, "directory": True}, ValueError, "is an existing file"),
        (None, {}, ValueError, "parent folder"),
    ],
)
def test_bad_destinations(tmp_path, setup, kwargs, error, message):
    target = tmp_path / "out"
    if setup == "file":
        target.write_bytes(b"x")
    elif setup == "dir":
        target.mkdir()
    else:
        target = tmp_path / "no" / "such" / "out"
    with pytest.raises(error, match=message):
        staging.StagedOutput(target, **kwargs)


def test_artifact_size_sums_directory_files(tmp_path):
    (tmp_path / "a").write_bytes(b"12345")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"123")
    assert staging.artifact_size_bytes(tmp_path) == 8
    assert staging.artifact_size_bytes(tmp_path / "a") == 5
