"""Compressing keras.applications students: pruned, clustered, QAT and PTQ int8.

Fashion-MNIST zero-padded to 32x32 and repeated to 3 channels (pixel values
0-255). A CNN teacher (`models.build_cnn_teacher` behind a `Rescaling(1/255)`)
is trained once; the students are `keras.applications.MobileNetV2`
(alpha=0.35, behind a `Rescaling(1/127.5, offset=-1)`, its expected input)
and `MobileNetV3Small` (alpha=0.75, its own `Rescaling`), both with logits,
each distilled from the teacher's cached logits with `kdkeras.Distiller`.
From that fp32 distilled student, every compressed variant keeps distilling
from the same soft targets (`kdkeras.compress`, which carries the functional
graph to tf_keras for TFMOT and back):

  pruned      magnitude pruning to --target-sparsity, fp32 TFLite
  clustered   --clusters weight clusters per kernel, fp32 TFLite
  qat_int8    quantization-aware training, int8 TFLite (weights+activations)
  ptq_int8    full-integer post-training quantization of the fp32 student

Each TFLite file is measured by `export.measure.measure_artifact` in its own
subprocess: test accuracy, file size, gzip size, batch-1 p50 latency at the
best of 1 thread and every core.

Goals: 50% pruned within 1 pp of the fp32 student; QAT int8 within 0.5 pp
and at least as accurate as post-training int8.

The recipe sets every BatchNormalization's momentum in the students to
--bn-momentum (0.9; the CNN teacher has none). `keras.applications` builds
its networks with momentum 0.999, made for ImageNet-length schedules: after a few hundred
steps the moving statistics used at inference are still mostly their initial
values (0.999^235 = 0.79 of mean 0, variance 1), and the inference-mode
student is at chance although it trains. Every variant starts from the same
student, so each gets the same statistics.

Usage:
  .venv/bin/python -m benchmarks.compression_applications --quick   # smoke test
  .venv/bin/python -m benchmarks.compression_applications           # the table
"""

import os
import sys
import tempfile

from absl import flags

# Run from a checkout without installing: the repository root on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import _compression as shared  # noqa: E402  (before TensorFlow)
from export import cli  # noqa: E402

STUDENTS = ("mobilenet_v2", "mobilenet_v3_small")

FLAGS = flags.FLAGS
shared.define_flags(
    {
        "teacher-epochs": 4,
        "student-epochs": 8,
        "prune-epochs": 3,
        "cluster-epochs": 1,
        "qat-epochs": 2,
        "target-sparsity": 0.5,
        "clusters": 16,
        "calibration": 500,
    }
)
flags.DEFINE_list("students", list(STUDENTS), "Students to compress.")
flags.register_validator(
    "students",
    lambda names: bool(names) and set(names) <= set(STUDENTS),
    message=f"must be a comma-separated list of {', '.join(STUDENTS)}",
)
flags.DEFINE_integer("train", 12000, "Training examples (first N of 60k).")
flags.DEFINE_integer("test", 2000, "Test examples (first N of 10k).")
flags.DEFINE_float("learning-rate", 2e-3, "Adam learning rate of the fp32 student.")
flags.DEFINE_float("fine-tune-learning-rate", 2e-4, "Adam rate of the fine-tunes.")
flags.DEFINE_float("temperature", 4.0, "Distillation temperature.")
flags.DEFINE_float("alpha", 0.5, "Weight of the hard-label loss.")
flags.DEFINE_integer("batch-size", 128, "Batch size.")
flags.DEFINE_float(
    "bn-momentum",
    0.9,
    "BatchNormalization momentum of the students "
    "(keras.applications' own 0.999 leaves short schedules at chance).",
)
flags.register_validator(
    "bn-momentum", lambda value: 0.0 <= value < 1.0, message="must be in [0, 1)"
)

QUICK = {
    "train": 512,
    "test": 256,
    "teacher-epochs": 1,
    "student-epochs": 1,
    "prune-epochs": 1,
    "cluster-epochs": 1,
    "qat-epochs": 1,
    "calibration": 64,
    "min-time-s": 0.2,
}


