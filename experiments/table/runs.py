"""The runs behind the results table: teachers, students, distilled students.

`run` trains, in one process and with one recipe, a teacher (`TEACHERS`), an
ensemble of such teachers, the 800-800 MLP student alone, distilled with
`kdkeras.Distiller`, with `keras.distillation.Distiller`, and from the
ensemble; it returns one `Row` per line of the table (`ROW_NAMES`).
"""

import dataclasses
import os
import statistics
import time

ROW_TEACHER = "Teacher"
ROW_ENSEMBLE = "Teacher: ensemble"
ROW_ALONE = "Student alone"
ROW_KDKERAS = "Student, kdkeras.Distiller"
ROW_KERAS = "Student, keras.distillation.Distiller"
ROW_KDKERAS_ENSEMBLE = "Student, kdkeras.Distiller, ensemble teacher"
ROW_NAMES = (
    ROW_TEACHER,
    ROW_ENSEMBLE,
    ROW_ALONE,
    ROW_KDKERAS,
    ROW_KERAS,
    ROW_KDKERAS_ENSEMBLE,
)


@dataclasses.dataclass(frozen=True)
class TeacherKind:
    """How the table builds and names one kind of teacher."""

    label: str  # e.g. "CNN", in row descriptions
    builder: str  # the `models` function, in row descriptions
    build: object  # callable (seed, name) -> keras.Model
    # XLA for its training. Off for both: on CPU, XLA convolutions and XLA's
    # dropout random draws are slower than TensorFlow's kernels (`kdkeras._step.xla`).
    jit_compile: bool
    cache_name: str  # names the trained teachers in --cache-dir


def _build_cnn(seed, name):
    import models

    return models.build_cnn_teacher(seed=seed, name=name)


def _build_mlp(seed, name):
    import models

    return models.build_mlp_teacher(
        input_dropout=0.1, hidden_dropout=0.3, jitter_pixels=0, seed=seed, name=name
    )


TEACHERS = {
    "cnn": TeacherKind(
        "CNN", "`models.build_cnn_teacher()`", _build_cnn, False, "cnn_teacher"
    ),
    # The paper's teacher with lighter dropout (0.1/0.3, not 0.2/0.5) and no
    # jitter, which made fewer test errors here (RESULTS.md).
    "mlp": TeacherKind(
        "MLP 1200-1200",
        "`models.build_mlp_teacher(input_dropout=0.1, hidden_dropout=0.3, "
        "jitter_pixels=0)` (784-1200-1200-10)",
        _build_mlp,
        False,
        "mlp_teacher_d0.1-0.3",
    ),
}


#: The fields of a `Row` that hold one value per seed.
PER_SEED_FIELDS = ("errors", "seconds", "int8_errors")


@dataclasses.dataclass
class Row:
    """One line of a table: errors and seconds over seeds.

    `flops`, `int8_bytes` and `int8_errors` (the int8 TFLite student's test
    errors per seed) are filled by the tables that export their students.
    """

    name: str
    description: str
    parameters: int
    errors: list = dataclasses.field(default_factory=list)
    seconds: list = dataclasses.field(default_factory=list)
    teacher: str = ""  # name of the row whose errors define the gap
    alone: str = ROW_ALONE  # name of the row of the student trained alone
    flops: int = None
    int8_bytes: int = None
    int8_errors: list = dataclasses.field(default_factory=list)

    @property
    def mean_errors(self):
        return statistics.fmean(self.errors)


@dataclasses.dataclass
class Teachers:
    """The trained teachers of a table, their rows and their soft targets.

    `logits` and `ensemble_logits` hold one array per student epoch (the
    teacher's logits on that epoch's images), or None when no seed trains
    in this process.
    """

    teacher: object
    ensemble: object
    rows: dict
    logits: list
    ensemble_logits: list
    single_cache_seconds: float
    cache_seconds: float
    cached: bool
    label: str  # the teachers' kind, e.g. "CNN"

    def info(self, settings, train_size, test_size, recipes):
        """The `info` a table's `run` returns: data, recipes, seeds, caches.

        Args:
            settings: The run's settings (`seeds`).
            train_size: Int, training examples.
            test_size: Int, test examples.
            recipes: `(student_recipe, teacher_recipe)`.
        """
        return {
            "train_size": train_size,
            "test_size": test_size,
            "student_recipe": recipes[0],
            "teacher_recipe": recipes[1],
            "seeds": settings["seeds"],
            "all_seeds": settings["seeds"],
            "single_cache_seconds": self.single_cache_seconds,
            "cache_seconds": self.cache_seconds,
            "teachers_cached": self.cached,
            "teacher_label": self.label,
        }


