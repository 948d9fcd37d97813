"""The main job, end to end on Fashion-MNIST: `make demo` (python -m examples.demo).

The summary, goals and table are in `examples.demo_summary`; the int8 export
and the sign-off report, run as processes, in `examples.demo_export`.

1. Loads Fashion-MNIST (offline from Debian's files when installed).
2. Trains the CNN teacher (`models.build_cnn_teacher`, Adam with cosine
   decay), or reuses it from `--output-dir` if a teacher trained with the
   same settings is already there.
3. Builds the compact student (`--student`: `models.build_compact_cnn_student`,
   strided convolutions 16-32, by default; `models.build_compact_student`,
   the MLP 784-100-10, with `--quick`) once and keeps its initial weights.
4. Trains the student alone, as the baseline, and distils the same student
   (same initial weights, same images and batches in the same order, same
   optimiser, schedule, epochs and batch size) with `kdkeras.Distiller` from
   cached soft targets: the teacher runs once over the students' images
   (`kdkeras.cache_soft_targets`), so each distillation step costs a student
   step. Both students advance in ONE compiled step per batch
   (`experiments.paired.PairedStudents`). With `--augmented-copies`, those
   images are the training set and fixed shifted, mirrored, partly mixed-up
   copies of it (function matching; `experiments.augment`), the same for
   both students.
5. Quantises the distilled student to full int8 TFLite, calibrated on
   training images (`python -m export.to_tflite --quantize int8`), and
   measures it (`--measure`).
6. Writes the sign-off report: the teacher against the distilled student in
   every format and every quantised variant of `--variants`, and releases
   the variant `examples/budget.yaml` chooses (`python -m export.report
   --release-dir`).
7. Prints one summary table (teacher, student alone, distilled student,
   distilled int8 student) and the released file, writes them to
   `<output-dir>/summary.json`, and says which of the goals hold.

The default recipe (the CNN student, DIST, 40 epochs) is the one RESULTS.md
measured over three seeds; one demo run is one seed. `--quick` runs the
one-minute recipe instead (the MLP student, 20 epochs), where distillation
helps little.
"""

import json
import math
import os
import sys
import time

from absl import app
from absl import flags

from examples import demo_export
from examples import demo_summary
from experiments.table import markdown as table_markdown
from export import cli as export_cli
from export.report.variants import VARIANTS as REPORT_VARIANTS

FLAGS = flags.FLAGS
#: `--student`: the `models` builder of each compact student.
STUDENTS = {
    "mlp": "build_compact_student",
    "cnn": "build_compact_cnn_student",
}
#: What `--quick` sets, unless the flag is given: the one-minute recipe.
QUICK = {"student": "mlp", "student-epochs": 20}
#: The seeds behind RESULTS.md's figure of the default recipe.
RESULTS_SEEDS = 3
flags.DEFINE_string("output-dir", "demo_output", "Where models and reports go.")


def _define_schedule_flags(model, epochs, what):
    """`--{model}-epochs` and `--{model}-learning-rate`."""
    flags.DEFINE_integer(f"{model}-epochs", epochs, f"Epochs of {what}.", lower_bound=1)
    flags.DEFINE_float(
        f"{model}-learning-rate",
        2e-3,
        f"Initial Adam learning rate of {what} (cosine decay).",
        lower_bound=0.0,
    )


