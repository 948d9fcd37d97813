"""The index of a sharded soft-target cache, and its verification.

A cache folder (`kdkeras.targets.shards.writer`) holds `index.json` and the shard
`.npy` files. The index records the format, the teacher's fingerprint, the
stream's input signature and the SHA-256 of every shard's INPUTS, the
storage options, and per shard its rows and the SHA-256 of each file. The
checks here detect a cache whose files are missing, truncated or edited,
that is incomplete, or that belongs to other data or another data order
(`StaleSoftTargetsError`), before anything is read from it.
"""

import json
import os
import re

from kdkeras.targets.memory.cache import StaleSoftTargetsError
from kdkeras.targets.shards.stream import StreamPass
from kdutils.digests import file_digest

FORMAT = "kdkeras-soft-target-shards"
FORMAT_VERSION = 1
INDEX_NAME = "index.json"
#: What one cache is: the parts of n workers agree on these, and a finished
#: cache is the one a worker waits for when they match.
CACHE_KEYS = (
    "teacher",
    "data",
    "examples",
    "examples_per_shard",
    "classes",
    "dtype",
    "top_k",
    "temperature",
)
_SHARD_FILE = re.compile(r"shard-\d{5,}\.(logits|values|indices|tail)\.npy")


def read_index(path):
    """The parsed `index.json` of the cache folder `path`.

    Raises:
        StaleSoftTargetsError: `path` is not a folder, or its index is
            missing, unreadable, not a shard index or of another version.
    """
    index_path = os.path.join(path, INDEX_NAME)
    if not os.path.isdir(path):
        raise StaleSoftTargetsError(
            f"`path` {path!r} is not a soft-target shard cache (not a folder)."
        )
    try:
        with open(index_path, encoding="utf-8") as file:
            index = json.load(file)
    except (OSError, ValueError) as error:
        raise StaleSoftTargetsError(
            f"Soft-target shard index {index_path!r} is missing or "
            f"unreadable ({type(error).__name__})."
        ) from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise StaleSoftTargetsError(f"{index_path!r} is not a soft-target shard index.")
    if index.get("format_version") != FORMAT_VERSION:
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {path!r} is stale: it was "
            "written by another kdkeras version."
        )
    return index


def write_index(folder, index):
    """Writes `index` as the `index.json` of `folder`."""
    with open(os.path.join(folder, INDEX_NAME), "w", encoding="utf-8") as file:
        file.write(json.dumps(index, indent=1, sort_keys=True) + "\n")


def check_files(path, index):
    """Every shard file present, intact (SHA-256) and of the recorded rows."""
    rows_per_shard = index["examples_per_shard"]
    for shard in index["shards"]:
        for _, entry in sorted(shard["files"].items()):
            file_path = os.path.join(path, entry["name"])
            if not os.path.isfile(file_path):
                raise StaleSoftTargetsError(
                    f"Soft-target shard cache `path` {path!r} is incomplete: "
                    f"{entry['name']} is missing."
                )
            if file_digest(file_path) != entry["sha256"]:
                raise StaleSoftTargetsError(
                    f"Soft-target shard {file_path!r} is truncated or "
                    "changed: its SHA-256 digest does not match the index."
                )
        if not 0 < shard["rows"] <= rows_per_shard:
            raise StaleSoftTargetsError(
                f"Soft-target shard cache `path` {path!r} records "
                f"{shard['rows']} rows in shard {shard['id']}."
            )


def check_complete(path, index):
    """Every shard listed once, in order, holding every example."""
    count = len(index["input_digests"])
    rows = [s["rows"] for s in index["shards"]]
    ids = [s["id"] for s in index["shards"]]
    if ids != list(range(count)) or sum(rows) != index["examples"]:
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {path!r} is incomplete: it "
            f"lists shards {ids} of {count} and {sum(rows)} of "
            f"{index['examples']} examples."
        )


def check_stream_matches(path, index, data):
    """Streams `data` once (no teacher) and compares its shard digests."""
    stream = StreamPass(data, index["examples_per_shard"])
    signature, digests, examples = stream.run()
    if signature != index["inputs"]:
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {path!r} is stale: `data` "
            f"yields inputs {signature}, the cache was computed on "
            f"{index['inputs']}."
        )
    if examples != index["examples"]:
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {path!r} is stale: `data` "
            f"yields {examples} examples, the cache holds {index['examples']}."
        )
    for shard_id, (actual, recorded) in enumerate(
        zip(digests, index["input_digests"], strict=False)
    ):
        if actual != recorded:
            raise StaleSoftTargetsError(
                f"Soft-target shard cache `path` {path!r} is stale: the "
                f"inputs of shard {shard_id} differ (other data, or another "
                "data order)."
            )


def is_cache_file(name):
    """Whether a file name is one a shard cache folder holds.

    Example:

    >>> is_cache_file("shard-00012.logits.npy"), is_cache_file("notes.txt")
    (True, False)
    """
    return name == INDEX_NAME or bool(_SHARD_FILE.fullmatch(name))


def check_target_folder(path):
    """Refuses a target that is a file, or a folder that is not a cache.

    Only a folder holding nothing but cache files (possibly a damaged cache)
    is ever replaced, so no user folder is deleted by mistake.
    """
    if os.path.lexists(path) and not os.path.isdir(path):
        raise FileExistsError(
            "`path` must be a folder for the sharded soft-target cache. "
            f"Received: path={path!r}, an existing file"
        )
    if os.path.isdir(path) and os.listdir(path):
        if not all(is_cache_file(name) for name in os.listdir(path)):
            raise FileExistsError(
                "`path` must be a new folder or a soft-target shard cache "
                "(it is replaced). Received: path="
                f"{path!r}, a folder with other files"
            )
