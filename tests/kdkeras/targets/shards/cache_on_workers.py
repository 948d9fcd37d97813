"""One worker of `test_shards_on_workers.py`: caches a stream with
`shard="auto"` (worker index and count from TF_CONFIG) and prints the files
of the cache it returns as JSON.

Usage: python cache_on_workers.py FOLDER  (FOLDER holds teacher.keras, x.npy)
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kdkeras.targets.shards.writer import cache_soft_target_shards  # noqa: E402


def main(folder):
    teacher = keras.saving.load_model(
        os.path.join(folder, "teacher.keras"), safe_mode=True
    )
    x = np.load(os.path.join(folder, "x.npy"))
    data = tf.data.Dataset.from_tensor_slices(x).batch(7)
    shards = cache_soft_target_shards(
        teacher,
        data,
        os.path.join(folder, "targets"),
        shard="auto",
        top_k=3,
        temperature=2.0,
        examples_per_shard=10,
    )
    print(
        json.dumps(
            {
                "path": os.path.basename(shards.path),
                "shards": [shard["id"] for shard in shards.index["shards"]],
                "examples": len(shards),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1])
