"""Tests for export.verify_release: a release is checked before anything reads it."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from export import verify_release

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = b"\x1c\x00\x00\x00TFL3 the released student"


def _release(folder, **changes):
    """A release folder of `DATA` with its sidecar; `changes` edit release.json."""
    folder.mkdir(exist_ok=True)
    (folder / "student.tflite").write_bytes(DATA)
    digest = hashlib.sha256(DATA).hexdigest()
    sidecar = {"artifact": "student.tflite", "size_bytes": len(DATA), "sha256": digest}
    (folder / "student.tflite.json").write_text(json.dumps(sidecar))
    record = {
        "artifact": "student.tflite",
        "sha256": digest,
        "size_bytes": len(DATA),
        "sidecar": "student.tflite.json",
        "format": "tflite",
    }
    record.update(changes)
    (folder / "release.json").write_text(json.dumps(record))
    return folder


def test_an_intact_release_is_verified(tmp_path):
    record = verify_release.verify_release(_release(tmp_path / "release"))
    assert record["artifact_path"] == str(tmp_path / "release" / "student.tflite")


def _swap(folder):
    (folder / "student.tflite").write_bytes(DATA.replace(b"student", b"teacher"))


def _outside(folder):
    (folder.parent / "elsewhere").mkdir()
    (folder.parent / "elsewhere" / "student.tflite").write_bytes(DATA)
    _edit(folder, artifact="../elsewhere/student.tflite")


def _absolute(folder):
    _edit(folder, artifact=str(folder / "student.tflite"))


def _link(folder):
    (folder.parent / "teacher.tflite").write_bytes(DATA)
    os.remove(folder / "student.tflite")
    os.symlink(folder.parent / "teacher.tflite", folder / "student.tflite")


def _edit(folder, **changes):
    record = json.loads((folder / "release.json").read_text())
    record.update(changes)
    (folder / "release.json").write_text(json.dumps(record))


def _sidecar(folder, **changes):
    path = folder / "student.tflite.json"
    content = json.loads(path.read_text())
    content.update(changes)
    path.write_text(json.dumps(content))


@pytest.mark.parametrize(
    "tamper, match",
    [
        (_swap, "must have the SHA-256 release.json records"),
        (_outside, "must be a plain file name inside the release folder"),
        (_absolute, "must be a plain file name inside the release folder"),
        (lambda f: _edit(f, artifact=".."), "must be a plain file name"),
        (lambda f: _edit(f, artifact=["x"]), "must be a plain file name"),
        (_link, "not a symbolic link"),
        (lambda f: _edit(f, size_bytes=1), "must have the size"),
        (lambda f: _edit(f, sha256=None), "must have the SHA-256"),
        (lambda f: os.remove(f / "student.tflite"), "which is missing"),
        (lambda f: _edit(f, sidecar="../student.tflite.json"), "`sidecar`"),
        (lambda f: _sidecar(f, artifact="teacher.tflite"), "must describe"),
        (lambda f: _sidecar(f, sha256="0" * 64), "sidecar's sha256"),
        (lambda f: (f / "release.json").write_text("[1, 2"), "readable JSON"),
        (lambda f: _edit(f, artifact="x" * 100_000), "`artifact` must"),
    ],
)
def test_a_release_that_is_not_what_it_records_is_refused(tmp_path, tamper, match):
    folder = _release(tmp_path / "release")
    tamper(folder)
    with pytest.raises(verify_release.ReleaseError, match=match) as error:
        verify_release.verify_release(folder)
    assert "\n" not in str(error.value) and len(str(error.value)) < 400


def _run(*arguments):
    return subprocess.run(
        [sys.executable, "-m", "export.verify_release", *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        timeout=60,
    )


def test_command_exit_status_and_one_line(tmp_path):
    folder = str(_release(tmp_path / "release"))
    verified = _run(folder)
    assert verified.returncode == 0 and verified.stderr == ""
    assert verified.stdout.startswith("export.verify_release: verified student.tflite")
    assert len(verified.stdout.splitlines()) == 1
    _swap(tmp_path / "release")
    refused = _run(folder)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("export.verify_release: error: student.tflite")
    assert len(refused.stderr.splitlines()) == 1
    for arguments in ([str(tmp_path)], [], [folder, folder], ["--bogus"]):
        usage = _run(*arguments)
        assert usage.returncode == 2 and len(usage.stderr.splitlines()) == 1
    assert _run("--help").returncode == 0


def test_the_verifier_needs_neither_tensorflow_nor_kdkeras():
    code = (
        "import sys, export.verify_release; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('tensorflow', 'keras', 'kdkeras', 'numpy')))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        timeout=60,
    )
    assert completed.stdout.strip() == "[]", completed.stderr
