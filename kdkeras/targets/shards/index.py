"""The index of a sharded soft-target cache, and its verification.

A cache folder (`kdkeras.targets.shards.writer`) holds `index.json` and the shard
`.npy` files. The index records the format, the teacher's fingerprint, the
stream's input signature and the SHA-256 of every shard's INPUTS, the
storage options, per shard its rows and the SHA-256 of each file, and the
SHA-256 of its own content (`index_sha256`). The checks here detect, before
anything is read, a cache whose index was edited or does not follow the
schema, whose files are missing, truncated, edited or not plain files of the
folder, that is incomplete, or that belongs to other data or another data
order (`StaleSoftTargetsError`). File names are never taken from the index:
each must be the name the writer gives that shard's array.
"""

import hashlib
import json
import math
import os
import re

import numpy as np

from kdkeras.targets.memory.cache import DTYPES
from kdkeras.targets.memory.cache import StaleSoftTargetsError
from kdkeras.targets.shards.files import read_npy_header
from kdkeras.targets.shards.files import shard_file_name
from kdkeras.targets.shards.stream import StreamPass
from kdutils.digests import file_digest
from kdutils.echo import bounded

FORMAT = "kdkeras-soft-target-shards"
FORMAT_VERSION = 2
INDEX_NAME = "index.json"
#: The key of the SHA-256 of the index's own content (every other key).
INDEX_DIGEST_KEY = "index_sha256"
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
#: The arrays of one shard: full logits, or top-k targets; and always the
#: fingerprint of every example's inputs (`kdkeras.targets.shards.stream`).
LOGITS_KINDS = ("inputs", "logits")
TOP_K_KINDS = ("indices", "inputs", "tail", "values")
_KEYS = set(CACHE_KEYS) | {
    "format",
    "format_version",
    "inputs",
    "input_digests",
    "shard",
    "shards",
    INDEX_DIGEST_KEY,
}
_SHARD_FILE = re.compile(r"shard-\d{5,}\.(logits|values|indices|tail|inputs)\.npy")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SHOWN = 80


def shown(value, limit=_SHOWN):
    """User input in a message: quoted, on one line, at most ~`limit` characters.

    Example:

    >>> shown("x" * 200, limit=12)
    "'xxxxxx…xxxxxx' (200 characters)"
    """
    return bounded(value, limit=limit, quote=True)


def index_digest(index):
    """SHA-256 of an index's content: every key but `INDEX_DIGEST_KEY`.

    Example:

    >>> index_digest({"a": 1}) == index_digest({"a": 1, "index_sha256": "x"})
    True
    """
    content = {k: v for k, v in index.items() if k != INDEX_DIGEST_KEY}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _load_json(path):
    """The parsed `index.json` of `path`, or raises `StaleSoftTargetsError`."""
    index_path = os.path.join(path, INDEX_NAME)
    if not os.path.isdir(path):
        raise StaleSoftTargetsError(
            f"`path` {shown(path)} is not a soft-target shard cache (not a folder)."
        )
    if os.path.islink(index_path):
        raise StaleSoftTargetsError(
            f"Soft-target shard index {shown(index_path)} is a symbolic link, "
            "not a file the cache wrote."
        )
    try:
        with open(index_path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError) as error:
        raise StaleSoftTargetsError(
            f"Soft-target shard index {shown(index_path)} is missing or "
            f"unreadable ({type(error).__name__})."
        ) from None


def written_by_this_tool(path):
    """Whether the folder `path` holds an index this tool wrote (its format).

    A folder whose `index.json` is missing, unreadable or of another format
    was not written by the sharded cache (which writes atomically), so it is
    never replaced.
    """
    try:
        index = _load_json(path)
    except StaleSoftTargetsError:
        return False
    return isinstance(index, dict) and index.get("format") == FORMAT


def read_index(path):
    """The parsed, verified `index.json` of the cache folder `path`.

    Args:
        path: A cache folder.

    Returns:
        The index, a dict that follows the schema (`check_index`) and
        matches its own SHA-256 digest.

    Raises:
        StaleSoftTargetsError: `path` is not a folder, or its index is
            missing, unreadable, not a shard index, of another version,
            edited (its digest does not match) or does not follow the schema.
    """
    index = _load_json(path)
    index_path = os.path.join(path, INDEX_NAME)
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise StaleSoftTargetsError(
            f"{shown(index_path)} is not a soft-target shard index."
        )
    if index.get("format_version") != FORMAT_VERSION:
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {shown(path)} is stale: it was "
            "written by another kdkeras version."
        )
    if index.get(INDEX_DIGEST_KEY) != index_digest(index):
        raise StaleSoftTargetsError(
            f"Soft-target shard index {shown(index_path)} was edited: its "
            "content does not match its own SHA-256 digest."
        )
    check_index(path, index)
    return index