_define_schedule_flags("teacher", 5, "the CNN teacher")
_define_schedule_flags("student", 40, "each student")
flags.DEFINE_enum(
    "student",
    "cnn",
    list(STUDENTS),
    "Compact student: cnn (models.build_compact_cnn_student, strided "
    "convolutions 16-32) or mlp (models.build_compact_student, 784-100-10: "
    "faster to train, and distillation helps it little).",
)
flags.DEFINE_boolean(
    "quick",
    False,
    "The one-minute recipe: --student=mlp --student-epochs=20 (each unless "
    "given). Distillation closes little of the gap with it.",
)
flags.DEFINE_integer(
    "batch-size", 128, "Batch size of every training run.", lower_bound=1
)
flags.DEFINE_integer(
    "train-examples",
    None,
    "Use only the first N training examples (default: all 60,000).",
    lower_bound=1,
)
flags.DEFINE_integer(
    "test-examples",
    None,
    "Use only the first N test "
    "examples (default: all 10,000; the goals are only "
    "judged on the full test set).",
    lower_bound=1,
)
flags.DEFINE_float(
    "temperature",
    1.0,
    "Distillation temperature T, in [0.05, 100].",
    lower_bound=0.05,
    upper_bound=100.0,
)
flags.DEFINE_enum(
    "loss",
    "dist",
    ["kd", "dist", "dkd"],
    "Soft-target loss: kd (T²·KL), dist (kdkeras.DIST, Pearson "
    "relations) or dkd (kdkeras.DKD, decoupled KD).",
)
flags.DEFINE_float(
    "alpha",
    0.5,
    "Weight of the hard-label loss, in [0, 1].",
    lower_bound=0.0,
    upper_bound=1.0,
)
flags.DEFINE_integer(
    "augmented-copies",
    1,
    "Copies of the training set the students train on: the images, then "
    "fixed shifted (±2 px), mirrored and partly mixed-up copies "
    "(`experiments.augment.function_matching_copies`), the teacher's soft "
    "targets cached on exactly those images; the student alone trains on the "
    "same images with their (mixed) labels. An epoch passes over every copy.",
    lower_bound=1,
)
flags.DEFINE_float(
    "mixup",
    0.5,
    "Share of each augmented copy mixed with another image (function matching).",
    lower_bound=0.0,
    upper_bound=1.0,
)
flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0)
flags.DEFINE_integer(
    "calibration-examples",
    1000,
    "Training images calibrating the int8 quantisation.",
    lower_bound=1,
)
flags.DEFINE_boolean(
    "int8", True, "Quantise the distilled student to int8 TFLite and measure it."
)
flags.DEFINE_boolean(
    "report",
    True,
    "Write the sign-off report (the teacher against the distilled student in "
    "every format and --variants) and release the variant the budget chooses.",
)
flags.DEFINE_list(
    "variants",
    ["tflite_int8"],
    "Quantised variants of the distilled student the sign-off report builds, "
    "measures and chooses the release among, beside its float formats "
    "(export.report --variants): tflite_int8, tflite_dynamic, tflite_float16, "
    "onnx_int8, or all.",
)
flags.DEFINE_boolean(
    "verbose",
    False,
    "Show TensorFlow's native logs (start-up notices such as `failed call to "
    "cuInit` on a CPU machine, XLA service lines); quiet without it.",
)

#: Exit status of a bad flag value or a positional argument.
USAGE_EXIT_CODE = 2
#: Training steps per call of both students' compiled step (the same updates on
#: the same batches; less Python per step for a student this small).
STUDENT_STEPS_PER_EXECUTION = 32
#: The same for the teacher (its steps are compute-bound: a smaller share saved).
TEACHER_STEPS_PER_EXECUTION = 16


def _register_finite_validators():
    """NaN passes absl's bounds (every comparison with it is False)."""
    for name in ("temperature", "alpha", "mixup"):
        flags.register_validator(
            name,
            math.isfinite,
            message=f"`--{name}` must be a finite number (not NaN)",
        )
    for model in ("teacher", "student"):
        name = f"{model}-learning-rate"
        flags.register_validator(
            name,
            lambda value: math.isfinite(value) and value > 0,
            message=f"`--{name}` must be a finite number > 0",
        )
    flags.register_validator(
        "output-dir",
        lambda value: bool(value and value.strip()),
        message="`--output-dir` must be a non-empty path",
    )
    flags.register_validator(
        "variants",
        lambda value: value == ["all"] or set(value) <= set(REPORT_VARIANTS),
        message=f"`--variants` must name variants from {', '.join(REPORT_VARIANTS)}"
        " or be all",
    )


_register_finite_validators()


def _usage_error(message):
    sys.stderr.write(f"examples.demo: error: {message}\n")
    sys.stderr.flush()
    sys.exit(USAGE_EXIT_CODE)


def parse_flags(argv):
    """absl's flag parser: a bad flag or a positional argument exits 2 with
    one line on stderr, before anything is loaded or trained."""
    try:
        arguments = FLAGS(argv)
    except flags.Error as error:
        _usage_error(" ".join(str(error).split()))
    if len(arguments) > 1:
        _usage_error(
            "`examples.demo` takes no positional arguments. "
            f"Received: {' '.join(arguments[1:])}"
        )
    if FLAGS.quick:
        for name, value in QUICK.items():
            if not FLAGS[name].present:
                FLAGS[name].value = value
    return arguments


