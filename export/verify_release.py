"""`python -m export.verify_release RELEASE_DIR`: is this release what it says?

A release folder (written by `python -m export.report --release-dir`) holds
the artifact, its sidecar and `release.json`. Before anything reads the
artifact (a deployment pipeline, `benchmarks.inference_latency --release`),
`verify_release` checks that `release.json` names a plain file inside the
folder (no path, no link out of it), that the file has the recorded size and
SHA-256, and that the sidecar, when named, is a plain file of the folder
describing that artifact (its name and, when it records one, its SHA-256).

It reads JSON and bytes only (the standard library and `export`'s own
light modules: no TensorFlow, no `kdkeras`), so a deployment pipeline can
call it anywhere the repository is.

Exit status: 0 the release is verified (one line on stdout: the artifact,
its size and SHA-256); 1 it is not (one line on stderr: what differs);
2 bad usage (RELEASE_DIR missing, not a folder, no `release.json`).
"""

import os
import sys

from export.sidecar import read_json
from export.staging import artifact_size_bytes
from kdutils.digests import file_digest
from kdutils.echo import bounded

PROGRAM = "export.verify_release"
# release.json is a few kilobytes; a larger one is refused before it is parsed.
MAX_RECORD_BYTES = 1 << 20


class ReleaseUsageError(ValueError):
    """RELEASE_DIR is not a release folder at all (exit status 2)."""


class ReleaseError(RuntimeError):
    """The release does not hold what `release.json` says (exit status 1)."""


def _shown(value, limit=80):
    """`value` bounded to one short line (it comes from a file or the user)."""
    return bounded(value, limit=limit, quote=not isinstance(value, str))


def member_path(release_dir, name, field):
    """The path of `name`, a plain file or folder name inside `release_dir`.

    Raises:
        ReleaseError: `name` is not a plain name (a path, `..`, absolute), or
            is a symbolic link, or is missing.
    """
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or os.sep in name
        or (os.altsep and os.altsep in name)
        or "\0" in name
    ):
        raise ReleaseError(
            f"`{field}` in release.json must be a plain file name inside the release "
            f"folder. Received: {field}={_shown(name)}"
        )
    path = os.path.join(release_dir, name)
    if os.path.islink(path):
        raise ReleaseError(
            f"`{field}` must be a file of the release, not a symbolic link. "
            f"Received: {field}={_shown(name)}"
        )
    if not os.path.exists(path):
        raise ReleaseError(
            f"`{field}` must exist in the release folder. Received: "
            f"{field}={_shown(name)}, which is missing"
        )
    return path


def read_record(release_dir):
    """`release.json` of `release_dir`, parsed (a dict)."""
    record_path = os.path.join(release_dir, "release.json")
    if not os.path.isdir(release_dir) or not os.path.isfile(record_path):
        raise ReleaseUsageError(
            "`RELEASE_DIR` must be a folder holding release.json. "
            f"Received: {_shown(os.fspath(release_dir))}"
        )
    if os.path.islink(record_path) or os.path.getsize(record_path) > MAX_RECORD_BYTES:
        raise ReleaseError(
            "release.json must be a plain file of at most "
            f"{MAX_RECORD_BYTES} bytes. Received: a link or a larger file"
        )
    record = read_json(
        record_path,
        lambda reason: ReleaseError(
            f"release.json must be readable JSON. Received: {_shown(reason)}"
        ),
    )
    if not isinstance(record, dict):
        raise ReleaseError(
            f"release.json must hold a JSON object. Received: a {type(record).__name__}"
        )
    return record


def verify_release(release_dir):
    """Checks a release folder against its `release.json`; returns the record.

    Args:
        release_dir: The folder written by `export.report --release-dir`.

    Returns:
        The parsed `release.json`, with `artifact_path` added (the verified
        artifact's path).

    Raises:
        ReleaseUsageError: `release_dir` is not a folder holding release.json.
        ReleaseError: what differs, in one line.
    """
    release_dir = os.fspath(release_dir)
    record = read_record(release_dir)
    path = member_path(release_dir, record.get("artifact"), "artifact")
    name = record["artifact"]
    size, recorded_size = artifact_size_bytes(path), record.get("size_bytes")
    if isinstance(recorded_size, bool) or recorded_size != size:
        raise ReleaseError(
            f"{_shown(name)} must have the size release.json records. Received: "
            f"{size} bytes, recorded size_bytes={_shown(recorded_size)}"
        )
    digest, recorded_digest = file_digest(path), record.get("sha256")
    if digest != recorded_digest:
        raise ReleaseError(
            f"{_shown(name)} must have the SHA-256 release.json records. Received: "
            f"{digest[:16]}…, recorded sha256={_shown(recorded_digest, 20)}"
        )
    if record.get("sidecar") is not None:
        sidecar = member_path(release_dir, record["sidecar"], "sidecar")
        content = read_json(
            sidecar,
            lambda reason: ReleaseError(
                f"the sidecar must be readable JSON. Received: {_shown(reason)}"
            ),
        )
        if not isinstance(content, dict) or content.get("artifact") != name:
            raise ReleaseError(
                f"the sidecar must describe {_shown(name)}. Received: a sidecar of "
                f"{_shown(content.get('artifact') if isinstance(content, dict) else content)}"
            )
        if content.get("sha256") is not None and content["sha256"] != digest:
            raise ReleaseError(
                f"the sidecar's sha256 must be {_shown(name)}'s. Received: "
                f"{_shown(content['sha256'], 20)}"
            )
    return dict(record, artifact_path=path)


def main(argv=None):
    """Entry point; returns the exit status (0 verified, 1 not, 2 bad usage)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in ("-h", "--help"):
        sys.stdout.write(
            f"usage: python -m {PROGRAM} RELEASE_DIR\n\n" + __doc__.split("\n\n", 1)[1]
        )
        return 0
    if len(arguments) != 1 or arguments[0].startswith("-"):
        sys.stderr.write(
            f"{PROGRAM}: error: `RELEASE_DIR` must be exactly one folder. "
            f"Received: {_shown(' '.join(arguments)) or 'nothing'}\n"
        )
        return 2
    try:
        record = verify_release(arguments[0])
    except ReleaseUsageError as error:
        sys.stderr.write(f"{PROGRAM}: error: {error}\n")
        return 2
    except (ReleaseError, OSError) as error:
        sys.stderr.write(f"{PROGRAM}: error: {_shown(str(error), 500)}\n")
        return 1
    sys.stdout.write(
        f"{PROGRAM}: verified {_shown(record['artifact'])} ({record['size_bytes']} bytes, "
        f"sha256 {record['sha256']})\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