def write_index(folder, index):
    """Writes `index`, with its own digest, as the `index.json` of `folder`.

    Returns:
        The index written (with `INDEX_DIGEST_KEY`).
    """
    index = {k: v for k, v in index.items() if k != INDEX_DIGEST_KEY}
    index[INDEX_DIGEST_KEY] = index_digest(index)
    with open(os.path.join(folder, INDEX_NAME), "w", encoding="utf-8") as file:
        file.write(json.dumps(index, indent=1, sort_keys=True) + "\n")
    return index


def _is_int(value, low, high=None):
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= low
        and (high is None or value <= high)
    )


def _is_hex64(value):
    return isinstance(value, str) and bool(_HEX64.fullmatch(value))


def check_index(path, index):
    """Checks every key of an index: its type, its range, its file names.

    Args:
        path: The cache folder (for messages).
        index: The parsed index.

    Raises:
        StaleSoftTargetsError: a key is missing, unknown, of another type
            or out of range; a file name is not the one the writer gives;
            the shards do not add up to the examples.
    """

    def fail(key, expected, value):
        raise StaleSoftTargetsError(
            f"Soft-target shard index of `path` {shown(path)} is damaged: "
            f"`{key}` must be {expected}. Received: {key}={shown(value)}"
        )

    missing = sorted(_KEYS - set(index))
    if missing:
        fail("keys", f"all of {sorted(_KEYS)}", f"{missing} missing")
    unknown = sorted(set(index) - _KEYS)
    if unknown:
        fail("keys", f"only {sorted(_KEYS)}", unknown)
    for key in ("teacher", "data"):
        if not _is_hex64(index[key]):
            fail(key, "a SHA-256 hex digest", index[key])
    for key in ("examples", "examples_per_shard"):
        if not _is_int(index[key], 1):
            fail(key, "a positive int", index[key])
    if not _is_int(index["classes"], 2):
        fail("classes", "an int >= 2", index["classes"])
    if index["dtype"] not in DTYPES:
        fail("dtype", f"one of {DTYPES}", index["dtype"])
    top_k, temperature = index["top_k"], index["temperature"]
    if top_k is None:
        if temperature is not None:
            fail("temperature", "null without top_k", temperature)
    else:
        if not _is_int(top_k, 1, index["classes"] - 1):
            fail("top_k", f"null or an int in [1, {index['classes'] - 1}]", top_k)
        if (
            not isinstance(temperature, (int, float))
            or isinstance(temperature, bool)
            or not math.isfinite(temperature)
            or temperature <= 0
        ):
            fail("temperature", "a positive finite number with top_k", temperature)
    shard = index["shard"]
    if shard is not None and not (
        isinstance(shard, list)
        and len(shard) == 2
        and _is_int(shard[1], 1)
        and _is_int(shard[0], 0, shard[1] - 1)
    ):
        fail("shard", "null or [i, n] with 0 <= i < n", shard)
    signature = index["inputs"]
    if not (
        isinstance(signature, list)
        and signature
        and all(
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and isinstance(entry[1], list)
            and all(_is_int(d, 0) for d in entry[1])
            for entry in signature
        )
    ):
        fail("inputs", "a list of [dtype, shape] pairs", signature)
    count = -(-index["examples"] // index["examples_per_shard"])
    digests = index["input_digests"]
    if not (
        isinstance(digests, list)
        and len(digests) == count
        and all(_is_hex64(d) for d in digests)
    ):
        fail("input_digests", f"{count} SHA-256 hex digests", digests)
    last_rows = index["examples"] - (count - 1) * index["examples_per_shard"]
    kinds = LOGITS_KINDS if top_k is None else TOP_K_KINDS
    shards = index["shards"]
    if not isinstance(shards, list) or len(shards) > count:
        fail("shards", f"a list of at most {count} shards", shards)
    for position, entry in enumerate(shards):
        where = f"shards[{position}]"
        if not isinstance(entry, dict) or set(entry) != {"id", "rows", "files"}:
            fail(where, "an object of id, rows and files", entry)
        shard_id = entry["id"]
        if not _is_int(shard_id, 0, count - 1):
            fail(f"{where}.id", f"an int in [0, {count - 1}]", shard_id)
        rows = last_rows if shard_id == count - 1 else index["examples_per_shard"]
        if entry["rows"] != rows or not _is_int(entry["rows"], 1):
            fail(
                f"{where}.rows",
                f"{rows} (the examples of shard {shard_id})",
                entry["rows"],
            )
        files = entry["files"]
        if not isinstance(files, dict) or sorted(files) != list(kinds):
            fail(f"{where}.files", f"an object of {list(kinds)}", files)
        for kind in kinds:
            file_entry = files[kind]
            name = shard_file_name(shard_id, kind)
            if (
                not isinstance(file_entry, dict)
                or set(file_entry) != {"name", "sha256"}
                or file_entry["name"] != name
                or not _is_hex64(file_entry["sha256"])
            ):
                fail(
                    f"{where}.files.{kind}",
                    f'{{"name": "{name}", "sha256": a SHA-256 hex digest}}',
                    file_entry,
                )
    ids = [entry["id"] for entry in shards]
    if ids != sorted(set(ids)):
        fail("shards", "listed once each, in order of id", ids)


def _expected_arrays(index, rows):
    """`{kind: (shape, dtype)}` of one shard's `.npy` files."""
    values = (index["top_k"] or index["classes"],)
    stored = {
        "inputs": ((rows,), np.dtype("uint64")),
        "indices": ((rows,) + values, np.dtype("int32")),
        "tail": ((rows,), np.dtype("float32")),
    }
    stored["logits"] = stored["values"] = ((rows,) + values, np.dtype(index["dtype"]))
    return stored


def check_files(path, index):
    """Every shard file a plain file of `path`, intact and of its shape.

    Raises:
        StaleSoftTargetsError: a file is missing, a symbolic link or not a
            regular file, its SHA-256 does not match the index, or its
            `.npy` header is not the recorded shape and dtype.
    """
    for shard in index["shards"]:
        expected = _expected_arrays(index, shard["rows"])
        for kind, entry in sorted(shard["files"].items()):
            # The schema (`check_index`) allows only the writer's own names.
            name = shard_file_name(shard["id"], kind)
            if entry["name"] != name:
                raise StaleSoftTargetsError(
                    f"Soft-target shard cache `path` {shown(path)} names "
                    f"{shown(entry['name'])}, not {name!r}."
                )
            file_path = os.path.join(path, name)
            if os.path.islink(file_path) or (
                os.path.lexists(file_path) and not os.path.isfile(file_path)
            ):
                raise StaleSoftTargetsError(
                    f"Soft-target shard {shown(file_path)} is not a plain file "
                    "of the cache folder (a symbolic link or a folder)."
                )
            if not os.path.isfile(file_path):
                raise StaleSoftTargetsError(
                    f"Soft-target shard cache `path` {shown(path)} is incomplete: "
                    f"{name} is missing."
                )
            if file_digest(file_path) != entry["sha256"]:
                raise StaleSoftTargetsError(
                    f"Soft-target shard {shown(file_path)} is truncated or "
                    "changed: its SHA-256 digest does not match the index."
                )
            shape, dtype, _ = read_npy_header(file_path)
            if (shape, dtype) != expected[kind]:
                raise StaleSoftTargetsError(
                    f"Soft-target shard {shown(file_path)} holds {dtype} "
                    f"{shape}, the index records {expected[kind][1]} "
                    f"{expected[kind][0]}."
                )


def check_classes(path, index, classes):
    """The index's classes are the teacher's (`classes`; `None`: unknown)."""
    if classes is not None and index["classes"] != classes:
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {shown(path)} is stale: it "
            f"records {index['classes']} classes, the teacher outputs {classes}."
        )


