"""The main job, end to end on Fashion-MNIST: `make demo` (python -m examples.demo).

1. Loads Fashion-MNIST (offline from Debian's files when installed).
2. Trains the CNN teacher (`models.build_cnn_teacher`, Adam with cosine
   decay), or reuses it from `--output-dir` if a teacher trained with the
   same settings is already there.
3. Builds the compact student (`models.compact.build_compact_student`) once
   and keeps its initial weights.
4. Trains the student alone, as the baseline, and distils the same student
   (same initial weights, same batches in the same order, same optimiser,
   schedule, epochs and batch size) with `kdkeras.Distiller` from cached soft
   targets: the teacher runs once over the training set
   (`kdkeras.soft_targets`), so each distillation step costs a student step.
5. Quantises the distilled student to full int8 TFLite, calibrated on
   training images (`python -m export.to_tflite --quantize int8`), and
   measures it (`--measure`).
6. Writes the sign-off report, teacher against the fp32 distilled student
   (`python -m export.report`).
7. Prints one summary table (teacher, student alone, distilled student,
   distilled int8 student), writes it to `<output-dir>/summary.json`, and
   says which of the goals (issue 15) hold and which do not.
"""

import json
import math
import os
import re
import subprocess
import sys
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("output-dir", "demo_output", "Where models and reports go.")
flags.DEFINE_integer("teacher-epochs", 5, "Epochs of the CNN teacher.", lower_bound=1)
flags.DEFINE_float(
    "teacher-learning-rate",
    2e-3,
    "Initial Adam learning rate of the teacher (cosine decay).",
    lower_bound=0.0,
)
flags.DEFINE_integer("student-epochs", 20, "Epochs of each student.", lower_bound=1)
flags.DEFINE_float(
    "student-learning-rate",
    2e-3,
    "Initial Adam learning rate of each student (cosine decay).",
    lower_bound=0.0,
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
    "Write the sign-off report (teacher "
    "against the fp32 distilled student) after training.",
)

# Goals of issue 15, checked on every full run.
MIN_PARAMETER_RATIO = 10.0
MIN_FLOPS_RATIO = 5.0
MIN_GAP_CLOSED = 0.40
MAX_INT8_ACCURACY_LOSS = 0.005
MIN_SPEEDUP = {"1": 2.0, "64": 5.0}
MAX_WALL_TIME_S = 360.0
FULL_TEST_SET = 10_000
BATCH_SIZES = ("1", "64")
ROWS = (
    ("teacher", "teacher (CNN)"),
    ("student_alone", "student alone"),
    ("student_distilled", "student distilled"),
    ("student_distilled_int8", "distilled, int8 TFLite"),
)


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