def train_teachers(
    settings, teacher_recipe, student_recipe, train, test, log, ensemble=True
):
    """Trains (or loads) the teachers and caches their soft targets.

    Member 0 is "the" teacher; the ensemble (`kdkeras.teachers.Ensemble`,
    `settings["ensemble_size"]` members of `TEACHERS[settings["teacher"]]`,
    seeds 0, 1, ...) adds the others. Each is loaded from
    `settings["cache_dir"]` when a teacher trained with the same recipe is
    there; member 0 from `settings["teacher_file"]` when given. With
    `ensemble=False` (no student learns from it) only member 0 is trained
    or loaded, and the ensemble, its row and its soft targets are None.

    Args:
        settings: Dict of the flag values (`teacher`, `ensemble_size`,
            `ensemble_mean`, `cache_dir`, `seeds`, optional `teacher_file`).
        teacher_recipe: The teachers' `Recipe`.
        student_recipe: The students' `Recipe` (its epochs' images get soft
            targets).
        train: `(x_train, y_train)`.
        test: `(x_test, y_test)`.
        log: Callable receiving progress messages.
        ensemble: Whether to build the ensemble.

    Returns:
        A `Teachers`.
    """
    import keras
    import numpy as np

    from experiments import training
    from kdkeras import teachers

    (x_train, y_train), (x_test, y_test) = train, test
    # Teachers: member 0 is "the" teacher; the ensemble adds the others.
    kind = TEACHERS[settings["teacher"]]
    members, teacher_seconds = [], []
    teacher_file = settings.get("teacher_file")
    if teacher_file and not os.path.isfile(teacher_file):
        raise ValueError(
            "`--teacher-file` must be an existing .keras file. "
            f"Received: --teacher-file={teacher_file}"
        )
    for index in range(settings["ensemble_size"] if ensemble else 1):
        path = training.teacher_cache_path(
            settings["cache_dir"],
            kind.cache_name,
            index,
            teacher_recipe,
            len(x_train),
        )
        if index == 0 and teacher_file:
            path = teacher_file  # loaded, never written
        if path and os.path.isfile(path):
            log(f"teacher {index}: loading {path}")
        else:
            log(f"teacher {index}: training ({teacher_recipe.epochs} epochs)")
        model, seconds = training.cached_teacher(
            path,
            lambda index=index: kind.build(
                index, f"{settings['teacher']}_teacher_{index}"
            ),
            lambda model, index=index: training.train_classifier(
                model,
                x_train,
                y_train,
                teacher_recipe,
                seed=index,
                jit_compile=kind.jit_compile,
            ),
        )
        members.append(model)
        teacher_seconds.append(seconds)
    teacher = members[0]
    if ensemble:
        ensemble = teachers.Ensemble(members, mean=settings["ensemble_mean"])
        # The ensemble's soft targets below combine cached member logits with
        # the Ensemble's own EnsembleMean layer; check that equals the model.
        member_test_logits = [
            training.predict_logits(member, x_test) for member in members
        ]
        combined = keras.ops.convert_to_numpy(
            teachers.EnsembleMean(settings["ensemble_mean"])(member_test_logits)
        )
        if not np.allclose(
            combined, training.predict_logits(ensemble, x_test), atol=1e-4
        ):
            raise RuntimeError(
                "Ensemble outputs differ from EnsembleMean of its members' logits."
            )
    else:
        ensemble = None

    rows = {
        ROW_TEACHER: Row(
            ROW_TEACHER,
            f"{kind.label}: {kind.builder}, seed 0"
            + (f", loaded from `{teacher_file}`" if teacher_file else ""),
            teacher.count_params(),
            [training.count_errors(teacher, x_test, y_test)],
            [s for s in teacher_seconds[:1] if s is not None],
        ),
    }
    if ensemble is not None:
        rows[ROW_ENSEMBLE] = Row(
            ROW_ENSEMBLE,
            f"`kdkeras.teachers.Ensemble`, {len(members)} {kind.label} teachers "
            f"(seeds 0–{len(members) - 1}), {settings['ensemble_mean']} mean",
            ensemble.count_params(),
            [training.count_errors(ensemble, x_test, y_test)],
            [sum(s for s in teacher_seconds if s is not None)]
            if all(s is not None for s in teacher_seconds)
            else [],
        )
        log(f"ensemble errors {rows[ROW_ENSEMBLE].errors[0]}")
    log(f"teacher errors {rows[ROW_TEACHER].errors[0]}")

    # Soft targets on every epoch's augmented images, computed once (not
    # here when no seed trains: `run_parallel`'s workers compute their own).
    teacher_logits = ensemble_logits = None
    single_cache_seconds = cache_seconds = 0.0
    if settings["seeds"]:
        start = time.perf_counter()
        teacher_logits = training.teacher_logits_by_epoch(
            teacher, x_train, student_recipe
        )
        single_cache_seconds = time.perf_counter() - start
        if ensemble is not None:
            member_logits = [teacher_logits] + [
                training.teacher_logits_by_epoch(member, x_train, student_recipe)
                for member in members[1:]
            ]
            mean_layer = teachers.EnsembleMean(settings["ensemble_mean"])
            ensemble_logits = [
                keras.ops.convert_to_numpy(
                    mean_layer([logits[epoch] for logits in member_logits])
                )
                for epoch in range(student_recipe.epochs)
            ]
        cache_seconds = time.perf_counter() - start

    return Teachers(
        teacher,
        ensemble,
        rows,
        teacher_logits,
        ensemble_logits,
        single_cache_seconds,
        cache_seconds,
        any(s is None for s in teacher_seconds),
        kind.label,
    )