def _setting(name):
    return shared.setting(name, QUICK)


def _command():
    names = (
        "train test teacher-epochs student-epochs prune-epochs cluster-epochs "
        "qat-epochs learning-rate fine-tune-learning-rate target-sparsity "
        "clusters calibration temperature alpha batch-size bn-momentum seed "
        "min-time-s"
    ).split()
    return shared.command(
        "benchmarks.compression_applications",
        names,
        [f"--students={','.join(FLAGS.students)}"],
    )


_log = shared.log


def to_rgb32(images):
    """`(N, 28, 28, 1)` in [0, 1] as `(N, 32, 32, 3)` in [0, 255], padded."""
    import numpy as np

    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    return np.repeat(255.0 * padded, 3, axis=-1).astype("float32")


def with_bn_momentum(model, momentum):
    """A fresh functional `model` whose BatchNormalization layers use `momentum`.

    Rebuilt from `model`'s config (nested functional models included), so
    the weights are new: call it on an untrained model.

    Args:
        model: A functional `keras.Model`.
        momentum: Float in [0, 1), the moving statistics' momentum.

    Returns:
        The new `keras.Model`.
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(
            f"`momentum` must be a float in [0, 1). Received: momentum={momentum!r}"
        )

    def visit(config):
        for layer in config["layers"]:
            if layer["class_name"] == "BatchNormalization":
                layer["config"]["momentum"] = momentum
            elif "layers" in layer.get("config", {}):
                visit(layer["config"])

    config = model.get_config()
    visit(config)
    return model.__class__.from_config(config)


def build_student(name):
    """The keras.applications student `name`, 32x32x3 in [0, 255], logits.

    Its BatchNormalization layers use `--bn-momentum` (see the module).
    """
    import keras

    if name not in STUDENTS:
        raise ValueError(f"`--students` must be in {STUDENTS}. Received: {name[:40]!r}")
    constructor, arguments = {
        "mobilenet_v2": (keras.applications.MobileNetV2, {"alpha": 0.35}),
        "mobilenet_v3_small": (
            keras.applications.MobileNetV3Small,
            {"alpha": 0.75, "dropout_rate": 0.0},
        ),
    }[name]
    backbone = with_bn_momentum(
        constructor(
            input_shape=(32, 32, 3),
            weights=None,
            classes=10,
            classifier_activation=None,
            **arguments,
        ),
        FLAGS["bn-momentum"].value,
    )
    if name != "mobilenet_v2":
        return backbone  # Its own Rescaling to [-1, 1].
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 127.5, offset=-1.0),
            backbone,
        ],
        name="mobilenet_v2_035",
    )


def _teacher_logits(x_train, y_train, x_test, y_test):
    import keras

    import models

    keras.utils.set_random_seed(FLAGS.seed)
    teacher = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255),
            models.build_cnn_teacher(input_shape=(32, 32, 3), seed=FLAGS.seed),
        ],
        name="cnn_teacher",
    )
    _log(f"training the CNN teacher ({_setting('teacher-epochs')} epochs)")
    shared.fit_teacher(teacher, x_train, y_train, _setting("teacher-epochs"))
    accuracy = teacher.evaluate(x_test, y_test, verbose=0)[1]
    _log(f"teacher test accuracy {accuracy:.4f}")
    return teacher, teacher.predict(x_train, batch_size=512, verbose=0), accuracy


def _distilled_student(name, teacher, x_train, y_train, teacher_logits):
    import keras

    keras.utils.set_random_seed(FLAGS.seed)
    epochs = _setting("student-epochs")
    steps = epochs * -(-len(x_train) // FLAGS["batch-size"].value)
    _log(f"{name}: distilling the fp32 student ({epochs} epochs)")
    return shared.distil(
        build_student(name),
        teacher,
        x_train,
        y_train,
        teacher_logits,
        epochs,
        keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(FLAGS["learning-rate"].value, steps)
        ),
    )


def _compress(name, student, x_train, y_train, teacher_logits, test, output_dir):
    """Exports the fp32, pruned, clustered, QAT and PTQ variants of `student`.

    `test` (`(x, y)`, real held-out images) is the exporter's check data: the
    top-1 agreement and accuracy of each quantised file against its Keras
    model. Without it the exporter checks on random images scaled like the
    calibration data, on which a trained student's int8 ranges clip (not the
    inputs the files are for).
    """
    from export.to_tflite import convert
    from export.to_tflite import export_tflite
    from kdkeras import compress

    variants = {}  # label -> (path, notes)

    calibration = x_train[: _setting("calibration")]

    def export(label, stem, model, notes, **options):
        from export.verify import ParityError

        path = os.path.join(output_dir, f"{name}_{stem}.tflite")
        # Training images calibrate PTQ; the test images are the check's.
        try:
            export_tflite(
                model,
                path,
                overwrite=True,
                representative_data=calibration,
                labelled_data=test,
                **options,
            )
        except ParityError as error:
            # A refused file is a result of the table, not the run's end: the
            # same conversion without the checks is measured, and labelled so.
            _log(f"{name}: {label} refused by the exporter's check: {error}")
            path = os.path.join(output_dir, f"{name}_{stem}_unchecked.tflite")
            with open(path, "wb") as handle:
                handle.write(
                    convert(model, options.get("quantize", "none"), calibration)
                )
            notes = (
                f"{notes}; REFUSED by export_tflite's check ({str(error)[:160]}): "
                "the same conversion, unchecked (export.to_tflite.convert)"
            )
        variants[label] = (path, notes)

    export("fp32", "fp32", student, "distilled student")
    export(
        "post-training int8",
        "ptq_int8",
        student,
        f"{len(calibration)} calibration images",
        quantize="int8",
    )

    def fine_tune(label, stem, method, describe, quantize="none", **options):
        _log(f"{name}: {label}")
        model, notes = shared.fine_tune(
            method,
            student,
            x_train,
            y_train,
            teacher_logits,
            describe,
            learning_rate=FLAGS["fine-tune-learning-rate"].value,
            **options,
        )
        export(label, stem, model, "; ".join(notes), quantize=quantize)
        return model.compression_report

    sparsity = FLAGS["target-sparsity"].value
    fine_tune(
        f"{sparsity:.0%} pruned",
        "pruned",
        compress.prune,
        lambda model: [
            f"kernel sparsity {min(compress.kernel_sparsity(model).values()):.2f}"
        ],
        target_sparsity=sparsity,
        epochs=_setting("prune-epochs"),
    )
    fine_tune(
        f"{FLAGS.clusters} clusters",
        "clustered",
        compress.cluster,
        lambda model: [
            f"<= {max(compress.unique_kernel_values(model).values())} values/kernel"
        ],
        number_of_clusters=FLAGS.clusters,
        epochs=_setting("cluster-epochs"),
    )
    report = fine_tune(
        "QAT int8",
        "qat_int8",
        compress.quantization_aware,
        lambda model: [],
        quantize="qat",
        epochs=_setting("qat-epochs"),
    )
    float_kinds = sorted(
        {reason.split(":")[0] for reason in report.left_as_is.values()}
    )
    _log(f"{name}: QAT left in float: {len(report.left_as_is)} ({float_kinds})")
    return variants, report


def _print_table(name, parameters, variants, results, report):
    """Prints `name`'s table; returns its `(text, passed, measured)` goals."""
    fp32 = results["fp32"]
    print()
    print(f"### {name} ({parameters:,} parameters)")
    print()
    print(
        "| variant | accuracy | Δ vs fp32 (pp) | file KB | gzip KB "
        "| × fp32 gzip | p50 ms | notes |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, (_, notes) in variants.items():
        result = results[label]
        print(
            f"| {label} | {result['accuracy']:.4f} | "
            f"{100 * (result['accuracy'] - fp32['accuracy']):+.2f} | "
            f"{result['size_bytes'] / 1e3:.1f} | "
            f"{result['gzip_bytes'] / 1e3:.1f} | "
            f"{result['gzip_bytes'] / fp32['gzip_bytes']:.2f} | "
            f"{result['latency']['1']['p50_ms']:.3f} | {notes} |"
        )
    kinds = {}
    for layer, reason in report.left_as_is.items():
        kinds.setdefault(reason, []).append(layer)
    print()
    print("QAT left in float: " + ("none" if not kinds else ""))
    for reason, names in sorted(kinds.items()):
        print(f"- {len(names)} × {reason} (e.g. {names[0]})")
    sys.stdout.flush()

    def delta(label):
        return 100 * (results[label]["accuracy"] - fp32["accuracy"])

    pruned = next(label for label in variants if label.endswith("pruned"))
    return [
        (f"{name}: {pruned} within 1 pp", delta(pruned) >= -1.0, delta(pruned)),
        (
            f"{name}: QAT int8 within 0.5 pp",
            delta("QAT int8") >= -0.5,
            delta("QAT int8"),
        ),
        (
            f"{name}: QAT int8 >= post-training int8",
            delta("QAT int8") >= delta("post-training int8"),
            delta("QAT int8") - delta("post-training int8"),
        ),
    ]


def run():
    import keras
    import tensorflow as tf

    from models.data import load_fashion_mnist

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(
        _setting("train"), _setting("test")
    )
    x_train, x_test = to_rgb32(x_train), to_rgb32(x_test)
    output_dir = FLAGS["output-dir"].value or tempfile.mkdtemp(
        prefix="kdkeras-compression-applications-"
    )
    os.makedirs(output_dir, exist_ok=True)
    load_before = os.getloadavg()
    teacher, teacher_logits, teacher_accuracy = _teacher_logits(
        x_train, y_train, x_test, y_test
    )
    print()
    print(
        f"## Compressing keras.applications students: Fashion-MNIST 32x32x3, "
        f"{len(x_train)} train / {len(x_test)} test"
        + (" (--quick: smoke test, numbers not meaningful)" if FLAGS.quick else "")
    )
    print()
    print(
        f"Teacher: CNN, {_setting('teacher-epochs')} epochs, test accuracy "
        f"{teacher_accuracy:.4f}. Students distilled {_setting('student-epochs')} "
        f"epochs (T={FLAGS.temperature:g}, alpha={FLAGS.alpha:g}, "
        f"BatchNormalization momentum {FLAGS['bn-momentum'].value:g}); the "
        f"compressions fine-tune from them with the same cached soft targets. "
        f"TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
        f"machine shared with other jobs (load average {load_before[0]:.1f} "
        "at the start). Latency: TFLite (XNNPACK), batch 1, p50, the better of "
        "1 thread and every core.",
        flush=True,
    )
    goals = []
    # Each student's table as soon as it is measured.
    for name in FLAGS.students:
        student = _distilled_student(name, teacher, x_train, y_train, teacher_logits)
        logits = student.predict(x_test, batch_size=512, verbose=0)
        _log(
            f"{name}: fp32 student test accuracy (Keras, inference mode) "
            f"{(logits.argmax(axis=-1) == y_test).mean():.4f}"
        )
        variants, report = _compress(
            name,
            student,
            x_train,
            y_train,
            teacher_logits,
            (x_test, y_test),
            output_dir,
        )
        results = shared.measure(
            {
                label: (path, "tflite", notes)
                for label, (path, notes) in variants.items()
            },
            x_test,
            y_test,
            repeats=1,
            threads=(1, None),
            min_time_s=_setting("min-time-s"),
        )
        goals += _print_table(name, student.count_params(), variants, results, report)
    print()
    print(f"Load average at the end: {os.getloadavg()[0]:.1f}")
    print()
    shared.print_goals(
        (text, passed, f"{measured:+.2f} pp") for text, passed, measured in goals
    )
    print()
    print(f"Artifacts: {output_dir}")
    print("Reproduce:")
    print(_command())


if __name__ == "__main__":
    cli.run_main("benchmarks.compression_applications", lambda arguments: run())
