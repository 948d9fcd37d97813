"""export.staging: nothing half-written ever appears at the output path."""

import os

import pytest

from export import staging


def test_file_committed_only_on_commit(tmp_path):
    target = tmp_path / "model.onnx"
    with staging.StagedOutput(target) as staged:
        assert os.path.dirname(staged.temporary_path) == str(tmp_path)
        assert os.path.basename(staged.temporary_path).startswith(
            ".model.onnx.partial-"
        )
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
        (
            "file",
            {},
            staging.OutputExistsError,
            "must not exist unless --overwrite is given.*already exists",
        ),
        ("dir", {"overwrite": True}, ValueError, "is an existing directory"),
        (
            "file",
            {"overwrite": True, "directory": True},
            ValueError,
            "is an existing file",
        ),
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


def dead_pid():
    """The PID of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporary_name_carries_the_pid(tmp_path):
    with staging.StagedOutput(tmp_path / "m.onnx") as staged:
        name = os.path.basename(staged.temporary_path)
    assert name.startswith(f".m.onnx.partial-{os.getpid()}-")
    assert staging.staging_pattern("m.onnx").match(name)


def test_leftovers_of_a_kill_9_are_removed_by_the_next_run(tmp_path):
    """A real export process killed with SIGKILL mid-write; the next run cleans up."""
    import signal
    import subprocess
    import sys

    target = tmp_path / "model.onnx"
    script = (
        "import os, sys, time\n"
        "from export import staging\n"
        "staged = staging.StagedOutput(sys.argv[1])\n"
        "os.mkdir(staged.temporary_path)\n"
        "open(os.path.join(staged.temporary_path, 'half'), 'wb').write(b'x' * 4096)\n"
        "print(staged.temporary_path, flush=True)\n"
        "time.sleep(60)\n"
    )
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(target)],
        cwd=repo,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": repo},
    )
    leftover = child.stdout.readline().strip()
    # While it runs, its staging is someone else's live export: kept.
    with staging.StagedOutput(target):
        assert os.path.isdir(leftover)
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert os.path.isdir(leftover)  # kill -9: nothing cleaned up
    with staging.StagedOutput(target) as staged:
        assert not os.path.exists(leftover)
        with open(staged.temporary_path, "wb") as handle:
            handle.write(b"new")
        staged.commit()
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_only_our_own_stale_names_are_removed(tmp_path):
    dead, alive = dead_pid(), os.getppid()
    names = {
        f".model.onnx.partial-{dead}-0123abcd": True,  # dead export: removed
        f".model.onnx.old-{dead}-0123abcd": True,  # dead overwrite aside
        f".model.onnx.partial-{alive}-0123abcd": False,  # live export: kept
        ".model.onnx.partial-0123abcd": False,  # no PID: not ours
        f".other.onnx.partial-{dead}-0123abcd": False,  # another target
        f".model.onnx.partial-{dead}-0123abcd.txt": False,  # not our pattern
        "model.onnx.partial-1-0123abcd": False,  # not hidden: not ours
        "notes.txt": False,
    }
    for name in names:
        path = tmp_path / name
        if "old" in name:
            path.mkdir()
            (path / "saved_model.pb").write_bytes(b"x")
        else:
            path.write_bytes(b"x")
    removed = staging.remove_stale_staging(tmp_path / "model.onnx")
    expected = sorted(str(tmp_path / n) for n, gone in names.items() if gone)
    assert removed == expected
    assert sorted(os.listdir(tmp_path)) == sorted(
        n for n, gone in names.items() if not gone
    )


def test_existing_directory_for_a_file_format_says_so_without_overwrite(tmp_path):
    (tmp_path / "out.onnx").mkdir()
    with pytest.raises(ValueError, match="must be a file path.*existing directory"):
        staging.check_output_path(tmp_path / "out.onnx")


def test_parent_that_is_a_file(tmp_path):
    (tmp_path / "plain").write_bytes(b"x")
    with pytest.raises(ValueError, match="parent folder .*plain is not a folder"):
        staging.check_output_path(tmp_path / "plain" / "out.onnx")


@pytest.mark.parametrize("where", ["chmod", "proc"])
def test_unwritable_folder_refused_up_front(tmp_path, where):
    if where == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
    else:
        if not os.path.isdir("/proc/self"):
            pytest.skip("no /proc")
        folder = "/proc"
    try:
        with pytest.raises(PermissionError, match="must be in a writable folder"):
            staging.check_output_path(os.path.join(folder, "out.tflite"))
    finally:
        if where == "chmod":
            folder.chmod(0o755)
