"""The main job, end to end on Fashion-MNIST: `make demo` (python -m examples.demo).

1. Loads Fashion-MNIST (offline from Debian's files when installed).
2. Trains the CNN teacher briefly, or loads it from `--output_dir` if a
   teacher trained with the same settings is already there.
3. Trains the 800-800 MLP student alone, as the baseline.
4. Distils the same student (same initial weights) with `kdkeras.Distiller`
   from cached soft targets: the teacher runs once over the training set
   (`kdkeras.soft_targets`), so each distillation step costs a student step.
5. Prints teacher, student-alone and distilled test accuracy.
6. Exports the distilled student (SavedModel, TFLite, ONNX), then measures
   teacher against student in the sign-off report (`export.report`).
"""

import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "demo_output", "Where models and reports go.")
flags.DEFINE_integer("teacher_epochs", 5, "Epochs of the CNN teacher.")
flags.DEFINE_integer("student_epochs", 5, "Epochs of each student.")
flags.DEFINE_integer("train_examples", None, "Use only the first N training "
                     "examples (default: all 60,000).")
flags.DEFINE_float("temperature", 4.0, "Distillation temperature T.")
flags.DEFINE_float("alpha", 0.1, "Weight of the hard-label loss.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_boolean("report", True, "Export the student and write the "
                     "sign-off report after training.")


def _compiled(model, learning_rate=1e-3):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _teacher(x_train, y_train, output_dir):
    """Loads the cached teacher if its settings match, else trains it."""
    import keras

    import models

    path = os.path.join(output_dir, "teacher.keras")
    settings_path = path + ".json"
    settings = {"epochs": FLAGS.teacher_epochs, "seed": FLAGS.seed,
                "examples": len(x_train), "builder": "build_cnn_teacher"}
    if os.path.exists(path) and os.path.exists(settings_path):
        with open(settings_path) as file:
            if json.load(file) == settings:
                print(f"Loading the cached teacher from {path}")
                return keras.saving.load_model(path, safe_mode=True), 0.0
    keras.utils.set_random_seed(FLAGS.seed)
    teacher = _compiled(models.build_cnn_teacher(seed=FLAGS.seed))
    print(f"Training the CNN teacher ({FLAGS.teacher_epochs} epochs)")
    start = time.perf_counter()
    teacher.fit(x_train, y_train, batch_size=128, epochs=FLAGS.teacher_epochs,
                verbose="auto")
    seconds = time.perf_counter() - start
    temporary = os.path.join(output_dir, ".teacher.partial.keras")
    teacher.save(temporary)
    os.replace(temporary, path)
    with open(settings_path, "w") as file:
        json.dump(settings, file)
    return teacher, seconds


def main(argv):
    del argv
    import keras

    import kdkeras
    import models
    from models import data
    from kdkeras import soft_targets

    os.makedirs(FLAGS.output_dir, exist_ok=True)
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(
        limit_train=FLAGS.train_examples)
    print(f"Fashion-MNIST: {len(x_train)} train, {len(x_test)} test examples")

    teacher, teacher_seconds = _teacher(x_train, y_train, FLAGS.output_dir)

    keras.utils.set_random_seed(FLAGS.seed + 1)
    initial_weights = models.build_mlp_student().get_weights()

    print(f"Training the 800-800 student alone ({FLAGS.student_epochs} epochs)")
    alone = _compiled(models.build_mlp_student())
    alone.set_weights(initial_weights)
    start = time.perf_counter()
    alone.fit(x_train, y_train, batch_size=128, epochs=FLAGS.student_epochs,
              verbose="auto")
    alone_seconds = time.perf_counter() - start

    print(f"Distilling the same student (T={FLAGS.temperature}, "
          f"alpha={FLAGS.alpha}, {FLAGS.student_epochs} epochs)")
    student = models.build_mlp_student()
    student.set_weights(initial_weights)
    distiller = kdkeras.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3),
                      metrics=["accuracy"], alpha=FLAGS.alpha,
                      temperature=FLAGS.temperature)
    start = time.perf_counter()
    teacher_logits = soft_targets.cache_soft_targets(
        teacher, x_train,
        os.path.join(FLAGS.output_dir, "teacher_soft_targets.npz"))
    dataset = soft_targets.soft_target_dataset(
        x_train, y_train, teacher_logits, batch_size=128, seed=FLAGS.seed)
    distiller.fit(dataset, epochs=FLAGS.student_epochs, shuffle=False,
                  verbose="auto")  # the dataset reshuffles every epoch
    distilled_seconds = time.perf_counter() - start

    rows = [
        ("teacher (CNN)", teacher, teacher_seconds),
        ("student alone (800-800 MLP)", alone, alone_seconds),
        ("student distilled (kdkeras)", distiller.student, distilled_seconds),
    ]
    results = {}
    print()
    print(f"{'model':32s} {'params':>10s} {'test acc':>9s} {'errors':>7s} "
          f"{'train s':>8s}")
    for name, model, seconds in rows:
        logits = model.predict(x_test, batch_size=1024, verbose=0)
        accuracy = float((logits.argmax(axis=1) == y_test).mean())
        errors = int(round((1 - accuracy) * len(y_test)))
        results[name] = {"accuracy": accuracy, "errors": errors,
                         "parameters": model.count_params(),
                         "train_seconds": seconds}
        print(f"{name:32s} {model.count_params():10,d} {accuracy:9.4f} "
              f"{errors:7d} {seconds:8.1f}")
    gap = (results[rows[1][0]]["errors"] - results[rows[0][0]]["errors"])
    if gap > 0:
        closed = (results[rows[1][0]]["errors"]
                  - results[rows[2][0]]["errors"]) / gap
        print(f"Distillation closed {closed:.0%} of the student→teacher gap.")

    student_path = os.path.join(FLAGS.output_dir, "student.keras")
    distiller.student.save(student_path)
    with open(os.path.join(FLAGS.output_dir, "demo_results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"Saved {student_path}")

    if FLAGS.report:
        _report(os.path.join(FLAGS.output_dir, "teacher.keras"), student_path)


def _report(teacher_path, student_path):
    """Exports the student and writes the teacher-vs-student report."""
    report_dir = os.path.join(FLAGS.output_dir, "report")
    command = [sys.executable, "-m", "export.report",
               f"--teacher={teacher_path}", f"--student={student_path}",
               f"--output-dir={report_dir}",
               f"--budget={os.path.join(os.path.dirname(__file__), 'budget.yaml')}"]
    print("Running:", " ".join(command))
    completed = subprocess.run(command)
    if completed.returncode == 1:
        sys.exit("The student is over its release budget (examples/budget.yaml): "
                 f"see {report_dir}/report.md")
    if completed.returncode != 0:
        sys.exit(f"export.report failed with exit code {completed.returncode}")
    print(f"Sign-off report: {report_dir}/report.md (and .html, .json)")


if __name__ == "__main__":
    app.run(main)
