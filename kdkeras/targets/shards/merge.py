"""Workers' parts of a sharded soft-target cache: who writes which, and the
merge.

With `shard=(i, n)`, worker `i` of `n` writes the shards `j % n == i` of the
cache into its own folder (`kdkeras.targets.shards.writer`);
`merge_soft_target_shards` joins the `n` folders into the cache one process
would have written, byte for byte. With `shard="auto"`, `worker_of` reads
`i` and `n` from `TF_CONFIG` and the workers `wait_until` the parts, or the
merged cache, are ready on the storage they share.
"""

import os
import shutil
import time

from kdkeras.distribute.strategy import num_workers
from kdkeras.targets import files
from kdkeras.targets.memory.cache import StaleSoftTargetsError
from kdkeras.targets.shards.files import shard_file_name
from kdkeras.targets.shards.index import CACHE_KEYS
from kdkeras.targets.shards.index import check_complete
from kdkeras.targets.shards.index import check_files
from kdkeras.targets.shards.index import check_target_folder
from kdkeras.targets.shards.index import read_index
from kdkeras.targets.shards.index import shown
from kdkeras.targets.shards.index import write_index
from kdkeras.targets.shards.reader import SoftTargetShards

#: With `shard="auto"`: how long a worker waits for the others' parts (the
#: chief) or for the merged cache (the other workers), in seconds.
WORKER_WAIT_SECONDS = 24 * 3600.0


def worker_of(tf_config):
    """`(i, n)` of this process among the `TF_CONFIG` workers, chief first."""
    cluster = tf_config["cluster"]
    task_type, task_index = tf_config["task_type"], tf_config["task_index"]
    if task_type not in ("chief", "worker"):
        raise ValueError(
            "`shard='auto'` must run on a chief or worker task of TF_CONFIG. "
            f"Received: task type {shown(task_type)}"
        )
    offset = len(cluster.get("chief", ())) if task_type == "worker" else 0
    return offset + task_index, num_workers(tf_config)


def is_ready(path, reference, shard):
    """Whether `path` holds the complete cache (`shard=None`) or the worker's
    part (`shard=[i, n]`) that the index `reference` belongs to."""
    try:
        index = read_index(path)
    except StaleSoftTargetsError:
        return False
    return index.get("shard") == shard and all(
        index.get(key) == reference[key] for key in CACHE_KEYS
    )


def wait_until(ready, what):
    deadline = time.monotonic() + WORKER_WAIT_SECONDS
    delay = 0.05
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Waited {WORKER_WAIT_SECONDS:g} s for {what}; did a worker "
                "fail, or is `path` not on storage every worker shares?"
            )
        time.sleep(delay)
        delay = min(2 * delay, 1.0)


def merge_soft_target_shards(paths, path):
    """Joins the folders of `n` workers (`shard=(i, n)`) into one cache.

    The result is byte for byte the cache one process would have written.
    Every part's files are checked against their digests, and the parts must
    agree on the teacher, the options and the stream (every shard's input
    digest), and cover every shard exactly once.

    Args:
        paths: The workers' folders, any order.
        path: The merged cache folder (created or replaced).

    Returns:
        A `SoftTargetShards`.

    Raises:
        StaleSoftTargetsError: a part is missing, damaged, or disagrees.

    Example:

    >>> import keras, numpy as np, tensorflow as tf, tempfile, os
    >>> from kdkeras.targets.shards.writer import cache_soft_target_shards
    >>> folder = tempfile.mkdtemp()
    >>> teacher = keras.Sequential([keras.Input((2,)), keras.layers.Dense(5)])
    >>> x = np.linspace(-1, 1, 24, dtype="float32").reshape(12, 2)
    >>> parts = [os.path.join(folder, f"worker{i}") for i in range(2)]
    >>> for i, part in enumerate(parts):  # each worker: shards j % 2 == i
    ...     data = tf.data.Dataset.from_tensor_slices(x).batch(5)
    ...     _ = cache_soft_target_shards(
    ...         teacher, data, part, examples_per_shard=3, shard=(i, 2)
    ...     )
    >>> merged = merge_soft_target_shards(parts, os.path.join(folder, "all"))
    >>> len(merged), [shard["id"] for shard in merged.index["shards"]]
    (12, [0, 1, 2, 3])
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("`paths` must list the workers' folders. Received: paths=[]")
    path = os.fspath(path)
    check_target_folder(path)
    indexes = []
    for part in paths:
        index = read_index(part)
        if index["shard"] is None:
            raise StaleSoftTargetsError(
                f"`paths` entry {shown(part)} is a complete cache, not a worker's part."
            )
        check_files(part, index)
        indexes.append(index)
    first = indexes[0]
    shared = CACHE_KEYS + ("inputs", "input_digests")
    for part, index in zip(paths, indexes, strict=True):
        for key in shared:
            if index[key] != first[key]:
                raise StaleSoftTargetsError(
                    f"Worker part {shown(part)} disagrees with {shown(paths[0])} on "
                    f"`{key}`: they were not computed on the same teacher, "
                    "options and stream."
                )
    count = first["shard"][1]
    workers = sorted(index["shard"][0] for index in indexes)
    if workers != list(range(count)) or any(
        index["shard"][1] != count for index in indexes
    ):
        raise StaleSoftTargetsError(
            f"`paths` must hold the parts of workers 0..{count - 1} once "
            f"each. Received: workers {workers}"
        )
    staging = files.create_staging_directory(path)
    try:
        entries = []
        for part, index in zip(paths, indexes, strict=True):
            for entry in index["shards"]:
                for kind in entry["files"]:
                    # The writer's own names: never a path from the index.
                    name = shard_file_name(entry["id"], kind)
                    shutil.copyfile(
                        os.path.join(part, name), os.path.join(staging, name)
                    )
                entries.append(entry)
        merged = dict(first)
        merged["shard"] = None
        merged["shards"] = sorted(entries, key=lambda e: e["id"])
        merged = write_index(staging, merged)
        check_complete(staging, merged)
        check_files(staging, merged)
        files.replace_directory(staging, path)
    except BaseException:
        files.remove(staging)
        raise
    return SoftTargetShards(path, merged)
