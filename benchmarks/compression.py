"""Compressing the distilled student: pruned, clustered, QAT int8, PTQ int8.

Fashion-MNIST. A CNN teacher (`models.build_cnn_teacher()`) is trained once;
its logits over the training set are cached (`--cache-dir`) and the 800-800
MLP student (`models.build_mlp_student()`) is distilled from them with
`kdkeras.Distiller` (cached soft targets). From that dense distilled student,
every compressed variant keeps distilling from the same soft targets
(`kdkeras.compress`):

  pruned      magnitude pruning to --target-sparsity (polynomial decay), fp32
  clustered   --clusters weight clusters per kernel (k-means++), fp32
  qat_int8    quantization-aware training, int8 TFLite (weights+activations)
  ptq_int8    full-integer post-training quantization (--calibration images)

Each artifact is measured by `export.measure.measure_artifact` in its own
subprocess (test-set accuracy, file size, gzip size, batch-1 latency); the
dense student is also measured with ONNX Runtime and the NumPy forward pass,
so "best fp32" is the fastest fp32 runtime, not just fp32 TFLite.

Goals: int8 <= 0.27x the fp32 file, <= 0.5 pp accuracy drop against
the dense distilled student, batch-1 p50 <= 0.5x the best fp32 runtime;
pruned <= 1 pp drop and gzip size <= 0.35x the dense one.

Usage:
  .venv/bin/python -m benchmarks.compression --quick     # smoke test
  .venv/bin/python -m benchmarks.compression             # full run
"""

import os
import sys
import tempfile
import time

from absl import flags

# Run from a checkout without installing: the repository root on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import _compression as shared  # noqa: E402  (before TensorFlow)
from experiments import cli as experiments_cli  # noqa: E402
from export import cli  # noqa: E402

FLAGS = flags.FLAGS
experiments_cli.define_distillation_flags()
shared.define_flags(
    {
        "teacher-epochs": 8,
        "student-epochs": 15,
        "prune-epochs": 6,
        "cluster-epochs": 2,
        "qat-epochs": 2,
        "target-sparsity": 0.8,
        "clusters": 16,
        "calibration": 500,
    }
)
flags.DEFINE_float(
    "pruning-end", 0.6, "Fraction of the pruning epochs by which the target is reached."
)
flags.DEFINE_float("prune-learning-rate", 1e-4, "Adam learning rate, pruning.")
flags.DEFINE_float("cluster-learning-rate", 1e-4, "Adam learning rate, clustering.")
flags.DEFINE_float("qat-learning-rate", 1e-4, "Adam learning rate, QAT.")
flags.DEFINE_integer("repeats", 3, "Timing rounds per artifact (median p50).")
flags.DEFINE_integer(
    "threads", None, "Runtime threads for every artifact (default: every core)."
)
flags.DEFINE_string(
    "cache-dir",
    os.path.join(tempfile.gettempdir(), "kdkeras-compression-cache"),
    "Trained teacher, its logits and the dense student are cached here.",
)

QUICK = {
    "train": 6000,
    "test": 2000,
    "teacher-epochs": 1,
    "student-epochs": 2,
    "prune-epochs": 1,
    "cluster-epochs": 1,
    "qat-epochs": 1,
    "min-time-s": 0.3,
    "repeats": 1,
}


def _setting(name):
    return shared.setting(name, QUICK)


def _command():
    names = (
        "teacher-epochs student-epochs prune-epochs pruning-end cluster-epochs "
        "qat-epochs "
        "prune-learning-rate cluster-learning-rate qat-learning-rate "
        "target-sparsity clusters calibration temperature alpha batch-size "
        "seed min-time-s repeats"
    ).split()
    threads = [] if FLAGS.threads is None else [f"--threads={FLAGS.threads}"]
    return shared.command("benchmarks.compression", names, threads)


_log = shared.log


def _teacher_and_logits(x_train, y_train, cache_dir):
    import keras
    import numpy as np

    import models

    epochs = _setting("teacher-epochs")
    stem = os.path.join(
        cache_dir, f"cnn_teacher_e{epochs}_n{len(x_train)}_s{FLAGS.seed}"
    )
    if os.path.exists(stem + ".npz"):
        _log(f"teacher logits from cache {stem}.npz")
        return np.load(stem + ".npz")["teacher_logits"], stem
    _log(f"training the CNN teacher for {epochs} epochs")
    keras.utils.set_random_seed(FLAGS.seed)
    teacher = shared.fit_teacher(
        models.build_cnn_teacher(seed=FLAGS.seed), x_train, y_train, epochs
    )
    teacher_logits = teacher.predict(x_train, batch_size=1024, verbose=0)
    teacher.save(stem + ".keras")
    np.savez(stem + ".partial.npz", teacher_logits=teacher_logits)
    os.replace(stem + ".partial.npz", stem + ".npz")
    return teacher_logits, stem