def _train_students(teacher, x_train, y_train, teacher_logits):
    """The student alone and distilled: same weights, batches and schedule."""
    import keras

    import kdkeras
    from kdkeras import soft_targets
    from models import compact

    keras.utils.set_random_seed(_flag("seed") + 1)
    initial_weights = compact.build_compact_student().get_weights()
    epochs = _flag("student-epochs")

    def batches():
        # Same seed: both students see the same batches in the same order.
        return soft_targets.soft_target_dataset(
            x_train,
            y_train,
            teacher_logits,
            batch_size=_flag("batch-size"),
            seed=_flag("seed"),
        )

    student = compact.build_compact_student()
    student.set_weights(initial_weights)
    # The teacher does not run: its logits come with every batch.
    distiller = kdkeras.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=_adam(_flag("student-learning-rate"), epochs, len(x_train)),
        metrics=["accuracy"],
        alpha=_flag("alpha"),
        **_soft_target_loss(),
    )

    alone = compact.build_compact_student()
    alone.set_weights(initial_weights)
    alone.compile(
        optimizer=_adam(_flag("student-learning-rate"), epochs, len(x_train)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=distiller.jit_compile,  # the same compilation for both
    )
    print(f"Training the compact student alone ({epochs} epochs)")
    start = time.perf_counter()
    alone.fit(
        batches().map(lambda x, targets: (x, targets["labels"])),
        epochs=epochs,
        shuffle=False,
        verbose=_verbose(),
    )
    alone_seconds = time.perf_counter() - start

    print(
        f"Distilling the same student ({_flag('loss')}, "
        f"T={_flag('temperature')}, "
        f"alpha={_flag('alpha')}, {epochs} epochs)"
    )
    start = time.perf_counter()
    distiller.fit(
        batches(), epochs=epochs, shuffle=False, verbose=_verbose()
    )  # the dataset reshuffles every epoch
    distilled_seconds = time.perf_counter() - start
    return alone, alone_seconds, distiller.student, distilled_seconds


def _errors(model, x_test, y_test):
    logits = model.predict(x_test, batch_size=1024, verbose=0)
    return int((logits.argmax(axis=1) != y_test).sum())


def _run(command, what):
    """Runs a CLI of this repository; returns (exit code, stdout)."""
    print("Running:", " ".join(command), flush=True)
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    sys.stdout.write(completed.stdout)
    if completed.returncode not in (0, 1):
        print(f"{what} failed with exit code {completed.returncode}")
    return completed.returncode, completed.stdout


def _remove(*paths):
    for path in paths:
        if os.path.exists(path):
            os.remove(path)


def _quantize_int8(student_path, x_train, x_test, y_test, output_dir):
    """int8 TFLite of the student: its sidecar plus the measured p50s."""
    import numpy as np

    calibration = os.path.join(output_dir, "calibration_images.npy")
    np.save(calibration, x_train[: _flag("calibration-examples")])
    labelled = os.path.join(output_dir, "test_data.npz")
    np.savez(labelled, x=x_test, y=y_test)
    output = os.path.join(output_dir, "student_int8.tflite")
    _remove(output, output + ".json")  # nothing stale is read back below
    code, stdout = _run(
        [
            sys.executable,
            "-m",
            "export.to_tflite",
            student_path,
            f"--output={output}",
            "--quantize=int8",
            f"--representative-data={calibration}",
            f"--labelled-data={labelled}",
            "--overwrite",
            "--measure",
        ],
        "export.to_tflite --quantize int8",
    )
    if code != 0 or not os.path.exists(output + ".json"):
        return None
    with open(output + ".json") as file:
        sidecar = json.load(file)
    # `--measure` prints "batch B: p50 X ms, ..." per batch size.
    p50 = {
        batch: float(ms)
        for batch, ms in re.findall(r"batch (\d+): p50 ([0-9.]+) ms", stdout)
    }
    return {"path": output, "sidecar": sidecar, "p50_ms": p50}


def _report(teacher_path, student_path, output_dir):
    """The sign-off report, teacher against the fp32 student; its JSON."""
    report_dir = os.path.join(output_dir, "report")
    budget = os.path.join(os.path.dirname(__file__), "budget.yaml")
    path = os.path.join(report_dir, "report.json")
    _remove(path)  # nothing stale is read back below
    code, _ = _run(
        [
            sys.executable,
            "-m",
            "export.report",
            f"--teacher={teacher_path}",
            f"--student={student_path}",
            f"--output-dir={report_dir}",
            f"--budget={budget}",
        ],
        "export.report",
    )
    if not os.path.exists(path):  # exit 3 (a format failed) still writes it
        return None
    with open(path) as file:
        report = json.load(file)
    report["exit_code"] = code
    print(f"Sign-off report: {report_dir}/report.md (and .html, .json)")
    return report


def _report_figures(report, name):
    """Best-runtime p50 per batch size and TFLite size of one report model."""
    best = (report or {}).get("best_fp32", {}).get(name, {})
    p50 = {b: best[b]["p50_ms"] for b in BATCH_SIZES if b in best}
    runtime = {b: best[b]["format"] for b in BATCH_SIZES if b in best}
    size = None
    for result in (report or {}).get("results", []):
        if (
            result.get("model") == name
            and result.get("format") == "tflite"
            and result.get("size_bytes")
        ):
            size = int(result["size_bytes"])
    return p50, runtime, size


def _row(
    parameters,
    flops,
    errors,
    test_examples,
    size=None,
    p50=None,
    runtime=None,
    train_seconds=None,
):
    errors = int(errors)
    return {
        "parameters": int(parameters),
        "flops": flops,
        "errors": errors,
        "correct": test_examples - errors,
        "accuracy": (test_examples - errors) / test_examples,
        "tflite_bytes": size,
        "p50_ms": p50 or {},
        "runtime": runtime or {},
        "train_seconds": train_seconds,
    }


def gap_closed(teacher_errors, alone_errors, distilled_errors):
    """Fraction of the student-alone -> teacher error gap the distillation
    closed; None when the student alone is not worse than the teacher."""
    gap = alone_errors - teacher_errors
    if gap <= 0:
        return None
    return (alone_errors - distilled_errors) / gap


def _goals(summary, report, int8):
    """Each goal of issue 15: what was measured and whether it holds."""
    rows = summary["rows"]
    teacher = rows["teacher"]
    distilled = rows["student_distilled"]
    full = summary["test_examples"] == FULL_TEST_SET
    goals = []

    def add(goal, holds, measured):
        goals.append({"goal": goal, "holds": holds, "measured": measured})

    ratio = teacher["parameters"] / distilled["parameters"]
    add(
        f"student has >= {MIN_PARAMETER_RATIO:g}x fewer parameters",
        ratio >= MIN_PARAMETER_RATIO,
        f"{ratio:.1f}x",
    )
    ratio = teacher["flops"] / distilled["flops"]
    add(
        f"student has >= {MIN_FLOPS_RATIO:g}x fewer FLOPs per example",
        ratio >= MIN_FLOPS_RATIO,
        f"{ratio:.1f}x",
    )
    alone_errors = rows["student_alone"]["errors"]
    add(
        "distilled student makes fewer test errors than the student alone",
        distilled["errors"] < alone_errors if full else None,
        f"{distilled['errors']} vs {alone_errors}",
    )
    closed = summary["gap_closed"]
    add(
        f"distillation closes >= {MIN_GAP_CLOSED:.0%} of the gap",
        (closed is not None and closed >= MIN_GAP_CLOSED) if full else None,
        "no gap (student alone not worse than the teacher)"
        if closed is None
        else f"{closed:.1%}",
    )
    if int8 is None:
        add(
            "int8 student loses <= 0.5 pp against the fp32 student",
            None,
            "not measured (int8 export skipped or failed)",
        )
    else:
        loss = distilled["accuracy"] - rows["student_distilled_int8"]["accuracy"]
        add(
            "int8 student loses <= 0.5 pp against the fp32 student",
            loss <= MAX_INT8_ACCURACY_LOSS if full else None,
            f"{100 * loss:+.2f} pp",
        )
    for batch in BATCH_SIZES:
        goal = (
            f"student's best runtime >= {MIN_SPEEDUP[batch]:g}x faster "
            f"than the teacher's at batch {batch}"
        )
        if batch in teacher["p50_ms"] and batch in distilled["p50_ms"]:
            speedup = teacher["p50_ms"][batch] / distilled["p50_ms"][batch]
            add(goal, speedup >= MIN_SPEEDUP[batch], f"{speedup:.1f}x")
        else:
            add(goal, None, "not measured (report skipped or failed)")
    if report is not None and report.get("budget"):
        add(
            "student within its release budget (examples/budget.yaml)",
            bool(report["budget"].get("passed")),
            "; ".join(str(v) for v in report["budget"].get("violations", []))
            or "no violation",
        )
    add(
        f"whole demo under {MAX_WALL_TIME_S / 60:g} minutes",
        summary["wall_time_s"] < MAX_WALL_TIME_S,
        f"{summary['wall_time_s']:.0f} s"
        + ("" if summary["teacher_trained"] else " (teacher reused from cache)"),
    )
    return goals


def _format_table(summary):
    rows = summary["rows"]

    def cell(value, fmt):
        width = int(fmt.split(".")[0])
        return "-".rjust(width) if value is None else format(value, fmt)

    header = (
        f"{'model':24s} {'params':>8s} {'TFLite MB':>9s} {'errors':>6s} "
        f"{'accuracy':>8s} {'p50 ms @1':>9s} {'p50 ms @64':>10s}"
    )
    lines = [header, "-" * len(header)]
    for key, label in ROWS:
        if key not in rows:
            continue
        row = rows[key]
        size = None if row["tflite_bytes"] is None else row["tflite_bytes"] / 1e6
        lines.append(
            f"{label:24s} {row['parameters']:8,d} {cell(size, '9.3f')} "
            f"{row['errors']:6d} {row['accuracy']:8.4f} "
            f"{cell(row['p50_ms'].get('1'), '9.4f')} "
            f"{cell(row['p50_ms'].get('64'), '10.4f')}"
        )
    closed = summary["gap_closed"]
    lines.append(
        f"Distillation closed {'-' if closed is None else f'{closed:.1%}'} of "
        f"the student-alone -> teacher gap ({summary['test_examples']:,d} "
        "test images; p50 = the fastest runtime's median latency)."
    )
    return "\n".join(lines)


def main(argv):
    del argv
    started = time.perf_counter()
    import models
    from kdkeras import soft_targets
    from models import data

    output_dir = _flag("output-dir")
    os.makedirs(output_dir, exist_ok=True)
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(
        limit_train=_flag("train-examples"), limit_test=_flag("test-examples")
    )
    test_examples = len(y_test)
    print(f"Fashion-MNIST: {len(x_train)} train, {test_examples} test examples")

    teacher, teacher_seconds = _teacher(x_train, y_train, output_dir)
    teacher_logits = soft_targets.cache_soft_targets(
        teacher, x_train, os.path.join(output_dir, "teacher_soft_targets.npz")
    )
    alone, alone_seconds, student, distilled_seconds = _train_students(
        teacher, x_train, y_train, teacher_logits
    )

    teacher_path = os.path.join(output_dir, "teacher.keras")
    student_path = os.path.join(output_dir, "student.keras")
    student.save(student_path)
    alone.save(os.path.join(output_dir, "student_alone.keras"))

    int8 = None
    if _flag("int8"):
        int8 = _quantize_int8(student_path, x_train, x_test, y_test, output_dir)
    report = None
    if _flag("report"):
        report = _report(teacher_path, student_path, output_dir)

    teacher_p50, teacher_runtime, teacher_size = _report_figures(report, "teacher")
    student_p50, student_runtime, student_size = _report_figures(report, "student")
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
        "teacher": _row(
            teacher.count_params(),
            teacher_flops,
            errors["teacher"],
            test_examples,
            teacher_size,
            teacher_p50,
            teacher_runtime,
            teacher_seconds,
        ),
        "student_alone": _row(
            alone.count_params(),
            student_flops,
            errors["alone"],
            test_examples,
            train_seconds=alone_seconds,
        ),
        "student_distilled": _row(
            student.count_params(),
            student_flops,
            errors["student"],
            test_examples,
            student_size,
            student_p50,
            student_runtime,
            distilled_seconds,
        ),
    }
    if int8 is not None:
        accuracy = int8["sidecar"]["accuracy"]["exported"]
        rows["student_distilled_int8"] = _row(
            student.count_params(),
            student_flops,
            round((1.0 - accuracy) * test_examples),
            test_examples,
            int8["sidecar"]["size_bytes"],
            int8["p50_ms"],
            {b: "tflite" for b in int8["p50_ms"]},
        )
    summary = {
        "test_examples": test_examples,
        "train_examples": len(x_train),
        "rows": rows,
        "gap_closed": gap_closed(errors["teacher"], errors["alone"], errors["student"]),
        "recipe": {
            "student": "models.compact.build_compact_student()",
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
            "soft_targets": "cached, teacher on the unaugmented training set",
            "seed": _flag("seed"),
        },
        "teacher_trained": teacher_seconds is not None,
        "latency_note": (
            "teacher and fp32 student timed interleaved by export.report; the "
            "int8 student timed alone by export.to_tflite --measure"
        ),
    }
    summary["wall_time_s"] = time.perf_counter() - started
    summary["goals"] = _goals(summary, report, int8)
    path = os.path.join(output_dir, "summary.json")
    temporary = path + ".partial"
    with open(temporary, "w") as file:
        json.dump(summary, file, indent=2)
    os.replace(temporary, path)

    print()
    print(_format_table(summary))
    print()
    if test_examples != FULL_TEST_SET:
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
    app.run(main)