def _flag(name):
    return FLAGS[name].value


def _verbose():
    # One line per epoch when the output is a log file, not a terminal.
    return "auto" if sys.stdout.isatty() else 2


def _adam(learning_rate, epochs, examples):
    import keras

    steps = epochs * math.ceil(examples / _flag("batch-size"))
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=max(steps, 1)
    )
    return keras.optimizers.Adam(schedule)


def _teacher(x_train, y_train, output_dir):
    """Loads the cached teacher if its settings match, else trains it."""
    import keras

    import models

    path = os.path.join(output_dir, "teacher.keras")
    settings_path = path + ".json"
    settings = {
        "epochs": _flag("teacher-epochs"),
        "seed": _flag("seed"),
        "examples": len(x_train),
        "builder": "build_cnn_teacher",
        "learning_rate": _flag("teacher-learning-rate"),
        "schedule": "cosine",
        "batch_size": _flag("batch-size"),
    }
    if os.path.exists(path) and os.path.exists(settings_path):
        with open(settings_path) as file:
            if json.load(file) == settings:
                print(f"Loading the cached teacher from {path}")
                return keras.saving.load_model(path, safe_mode=True), None
    keras.utils.set_random_seed(_flag("seed"))
    teacher = models.build_cnn_teacher(seed=_flag("seed"))
    teacher.compile(
        optimizer=_adam(
            _flag("teacher-learning-rate"), _flag("teacher-epochs"), len(x_train)
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=TEACHER_STEPS_PER_EXECUTION,
    )
    print(f"Training the CNN teacher ({_flag('teacher-epochs')} epochs)")
    start = time.perf_counter()
    teacher.fit(
        x_train,
        y_train,
        batch_size=_flag("batch-size"),
        epochs=_flag("teacher-epochs"),
        verbose=_verbose(),
    )
    seconds = time.perf_counter() - start
    temporary = os.path.join(output_dir, ".teacher.partial.keras")
    teacher.save(temporary)
    os.replace(temporary, path)
    with open(settings_path, "w") as file:
        json.dump(settings, file)
    return teacher, seconds


def _soft_target_loss():
    """The `compile` arguments of the soft-target loss named by `--loss`."""
    import kdkeras

    temperature = _flag("temperature")
    if _flag("loss") == "kd":
        return {"temperature": temperature}
    loss_class = {"dist": kdkeras.DIST, "dkd": kdkeras.DKD}[_flag("loss")]
    return {"distillation_loss_fn": loss_class(temperature=temperature)}


def _student_training_set(teacher, x_train, y_train, output_dir):
    """The students' images, one-hot (or mixed) labels and cached targets.

    The teacher runs once over the images (`kdkeras.cache_soft_targets`,
    reused from `output_dir` while teacher and images are unchanged); the
    returned `SoftTargetCache` holds the images and their teacher logits.
    """
    from experiments import augment
    from kdkeras import targets as soft_targets

    images, labels = augment.function_matching_copies(
        x_train,
        y_train,
        _flag("augmented-copies"),
        seed=_flag("seed"),
        num_classes=10,
        mixup_fraction=_flag("mixup"),
    )
    cache = soft_targets.cache_soft_targets(
        teacher, images, os.path.join(output_dir, "teacher_soft_targets.npz")
    )
    return images, labels, cache


def _train_students(teacher, x_train, y_train, cache):
    """The student alone and distilled: same weights, batches and schedule.

    `y_train` holds one-hot or mixed labels (`_student_training_set`). Both
    students advance in one compiled step per batch
    (`experiments.paired.PairedStudents`): the same batch for both, each
    with its own optimizer on the same schedule.

    Returns:
        `(alone, distilled student, seconds training both)`.
    """
    import keras

    import kdkeras
    import models
    from experiments import paired
    from kdkeras import targets as soft_targets

    build = getattr(models, STUDENTS[_flag("student")])
    keras.utils.set_random_seed(_flag("seed") + 1)
    initial_weights = build().get_weights()
    epochs = _flag("student-epochs")

    student = build()
    student.set_weights(initial_weights)
    # The teacher does not run: its logits come with every batch.
    distiller = kdkeras.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=_adam(_flag("student-learning-rate"), epochs, len(x_train)),
        student_loss_fn=keras.losses.CategoricalCrossentropy(from_logits=True),
        alpha=_flag("alpha"),
        **_soft_target_loss(),
    )

    alone = build()
    alone.set_weights(initial_weights)
    alone.compile(
        optimizer=_adam(_flag("student-learning-rate"), epochs, len(x_train)),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        jit_compile=distiller.jit_compile,  # the same compilation for both
    )
    both = paired.PairedStudents(distiller, alone)
    both.compile(steps_per_execution=STUDENT_STEPS_PER_EXECUTION)
    print(
        f"Training the compact student alone and distilled ({_flag('loss')}, "
        f"T={_flag('temperature')}, alpha={_flag('alpha')}), {epochs} epochs, "
        "both in one step per batch"
    )
    start = time.perf_counter()
    both.fit(
        # The dataset reshuffles every epoch, with the same seed every run.
        soft_targets.soft_target_dataset(
            cache,
            y_train,
            batch_size=_flag("batch-size"),
            seed=_flag("seed"),
        ),
        epochs=epochs,
        shuffle=False,
        verbose=_verbose(),
    )
    return alone, distiller.student, time.perf_counter() - start