def _dense_student(x_train, y_train, teacher_logits, teacher_stem):
    import keras

    import models

    epochs = _setting("student-epochs")
    path = (
        f"{teacher_stem}_mlp800_e{epochs}_T{FLAGS.temperature:g}_a{FLAGS.alpha:g}.keras"
    )
    if os.path.exists(path):
        _log(f"dense distilled student from cache {path}")
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    _log(f"distilling the 800-800 student for {epochs} epochs")
    keras.utils.set_random_seed(FLAGS.seed)
    teacher = keras.saving.load_model(
        teacher_stem + ".keras", safe_mode=True, compile=False
    )
    student = shared.distil(
        models.build_mlp_student(),
        teacher,
        x_train,
        y_train,
        teacher_logits,
        epochs,
        keras.optimizers.Adam(1e-3),
    )
    student.save(path)
    return student


def _mb(size):
    return f"{size / 1e6:.3f}"


def _ratio(value, reference):
    return f"{value / reference:.3f}x" if reference else "n/a"


def run():
    import keras
    import tensorflow as tf

    from export.to_onnx import export_onnx
    from export.to_tflite import export_tflite
    from kdkeras import compress
    from models.data import load_fashion_mnist

    limit_train = QUICK["train"] if FLAGS.quick else None
    limit_test = QUICK["test"] if FLAGS.quick else None
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(limit_train, limit_test)
    os.makedirs(FLAGS["cache-dir"].value, exist_ok=True)
    output_dir = FLAGS["output-dir"].value or tempfile.mkdtemp(
        prefix="kdkeras-compression-"
    )
    os.makedirs(output_dir, exist_ok=True)
    load_before = os.getloadavg()

    teacher_logits, teacher_stem = _teacher_and_logits(
        x_train, y_train, FLAGS["cache-dir"].value
    )
    student = _dense_student(x_train, y_train, teacher_logits, teacher_stem)
    artifacts = {}  # name -> (path, format, what, notes)

    def path_of(name, extension):
        return os.path.join(output_dir, f"{name}{extension}")

    def add_tflite(name, label, model, notes, **options):
        """Exports `model` (verified) and lists it for measurement."""
        path = path_of(name, ".tflite")
        export_tflite(model, path, overwrite=True, **options)
        artifacts[label] = (path, "tflite", notes)

    dense_keras = path_of("dense", ".keras")
    student.save(dense_keras)
    add_tflite("dense", "dense fp32 (TFLite)", student, "")
    export_onnx(student, path_of("dense", ".onnx"), overwrite=True)
    artifacts["dense fp32 (ONNX Runtime)"] = (path_of("dense", ".onnx"), "onnx", "")
    artifacts["dense fp32 (NumPy)"] = (dense_keras, "numpy", "")

    def fine_tune(
        name, label, message, compress_fn, describe, quantize="none", **options
    ):
        """Runs one `kdkeras.compress` step from the seed and exports it."""
        _log(message)
        model, notes = shared.fine_tune(
            compress_fn, student, x_train, y_train, teacher_logits, describe, **options
        )
        add_tflite(name, label, model, "; ".join(notes), quantize=quantize)
        return model

    def sparsity_range(model):
        sparsity = compress.kernel_sparsity(model)
        return [
            f"kernel sparsity {min(sparsity.values()):.3f}-{max(sparsity.values()):.3f}"
        ]

    def most_values(model):
        return [
            f"<= {max(compress.unique_kernel_values(model).values())} values per kernel"
        ]

    target_sparsity = FLAGS["target-sparsity"].value
    fine_tune(
        "pruned",
        f"{target_sparsity:.0%} pruned fp32 (TFLite)",
        f"pruning to {target_sparsity:g} ({_setting('prune-epochs')} epochs)",
        compress.prune,
        sparsity_range,
        target_sparsity=target_sparsity,
        pruning_end=FLAGS["pruning-end"].value,
        epochs=_setting("prune-epochs"),
        learning_rate=FLAGS["prune-learning-rate"].value,
    )
    fine_tune(
        "clustered",
        f"{FLAGS.clusters}-cluster fp32 (TFLite)",
        f"clustering to {FLAGS.clusters} values ({_setting('cluster-epochs')} epochs)",
        compress.cluster,
        most_values,
        number_of_clusters=FLAGS.clusters,
        epochs=_setting("cluster-epochs"),
        learning_rate=FLAGS["cluster-learning-rate"].value,
    )
    fine_tune(
        "qat_int8",
        "QAT int8 (TFLite)",
        f"quantization-aware training ({_setting('qat-epochs')} epochs)",
        compress.quantization_aware,
        lambda model: [],
        quantize="qat",
        epochs=_setting("qat-epochs"),
        learning_rate=FLAGS["qat-learning-rate"].value,
    )

    start = time.perf_counter()
    _log("post-training int8")
    path = path_of("ptq_int8", ".tflite")
    export_tflite(
        student,
        path,
        quantize="int8",
        representative_data=x_train[: FLAGS.calibration],
        overwrite=True,
    )
    artifacts["post-training int8 (TFLite)"] = (
        path,
        "tflite",
        f"{FLAGS.calibration} calibration images; {time.perf_counter() - start:.0f} s",
    )

    results = shared.measure(
        artifacts,
        x_test,
        y_test,
        repeats=_setting("repeats"),
        threads=(FLAGS.threads,),
        min_time_s=_setting("min-time-s"),
    )
    load_after = os.getloadavg()

    dense = results["dense fp32 (TFLite)"]
    dense_accuracy = dense["accuracy"]
    fp32 = [r for n, r in results.items() if n.startswith("dense fp32")]
    best_fp32 = min(fp32, key=lambda r: r["latency"]["1"]["p50_ms"])
    best_fp32_p50 = best_fp32["latency"]["1"]["p50_ms"]

    print()
    print(
        f"## Compression of the distilled 800-800 student: Fashion-MNIST, "
        f"{len(x_train)} train / {len(x_test)} test"
        + (" (--quick: smoke test, numbers not meaningful)" if FLAGS.quick else "")
    )
    print()
    print(
        f"Teacher: CNN ({_setting('teacher-epochs')} epochs); dense student "
        f"distilled {_setting('student-epochs')} epochs, T={FLAGS.temperature:g}, "
        f"alpha={FLAGS.alpha:g}; compression fine-tunes distil from the same "
        f"cached soft targets. TF {tf.__version__}, Keras {keras.__version__}, "
        f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after. Latency: export.measure.measure_artifact, "
        f"batch 1, {dense['threads']} thread(s), median over "
        f"{_setting('repeats')} round-robin round(s) of the p50 over >= "
        f"{dense['latency']['1']['iterations']} calls; "
        f"best fp32 = {best_fp32['format']} ({best_fp32_p50:.4f} ms)."
    )
    print()
    print(
        "| variant | accuracy | Δ vs dense (pp) | file MB | × dense file "
        "| gzip MB | × dense gzip | batch-1 p50 ms | × best fp32 | notes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, result in results.items():
        p50 = result["latency"]["1"]["p50_ms"]
        print(
            f"| {name} | {result['accuracy']:.4f} | "
            f"{100 * (result['accuracy'] - dense_accuracy):+.2f} | "
            f"{_mb(result['size_bytes'])} | "
            f"{_ratio(result['size_bytes'], dense['size_bytes'])} | "
            f"{_mb(result['gzip_bytes'])} | "
            f"{_ratio(result['gzip_bytes'], dense['gzip_bytes'])} | "
            f"{p50:.4f} | {_ratio(p50, best_fp32_p50)} | "
            f"{artifacts[name][2]} |"
        )
    print()

    goals = []

    def delta(result):
        return 100 * (result["accuracy"] - dense_accuracy)

    for name in ("QAT int8 (TFLite)", "post-training int8 (TFLite)"):
        result = results[name]
        size_ratio = result["size_bytes"] / dense["size_bytes"]
        latency_ratio = result["latency"]["1"]["p50_ms"] / best_fp32_p50
        goals += [
            (f"{name}: file <= 0.27x fp32", size_ratio <= 0.27, f"{size_ratio:.3f}x"),
            (
                f"{name}: accuracy within -0.5 pp of dense",
                delta(result) >= -0.5,
                f"{delta(result):+.2f} pp",
            ),
            (
                f"{name}: batch-1 p50 <= 0.5x best fp32",
                latency_ratio <= 0.5,
                f"{latency_ratio:.3f}x",
            ),
        ]
    pruned_name = f"{FLAGS['target-sparsity'].value:.0%} pruned fp32 (TFLite)"
    result = results[pruned_name]
    gzip_ratio = result["gzip_bytes"] / dense["gzip_bytes"]
    goals += [
        (
            f"{pruned_name}: accuracy within -1 pp of dense",
            delta(result) >= -1.0,
            f"{delta(result):+.2f} pp",
        ),
        (
            f"{pruned_name}: gzip <= 0.35x dense",
            gzip_ratio <= 0.35,
            f"{gzip_ratio:.3f}x",
        ),
    ]
    shared.print_goals(goals)
    print()
    print(f"Artifacts: {output_dir}")
    print("Reproduce:")
    print(_command())


if __name__ == "__main__":
    cli.run_main("benchmarks.compression", lambda arguments: run())
