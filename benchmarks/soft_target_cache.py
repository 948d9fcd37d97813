"""The streamed, sharded soft-target cache: memory and top-k.

Two parts, each printed as a Markdown table with the command that made it:

  memory      peak RSS of building the cache for, and training one epoch from,
              synthetic 28x28 uint8 image streams of 1x, 10x, 50x
              Fashion-MNIST's 60,000 images (a small teacher and student),
              each scale in a fresh process; goal: the same peak within 10%.
  topk        a 1,000-class synthetic teacher: bytes per example stored, and
              the top-k losses' relative error against the full-logit loss
              for K in {5, 20, 100}.

Training speed from the streamed cache against the in-memory one is the
`kdkeras_cached_streamed` variant of `benchmarks.train_throughput`.

Usage (from the repository root):
  .venv/bin/python -m benchmarks.soft_target_cache                  # both parts
  .venv/bin/python -m benchmarks.soft_target_cache --part=memory --scales=1,10,50
  .venv/bin/python -m benchmarks.soft_target_cache --part=topk
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import json  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("part", "all", ["all", "memory", "topk"], "What to measure.")
flags.DEFINE_list("scales", ["1", "10", "50"], "Memory: multiples of 60,000.")
flags.DEFINE_integer("child-scale", 0, "Internal: measure one scale.")

FASHION_MNIST = 60000
SIDE = 28
CLASSES = 10


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command():
    return ".venv/bin/python -m benchmarks.soft_target_cache " + " ".join(
        shlex.quote(a) for a in sys.argv[1:]
    )


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_images(count, batch_size=1024):
    """A deterministic stream of `count` random 28x28 uint8 images + labels,
    generated batch by batch (never held in memory)."""
    import tensorflow as tf

    def make(indices):
        seed = tf.stack([indices[0], tf.constant(7, tf.int64)])
        images = tf.random.stateless_uniform(
            (tf.shape(indices)[0], SIDE, SIDE), seed, maxval=256, dtype=tf.int32
        )
        return tf.cast(images, tf.uint8), tf.cast(indices % CLASSES, tf.int32)

    return tf.data.Dataset.range(count).batch(batch_size).map(make)


def small_model(seed, hidden):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((SIDE, SIDE), dtype="uint8"),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(CLASSES),
        ]
    )


def measure_scale(scale):
    """One process: cache then one training epoch; prints one JSON line."""
    import keras

    import kdkeras

    count = scale * FASHION_MNIST
    teacher, student = small_model(1, 64), small_model(2, 32)
    data = synthetic_images(count)
    baseline = peak_rss_mb()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "targets")
        start = time.perf_counter()
        cache = kdkeras.cache_soft_targets(teacher, data, path)
        cache_seconds = time.perf_counter() - start
        after_cache = peak_rss_mb()
        stored = sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
        dataset = kdkeras.soft_target_dataset(cache, batch_size=512, seed=0)
        distiller = kdkeras.Distiller(student=student, teacher=teacher)
        distiller.compile(
            optimizer=keras.optimizers.Adam(1e-3), alpha=0.1, temperature=4.0
        )
        start = time.perf_counter()
        distiller.fit(dataset, epochs=1, verbose=0)
        train_seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "scale": scale,
                "examples": count,
                "shards": len(cache.shards.index["shards"]),
                "cache_mb": stored / 2**20,
                "rss_before_mb": baseline,
                "peak_after_cache_mb": after_cache,
                "peak_mb": peak_rss_mb(),
                "cache_s": cache_seconds,
                "train_s": train_seconds,
            }
        ),
        flush=True,
    )


def memory():
    rows = []
    for scale in FLAGS.scales:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.soft_target_cache",
                f"--child-scale={int(scale)}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        if result.returncode != 0 or not lines:
            sys.stderr.write(result.stderr[-3000:])
            raise SystemExit(f"scale {scale} failed ({result.returncode})")
        rows.append(json.loads(lines[-1]))
    print(f"\n`{command()}`\n")
    print(
        "| scale | examples | shards | cache MB | RSS before MB | "
        "peak after cache MB | peak after epoch MB | cache s | epoch s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['scale']}x | {r['examples']:,} | {r['shards']} | "
            f"{r['cache_mb']:.1f} | {r['rss_before_mb']:.0f} | "
            f"{r['peak_after_cache_mb']:.0f} | {r['peak_mb']:.0f} | "
            f"{r['cache_s']:.1f} | {r['train_s']:.1f} |"
        )
    peaks = [r["peak_mb"] for r in rows]
    spread = max(peaks) / min(peaks) - 1
    verdict = "within" if spread <= 0.10 else "NOT within"
    print(f"\nPeak RSS spread across scales: {spread:.1%} ({verdict} 10%).")


def topk_part():
    import keras
    import numpy as np
    import tensorflow as tf

    import kdkeras
    from kdkeras.losses import kd_loss_per_example
    from kdkeras.losses import top_k_kd_loss
    from kdkeras.targets import topk

    classes, count = 1000, 4096
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(classes),
        ]
    )
    x = np.random.default_rng(0).standard_normal((count, 64)).astype("float32")
    # Loss error: synthetic logits shaped like a trained many-class teacher's
    # (one class far ahead, the rest spread): N(0, 2^2) + 9 on one class.
    rng = np.random.default_rng(1)
    teacher_logits = 2.0 * rng.standard_normal((count, classes))
    teacher_logits[np.arange(count), rng.integers(0, classes, count)] += 9.0
    teacher_logits = teacher_logits.astype("float32")
    students = {
        "near (teacher + N(0,1))": teacher_logits
        + rng.standard_normal(teacher_logits.shape).astype("float32"),
        "random N(0,1)": rng.standard_normal(teacher_logits.shape).astype("float32"),
    }
    stream = tf.data.Dataset.from_tensor_slices(x).batch(512)
    folder = tempfile.mkdtemp()

    def stored_bytes(**kwargs):
        path = os.path.join(folder, str(len(os.listdir(folder))))
        shards = kdkeras.cache_soft_targets(teacher, stream, path, **kwargs).shards
        total = sum(
            os.path.getsize(os.path.join(path, entry["name"]))
            for shard in shards.index["shards"]
            for entry in shard["files"].values()
        )
        return total / count

    print(f"\n`{command()}`\n")
    print(f"Bytes per example, {classes} classes, {count} examples:\n")
    print("| storage | bytes/example |")
    print("|---|---|")
    print(f"| full float32 | {stored_bytes(dtype='float32'):.1f} |")
    print(f"| full float16 | {stored_bytes(dtype='float16'):.1f} |")
    for k in (5, 20, 100):
        size = stored_bytes(top_k=k, temperature=4.0)
        print(f"| top-{k} (float16 values, int32 classes, float32 tail) | {size:.1f} |")
    print(
        "\nRelative error of the mean loss against the full-logit "
        "kd_loss (synthetic 1,000-class logits, values rounded to float16):\n"
    )
    print(
        "| student | T | K | teacher mass outside top-K | full loss | "
        "top-k buckets error | dense uniform-tail error |"
    )
    print("|---|---|---|---|---|---|---|")
    for student_name, student in students.items():
        for temperature in (1.0, 4.0):
            full = float(
                np.mean(kd_loss_per_example(teacher_logits, student, temperature))
            )
            for k in (5, 20, 100):
                values, indices, tail = topk.top_k_targets(
                    teacher_logits, k, temperature
                )
                values = values.astype("float16")
                buckets = float(
                    top_k_kd_loss(values, indices, tail, student, temperature)
                )
                dense = topk.dense_logits_from_top_k(
                    values, indices, tail, classes, temperature
                )
                uniform = float(
                    np.mean(kd_loss_per_example(dense, student, temperature))
                )
                z = teacher_logits.astype("float64") / temperature
                p = np.exp(z - z.max(axis=1, keepdims=True))
                p /= p.sum(axis=1, keepdims=True)
                rest = 1 - np.sort(p, axis=1)[:, -k:].sum(axis=1).mean()
                print(
                    f"| {student_name} | {temperature:g} | {k} | {rest:.3f} | "
                    f"{full:.4f} | "
                    f"{(buckets - full) / full:+.2%} | "
                    f"{(uniform - full) / full:+.2%} |"
                )


def main(argv):
    del argv
    child = FLAGS["child-scale"].value
    if child:
        measure_scale(child)
        return
    if FLAGS.part in ("all", "topk"):
        topk_part()
    if FLAGS.part in ("all", "memory"):
        memory()


if __name__ == "__main__":
    app.run(main)