def _seeds_note():
    """How many seeds stand behind this run's figure, and where the 3 are."""
    note = f"one run, one seed (--seed={_flag('seed')}); RESULTS.md's lead table "
    if _results_recipe():
        return note + f"reports this recipe over {RESULTS_SEEDS} seeds (mean ± std)"
    return note + (
        f"reports the default and --quick recipes over {RESULTS_SEEDS} seeds "
        "(this run's settings differ)"
    )


def _results_recipe():
    """Whether the run's settings are a recipe of RESULTS.md's lead table."""
    recipe = (_flag("student"), _flag("student-epochs"))
    default = (FLAGS["student"].default, FLAGS["student-epochs"].default)
    if recipe not in (default, (QUICK["student"], QUICK["student-epochs"])):
        return False
    shared = (
        "loss",
        "temperature",
        "alpha",
        "student-learning-rate",
        "teacher-epochs",
        "teacher-learning-rate",
        "batch-size",
        "augmented-copies",
        "train-examples",
    )
    return all(FLAGS[name].value == FLAGS[name].default for name in shared)


def _variants():
    """The report's quantised variants (`--variants`, `all` expanded)."""
    names = _flag("variants")
    return list(REPORT_VARIANTS) if names == ["all"] else names


def _errors(model, x_test, y_test):
    logits = model.predict(x_test, batch_size=1024, verbose=0)
    return int((logits.argmax(axis=1) != y_test).sum())