def check_complete(path, index):
    """Every shard listed once, in order, holding every example."""
    count = len(index["input_digests"])
    rows = [s["rows"] for s in index["shards"]]
    ids = [s["id"] for s in index["shards"]]
    if ids != list(range(count)) or sum(rows) != index["examples"]:
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {shown(path)} is incomplete: it "
            f"lists shards {ids} of {count} and {sum(rows)} of "
            f"{index['examples']} examples."
        )


def check_stream_matches(path, index, data):
    """Streams `data` once (no teacher) and compares its shard digests."""
    stream = StreamPass(data, index["examples_per_shard"])
    signature, digests, examples = stream.run()
    if signature != index["inputs"]:
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {shown(path)} is stale: `data` "
            f"yields inputs {signature}, the cache was computed on "
            f"{index['inputs']}."
        )
    if examples != index["examples"]:
        raise StaleSoftTargetsError(
            f"Soft-target shard cache `path` {shown(path)} is stale: `data` "
            f"yields {examples} examples, the cache holds {index['examples']}."
        )
    for shard_id, (actual, recorded) in enumerate(
        zip(digests, index["input_digests"], strict=False)
    ):
        if actual != recorded:
            raise StaleSoftTargetsError(
                f"Soft-target shard cache `path` {shown(path)} is stale: the "
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
    """Refuses a target that is a file, or a folder this tool did not write.

    Only a folder holding nothing but cache files and an `index.json` of
    this format (a cache, possibly damaged or stale) is ever replaced, so no
    user folder is deleted by mistake: a folder with other files, or with an
    `index.json` the tool did not write, is refused and left untouched.
    """
    if os.path.lexists(path) and not os.path.isdir(path):
        raise FileExistsError(
            "`path` must be a folder for the sharded soft-target cache. "
            f"Received: path={shown(path)}, an existing file"
        )
    if os.path.isdir(path) and os.listdir(path):
        names = os.listdir(path)
        if not all(is_cache_file(name) for name in names) or not (
            written_by_this_tool(path)
        ):
            raise FileExistsError(
                "`path` must be a new folder or a soft-target shard cache "
                "(it is replaced). Received: path="
                f"{shown(path)}, a folder of files this tool did not write "
                "(left untouched)"
            )
