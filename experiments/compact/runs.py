"""The runs behind the compact-students table: who trains, how, and int8.

`run` trains (or loads) the CNN teachers and their ensemble
(`table_runs.train_teachers`), then, for every seed and every compact
student of `settings["students"]` (`STUDENTS`), trains the student from the
same initial weights in each way of `METHODS`: alone, distilled with
`kdkeras.Distiller` (cached soft targets with KD, DKD or DIST; online with
consistent augmentation), with `keras.distillation.Distiller`, and from the
ensemble. Each trained student is quantised to int8 TFLite
(`export.to_tflite.export_tflite`, calibrated on training images) and its
int8 test errors are counted. It returns one `table_runs.Row` per line.
"""

import dataclasses
import os
import tempfile

from experiments.table import runs as table_runs
from experiments.table.runs import ROW_ENSEMBLE
from experiments.table.runs import ROW_TEACHER
from experiments.table.runs import Row

#: Training images calibrating each int8 export.
CALIBRATION_EXAMPLES = 1000


@dataclasses.dataclass(frozen=True)
class StudentKind:
    """A compact student of the table: its label, builder and compilation."""

    label: str  # e.g. "MLP 784-100-10", starts the student's row names
    builder: str  # the `models` function, in row descriptions
    build: object  # callable () -> keras.Model
    # XLA for training alone: on for dense layers, off for convolutions
    # (slower under XLA on CPU, `kdkeras._step.xla`).
    jit_compile: bool


def _build_mlp():
    import models

    return models.build_compact_student()


def _build_cnn():
    import models

    return models.build_compact_cnn_student()


STUDENTS = {
    "mlp": StudentKind(
        "MLP 784-100-10", "`models.build_compact_student()`", _build_mlp, True
    ),
    "cnn": StudentKind(
        "CNN 16-32",
        "`models.build_compact_cnn_student()` (strided conv 16, conv 32)",
        _build_cnn,
        False,
    ),
}


@dataclasses.dataclass(frozen=True)
class Method:
    """One way of training a student: a row suffix, its text, its teacher."""

    key: str  # its `--methods` name
    name: str  # the row name after the student's label
    description: str
    teacher: str  # ROW_TEACHER, ROW_ENSEMBLE, or "" for the student alone
    online: bool = False  # the teacher runs per batch
    loss: str = "kd"  # "kd", "dkd" or "dist"
    keras_distillation: bool = False


METHOD_ALONE = Method("alone", "alone", "labels only", "")
#: The baseline of the online rows: labels only, on the images they see.
METHOD_ALONE_ONLINE = Method(
    "alone-online",
    "alone, augmented online",
    "labels only, each batch shifted and mirrored afresh as the online rows' "
    "(`experiments.training.train_classifier_online`)",
    "",
    online=True,
)
METHODS = (
    METHOD_ALONE,
    METHOD_ALONE_ONLINE,
    Method("kd", "kdkeras, KD, cached", "KD, cached soft targets", ROW_TEACHER),
    Method(
        "kd-online",
        "kdkeras, KD, online",
        "KD, teacher run per batch in the input pipeline "
        "(`kdkeras.online_soft_target_dataset`), on the images the student sees",
        ROW_TEACHER,
        online=True,
    ),
    Method(
        "dkd",
        "kdkeras, DKD, cached",
        "`kdkeras.DKD(alpha=1, beta=8)`, cached soft targets",
        ROW_TEACHER,
        loss="dkd",
    ),
    Method(
        "dist",
        "kdkeras, DIST, cached",
        "`kdkeras.DIST()`, cached soft targets",
        ROW_TEACHER,
        loss="dist",
    ),
    Method(
        "keras",
        "keras.distillation",
        "`keras.distillation.Distiller`, `LogitsDistillation(T, "
        "KLDivergence())`, teacher run per batch",
        ROW_TEACHER,
        keras_distillation=True,
    ),
    Method(
        "kd-ensemble",
        "kdkeras, KD, cached, ensemble",
        "KD, ensemble teacher, cached soft targets",
        ROW_ENSEMBLE,
    ),
    Method(
        "dist-ensemble",
        "kdkeras, DIST, cached, ensemble",
        "`kdkeras.DIST()`, ensemble teacher, cached soft targets",
        ROW_ENSEMBLE,
        loss="dist",
    ),
)
#: `--methods` names: every method but the students alone, which run with
#: the rows they are the baseline of.
METHOD_NAMES = tuple(method.key for method in METHODS[2:])


def row_name(kind, method):
    """The table's name of `method`'s row for the student `kind`.

    Example:

    >>> row_name(STUDENTS["mlp"], METHOD_ALONE)
    'MLP 784-100-10: alone'
    """
    return f"{kind.label}: {method.name}"


def distillation_loss(method, temperature):
    """The `distillation_loss_fn` of `method` (None: `kdkeras.kd_loss`)."""
    import kdkeras

    if method.loss == "dkd":
        return kdkeras.DKD(temperature=temperature)
    if method.loss == "dist":
        return kdkeras.DIST(temperature=temperature)
    return None