def main(argv):
    del argv
    started = time.perf_counter()
    if not _flag("verbose"):
        export_cli.quiet_tensorflow()
    import models
    from models import data

    output_dir = _flag("output-dir")
    os.makedirs(output_dir, exist_ok=True)
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(
        limit_train=_flag("train-examples"), limit_test=_flag("test-examples")
    )
    test_examples = len(y_test)
    print(f"Fashion-MNIST: {len(x_train)} train, {test_examples} test examples")

    teacher, teacher_seconds = _teacher(x_train, y_train, output_dir)
    images, labels, cache = _student_training_set(teacher, x_train, y_train, output_dir)
    alone, student, students_seconds = _train_students(teacher, images, labels, cache)

    teacher_path = os.path.join(output_dir, "teacher.keras")
    student_path = os.path.join(output_dir, "student.keras")
    student.save(student_path)
    alone.save(os.path.join(output_dir, "student_alone.keras"))

    int8 = None
    if _flag("int8"):
        int8 = demo_export.quantize_int8(
            student_path,
            x_train,
            x_test,
            y_test,
            output_dir,
            _flag("calibration-examples"),
            # The report times the int8 variant itself, beside the teacher.
            measure=not (_flag("report") and "tflite_int8" in _variants()),
        )
    report = None
    if _flag("report"):
        report = demo_export.sign_off_report(
            teacher_path,
            student_path,
            output_dir,
            variants=_variants(),
            calibration=demo_export.calibration_file(
                x_train, output_dir, _flag("calibration-examples")
            ),
        )

    teacher_p50, teacher_runtime, teacher_size = demo_summary.report_figures(
        report, "teacher"
    )
    student_p50, student_runtime, student_size = demo_summary.report_figures(
        report, "student"
    )
    teacher_flops = models.count_flops(teacher)
    student_flops = models.count_flops(student)
    errors = {
        name: _errors(model, x_test, y_test)
        for name, model in (
            ("teacher", teacher),
            ("alone", alone),
            ("student", student),
        )
    }
    rows = {
        "teacher": demo_summary.row(
            teacher.count_params(),
            teacher_flops,
            errors["teacher"],
            test_examples,
            teacher_size,
            teacher_p50,
            teacher_runtime,
            teacher_seconds,
        ),
        "student_alone": demo_summary.row(
            alone.count_params(),
            student_flops,
            errors["alone"],
            test_examples,
        ),
        "student_distilled": demo_summary.row(
            student.count_params(),
            student_flops,
            errors["student"],
            test_examples,
            student_size,
            student_p50,
            student_runtime,
        ),
    }
    int8_p50 = None
    if int8 is not None:
        accuracy = int8["sidecar"]["accuracy"]["exported"]
        # Timed interleaved with the teacher when the report measured it.
        int8_p50 = demo_summary.variant_p50(report, "student", "tflite_int8")
        rows["student_distilled_int8"] = demo_summary.row(
            student.count_params(),
            student_flops,
            round((1.0 - accuracy) * test_examples),
            test_examples,
            int8["sidecar"]["size_bytes"],
            int8_p50 or int8["p50_ms"],
            {b: "tflite" for b in int8["p50_ms"]},
        )
    summary = {
        "test_examples": test_examples,
        "train_examples": len(x_train),
        "rows": rows,
        "gap_closed": table_markdown.gap_closed(
            errors["alone"], errors["student"], errors["teacher"]
        ),
        "recipe": {
            "student": f"models.{STUDENTS[_flag('student')]}()",
            "teacher": "models.build_cnn_teacher()",
            "teacher_epochs": _flag("teacher-epochs"),
            "teacher_learning_rate": _flag("teacher-learning-rate"),
            "student_epochs": _flag("student-epochs"),
            "student_learning_rate": _flag("student-learning-rate"),
            "schedule": "Adam, cosine decay to 0",
            "batch_size": _flag("batch-size"),
            "loss": _flag("loss"),
            "temperature": _flag("temperature"),
            "alpha": _flag("alpha"),
            "augmented_copies": _flag("augmented-copies"),
            "mixup": _flag("mixup"),
            "soft_targets": "cached, the teacher on exactly the students' images",
            "seed": _flag("seed"),
        },
        "teacher_trained": teacher_seconds is not None,
        "teacher_train_seconds": teacher_seconds,
        "students_train_seconds": students_seconds,
        "students_note": (
            "the student alone and the distilled student trained together, one "
            "compiled step per batch (experiments.paired.PairedStudents)"
        ),
        "seeds": 1,
        "seeds_note": _seeds_note(),
        "released": demo_summary.released(report),
        "latency_note": (
            "teacher, fp32 student and the report's variants timed interleaved "
            "by export.report"
            if int8_p50
            else "teacher and fp32 student timed interleaved by export.report; "
            "the int8 student timed alone by export.to_tflite --measure"
        ),
    }
    summary["wall_time_s"] = time.perf_counter() - started
    summary["goals"] = demo_summary.goals(summary, report, int8)
    path = os.path.join(output_dir, "summary.json")
    temporary = path + ".partial"
    with open(temporary, "w") as file:
        json.dump(summary, file, indent=2)
    os.replace(temporary, path)

    print()
    print(demo_summary.format_table(summary))
    print()
    if test_examples != demo_summary.FULL_TEST_SET:
        print(
            f"Goals judged on the full test set only ({test_examples} "
            "test images used): accuracy goals not judged."
        )
    for goal in summary["goals"]:
        verdict = {True: "HOLDS", False: "DOES NOT HOLD", None: "NOT JUDGED"}[
            goal["holds"]
        ]
        print(f"  [{verdict}] {goal['goal']}: {goal['measured']}")
    print(f"Summary: {path}")
    if report is not None and report.get("exit_code") == 1:
        sys.exit(
            "The student is over its release budget (examples/budget.yaml):"
            f" see {os.path.join(output_dir, 'report', 'report.md')}"
        )


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
