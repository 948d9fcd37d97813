"""Atomic writes of cache files and folders, staged beside their target.

A cache is written under a hidden staging name in the target's own folder
(same file system), verified, then renamed onto the target, so the target
never holds a partial cache. Staged files follow the umask like any other
file, so a team can share a cache folder. A staging name records its host and
process (caches may live on storage several hosts share); one left by a
process of this host that died (e.g. `kill -9`) is removed by the next write
of the same target. The renames and removals are `kdutils.staging`'s.
"""

import os
import secrets
import socket

from kdutils.staging import process_alive
from kdutils.staging import remove_path as remove
from kdutils.staging import replace_path

STAGING_SUFFIX = ".partial"


def _prefix(path):
    return f".{os.path.basename(os.path.abspath(path))}."


def _owner():
    return f"{socket.gethostname()}-{os.getpid()}"


def remove_abandoned_staging(path):
    """Removes staging files or folders of `path` left by dead processes.

    Only those created on this host by a process that no longer runs are
    removed; a concurrent writer's staging name is left alone.

    Args:
        path: The target path.
    """
    folder = os.path.dirname(os.path.abspath(path))
    prefix = _prefix(path)
    host = socket.gethostname()
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(STAGING_SUFFIX)):
            continue
        owner = name[len(prefix) : -len(STAGING_SUFFIX)].rsplit(".", 1)[0]
        owner_host, _, pid = owner.rpartition("-")
        if owner_host != host or not pid.isdigit() or process_alive(int(pid)):
            continue
        remove(os.path.join(folder, name))


def _staging_name(path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = f"{_prefix(path)}{_owner()}.{secrets.token_hex(6)}{STAGING_SUFFIX}"
    return os.path.join(folder, name)


def create_staging_file(path):
    """Creates a new hidden file beside `path` (mode from the umask).

    Args:
        path: The target path.

    Returns:
        `(file_descriptor, staging_path)`, open for writing.
    """
    remove_abandoned_staging(path)
    staging = _staging_name(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return os.open(staging, flags, 0o666), staging


def create_staging_directory(path):
    """Creates a new hidden folder beside `path` (mode from the umask).

    Args:
        path: The target path.

    Returns:
        The staging folder's path.
    """
    remove_abandoned_staging(path)
    staging = _staging_name(path)
    os.mkdir(staging, 0o777)
    return staging


def replace_directory(staging, path):
    """Moves the folder `staging` onto `path`, replacing a previous one.

    A previous folder at `path` is first renamed aside, then removed, so
    `path` holds either the old or the new complete folder at any time
    except the instant between the two renames.

    Args:
        staging: A complete folder (from `create_staging_directory`).
        path: The target path.
    """
    replace_path(staging, path, aside=_staging_name(path))