def int8_figures(student, calibration, test, directory, batch_size=1000):
    """The int8 TFLite file size and test errors of `student`.

    The file is written by `export.to_tflite.export_tflite` (which checks
    its outputs' relative error against Keras) and run on the LiteRT
    interpreter (`export.runtimes.TFLiteRuntime`) over the test images: the
    errors and the top-1 agreement are measured, never held against a
    threshold.

    Args:
        student: A trained `keras.Model`.
        calibration: Training images calibrating the activation ranges.
        test: `(x_test, y_test)`.
        directory: Where the `.tflite` file is written.
        batch_size: Images per interpreter call.

    Returns:
        `(size_bytes, errors)`.
    """
    import numpy as np

    from export import runtimes
    from export import to_tflite

    result = to_tflite.export_tflite(
        student,
        os.path.join(directory, "student_int8.tflite"),
        quantize="int8",
        representative_data=calibration,
        overwrite=True,
        min_agreement=0.0,  # measured below, not gated (barely trained
        # students of `--quick` disagree on near-tied logits)
    )
    runtime = runtimes.TFLiteRuntime(result.path)
    x_test, y_test = test
    errors = 0
    for start in range(0, len(x_test), batch_size):
        logits = runtime.predict(x_test[start : start + batch_size])
        errors += int(
            np.sum(np.argmax(logits, axis=-1) != y_test[start : start + batch_size])
        )
    return int(result.sidecar["size_bytes"]), errors


def _train(method, kind, student, data, setup, recipe, seed):
    from experiments import training

    (x_train, y_train), _ = data
    if method is METHOD_ALONE:
        return training.train_classifier(
            student, x_train, y_train, recipe, seed, jit_compile=kind.jit_compile
        )
    if method is METHOD_ALONE_ONLINE:
        return training.train_classifier_online(
            student, x_train, y_train, recipe, seed, jit_compile=kind.jit_compile
        )
    ensemble = method.teacher == ROW_ENSEMBLE
    teacher = setup.ensemble if ensemble else setup.teacher
    if method.keras_distillation:
        return training.distill_with_keras(
            student, teacher, x_train, y_train, recipe, seed
        )
    loss = distillation_loss(method, recipe.temperature)
    if method.online:
        return training.distill_online(
            student, teacher, x_train, y_train, recipe, seed, distillation_loss_fn=loss
        )
    return training.distill_with_kdkeras(
        student,
        teacher,
        x_train,
        y_train,
        setup.ensemble_logits if ensemble else setup.logits,
        recipe,
        seed,
        distillation_loss_fn=loss,
    )


def run(settings, log=print, on_seed=None):
    """Trains everything; returns `(rows, info)` for `experiments.compact`.

    Args:
        settings: Dict of the flag values (`experiments.compact.cli.SETTINGS`).
        log: Callable receiving progress messages.
        on_seed: Optional callable `(rows, info)` called after each seed.
    """
    import keras

    import models
    from experiments import recipe
    from experiments import training
    from models import data

    train, test = data.load_fashion_mnist(
        settings["limit_train"], settings["limit_test"]
    )
    student_recipe, teacher_recipe = recipe.recipes_from_settings(settings)
    settings = dict(settings, teacher="cnn", ensemble_mean="arithmetic")
    methods = [METHOD_ALONE] + [m for m in METHODS[2:] if m.key in settings["methods"]]
    if any(method.online and method.teacher for method in methods):
        methods.insert(1, METHOD_ALONE_ONLINE)  # the online rows' baseline
    # Only what the methods need: the ensemble's other members are trained
    # (or loaded) only when a student learns from the ensemble.
    setup = table_runs.train_teachers(
        settings,
        teacher_recipe,
        student_recipe,
        train,
        test,
        log,
        ensemble=any(method.teacher == ROW_ENSEMBLE for method in methods),
    )
    rows = setup.rows
    rows[ROW_TEACHER].flops = models.count_flops(setup.teacher)
    if setup.ensemble is not None:
        rows[ROW_ENSEMBLE].flops = sum(
            models.count_flops(member) for member in setup.ensemble.members
        )
    kinds = [STUDENTS[name] for name in settings["students"]]
    for kind in kinds:
        student = kind.build()
        for method in methods:
            name = row_name(kind, method)
            rows[name] = Row(
                name,
                f"{kind.builder}, {method.description}",
                student.count_params(),
                teacher=method.teacher,
                alone=row_name(
                    kind, METHOD_ALONE_ONLINE if method.online else METHOD_ALONE
                ),
                flops=models.count_flops(student),
            )
    info = setup.info(
        settings, len(train[0]), len(test[0]), (student_recipe, teacher_recipe)
    )
    calibration = train[0][:CALIBRATION_EXAMPLES]
    with tempfile.TemporaryDirectory(prefix="kdkeras-compact-") as scratch:
        for seed in settings["seeds"]:
            for kind in kinds:
                for method in methods:
                    keras.utils.set_random_seed(seed)
                    student = kind.build()  # the same weights for every method
                    seconds = _train(
                        method,
                        kind,
                        student,
                        (train, test),
                        setup,
                        student_recipe,
                        seed,
                    )
                    row = rows[row_name(kind, method)]
                    row.errors.append(training.count_errors(student, *test))
                    row.seconds.append(seconds)
                    message = f"{row.errors[-1]} errors, {seconds:.0f} s"
                    if settings["int8"]:
                        row.int8_bytes, errors = int8_figures(
                            student, calibration, test, scratch
                        )
                        row.int8_errors.append(errors)
                        message += f", int8 {errors} errors"
                    log(f"seed {seed}: {row.name}: {message}")
            if on_seed is not None:
                done = settings["seeds"][: settings["seeds"].index(seed) + 1]
                on_seed(list(rows.values()), dict(info, seeds=done))
    return list(rows.values()), info