def run(settings, log=print, on_seed=None):
    """Trains everything; returns `(rows, info)` for `table_markdown`.

    Args:
        settings: Dict of the flag values (see `SETTINGS`).
        log: Callable receiving progress messages.
        on_seed: Optional callable `(rows, info)` called after each seed
            (e.g. to write partial results).
    """
    import keras

    import models
    from experiments import recipe
    from experiments import training
    from models import data

    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(
        settings["limit_train"], settings["limit_test"]
    )
    student_recipe, teacher_recipe = recipe.recipes_from_settings(settings)

    setup = train_teachers(
        settings,
        teacher_recipe,
        student_recipe,
        (x_train, y_train),
        (x_test, y_test),
        log,
    )
    kind = TEACHERS[settings["teacher"]]
    teacher, ensemble, rows = setup.teacher, setup.ensemble, setup.rows
    teacher_logits, ensemble_logits = setup.logits, setup.ensemble_logits

    student_parameters = models.build_mlp_student().count_params()
    description = "`models.build_mlp_student()` (784-800-800-10)"
    rows[ROW_ALONE] = Row(ROW_ALONE, description + ", labels only", student_parameters)
    rows[ROW_KDKERAS] = Row(
        ROW_KDKERAS,
        description + f", {kind.label} teacher, cached soft targets",
        student_parameters,
        teacher=ROW_TEACHER,
    )
    rows[ROW_KERAS] = Row(
        ROW_KERAS,
        description + f", {kind.label} teacher, `LogitsDistillation(T, "
        "KLDivergence())`, teacher run per batch",
        student_parameters,
        teacher=ROW_TEACHER,
    )
    rows[ROW_KDKERAS_ENSEMBLE] = Row(
        ROW_KDKERAS_ENSEMBLE,
        description + ", ensemble teacher, cached soft targets",
        student_parameters,
        teacher=ROW_ENSEMBLE,
    )
    info = setup.info(
        settings, len(x_train), len(x_test), (student_recipe, teacher_recipe)
    )
    for seed in settings["seeds"]:
        runs = (
            (
                ROW_ALONE,
                lambda student, seed=seed: training.train_classifier(
                    student, x_train, y_train, student_recipe, seed, jit_compile=True
                ),
            ),
            (
                ROW_KDKERAS,
                lambda student, seed=seed: training.distill_with_kdkeras(
                    student,
                    teacher,
                    x_train,
                    y_train,
                    teacher_logits,
                    student_recipe,
                    seed,
                ),
            ),
            (
                ROW_KERAS,
                lambda student, seed=seed: training.distill_with_keras(
                    student, teacher, x_train, y_train, student_recipe, seed
                ),
            ),
            (
                ROW_KDKERAS_ENSEMBLE,
                lambda student, seed=seed: training.distill_with_kdkeras(
                    student,
                    ensemble,
                    x_train,
                    y_train,
                    ensemble_logits,
                    student_recipe,
                    seed,
                ),
            ),
        )
        for name, train in runs:
            keras.utils.set_random_seed(seed)
            student = models.build_mlp_student()
            seconds = train(student)
            errors = training.count_errors(student, x_test, y_test)
            rows[name].errors.append(errors)
            rows[name].seconds.append(seconds)
            log(f"seed {seed}: {name}: {errors} errors, {seconds:.0f} s")
        if on_seed is not None:
            done = settings["seeds"][: len(rows[ROW_ALONE].errors)]
            on_seed([rows[name] for name in ROW_NAMES], dict(info, seeds=done))

    return [rows[name] for name in ROW_NAMES], info
