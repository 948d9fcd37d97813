"""The teacher and the student runs of the less-data experiment.

Every student run takes `steps` optimizer steps of one `Recipe`'s batch size
and learning-rate schedule, whatever its training set's size, and is
measured on held-out images (the test set, or a validation split) by its
top-1 accuracy and its agreement with the teacher. Keras is imported where
it is used, so a command's bad flag is reported before TensorFlow loads.
"""

import time

import numpy as np

#: The student on every label.
ALL_LABELS = "student alone, all labels"
#: How each student trains at a fraction of the labels.
ALONE = "(a) alone, labelled images"
DISTILLED = "(b) distilled, labelled images"
UNLABELLED_TOO = "(c) distilled, + the other images unlabelled"
HOWS = (ALONE, DISTILLED, UNLABELLED_TOO)
#: The teacher's recipes (`--teacher-recipe`): the demo's (examples/demo.py)
#: and the constant learning rate of the experiment's first runs.
TEACHER_RECIPES = {
    "demo": {"learning_rate": 2e-3, "schedule": "cosine"},
    "constant": {"learning_rate": 1e-3, "schedule": "constant"},
}


def teacher_recipe(name, epochs):
    """The `Recipe` of the CNN teacher named `name` in `TEACHER_RECIPES`.

    Example:

    >>> teacher_recipe("demo", epochs=5).describe()
    'Adam 0.002, cosine schedule, 5 epochs, batch 128, no augmentation, T=4, alpha=0.1'
    """
    from experiments.recipe import Recipe

    if name not in TEACHER_RECIPES:
        raise ValueError(
            f"`teacher_recipe` must be one of {sorted(TEACHER_RECIPES)}. "
            f"Received: teacher_recipe={name!r}"
        )
    return Recipe(epochs=epochs, augment=False, **TEACHER_RECIPES[name])


def describe_teacher(recipe):
    """A teacher `Recipe`'s summary, without the distillation settings.

    Example:

    >>> describe_teacher(teacher_recipe("constant", epochs=5))
    'Adam 0.001, constant schedule, 5 epochs, batch 128, no augmentation'
    """
    return recipe.describe().rsplit(", T=", 1)[0]


#: The settings of the experiment a student run's `Recipe` takes.
STUDENT_SETTINGS = ("batch_size", "learning_rate", "schedule", "temperature", "alpha")


def student_recipe(settings, **overrides):
    """The `Recipe` of every student run: one epoch of `steps` steps.

    `epochs=1` makes a cosine schedule decay over exactly the run's steps
    (`recipe.optimizer(steps)`).

    Args:
        settings: Dict of setting name -> value holding `STUDENT_SETTINGS`
            (those not given in `overrides`).
        **overrides: Values of `STUDENT_SETTINGS` in place of the settings'
            (e.g. a probe's own temperature and alpha).

    Returns:
        The students' `Recipe`, without augmentation.

    Example:

    >>> settings = dict(batch_size=64, learning_rate=1e-3, schedule="cosine",
    ...                 temperature=4.0, alpha=0.1)
    >>> student_recipe(settings, alpha=0.5).describe()
    'Adam 0.001, cosine schedule, 1 epoch, batch 64, no augmentation, T=4, alpha=0.5'
    """
    from experiments.recipe import Recipe

    chosen = {
        name: settings[name] for name in STUDENT_SETTINGS if name not in overrides
    }
    return Recipe(epochs=1, augment=False, **chosen, **overrides)


class StudentRuns:
    """Trains MLP students on a training set and measures them.

    Args:
        train: `(images, labels)` of every training image (labels as ints).
        held: `(images, labels)` the students are measured on.
        teacher: The trained teacher; its logits on both sets are computed
            once here (the teacher does not run during training).
        units: Hidden widths of `models.build_mlp_student`.
    """

    def __init__(self, train, held, teacher, units):
        from experiments import training

        self.images, self.labels = train
        self.held_images, self.held_labels = held
        self.teacher = teacher
        self.units = tuple(units)
        self.logits = training.predict_logits(teacher, self.images)
        self.held_logits = training.predict_logits(teacher, self.held_images)
        self.teacher_predictions = np.argmax(self.held_logits, axis=-1)

    def student(self):
        """A fresh MLP student."""
        import models

        return models.build_mlp_student(hidden_units=self.units)

    def teacher_accuracy(self):
        """The teacher's top-1 accuracy on the held-out images."""
        return float(np.mean(self.teacher_predictions == self.held_labels))

    def train(self, how, labelled, seed, recipe, steps):
        """Trains one student, seeded, and measures it.

        Args:
            how: `ALL_LABELS` (`labelled` is ignored) or one of `HOWS`.
            labelled: Indices of the training images keeping their labels.
            seed: Int seeding the weights and the batches' order.
            recipe: The students' `Recipe`.
            steps: Int, optimizer steps.

        Returns:
            `(accuracy, agreement, seconds)`: top-1 accuracy and agreement
            with the teacher on the held-out images, seconds in `fit`.
        """
        import keras

        from experiments import training
        from experiments.less_data import subsets as less_data_subsets

        keras.utils.set_random_seed(seed)
        if how == ALL_LABELS:
            model, seconds = self._alone(None, seed, recipe, steps)
        elif how == ALONE:
            model, seconds = self._alone(labelled, seed, recipe, steps)
        elif how == DISTILLED:
            model, seconds = self._distilled(labelled, self.labels, seed, recipe, steps)
        elif how == UNLABELLED_TOO:
            marked = less_data_subsets.partly_labelled(self.labels, labelled)
            model, seconds = self._distilled(None, marked, seed, recipe, steps)
        else:
            raise ValueError(
                f"`how` must be one of {(ALL_LABELS, *HOWS)}. Received: how={how!r}"
            )
        predictions = np.argmax(
            training.predict_logits(model, self.held_images), axis=-1
        )
        return (
            float(np.mean(predictions == self.held_labels)),
            float(np.mean(predictions == self.teacher_predictions)),
            seconds,
        )

    def _dataset(self, indices, labels, seed, recipe):
        """Shuffled batches of the training images at `indices` (None: all)."""
        from kdkeras import soft_target_dataset

        if indices is None:
            images, targets, logits = self.images, labels, self.logits
        else:
            images = self.images[indices]
            targets, logits = labels[indices], self.logits[indices]
        return soft_target_dataset(
            images, targets, logits, batch_size=recipe.batch_size, seed=seed
        )

    def _alone(self, indices, seed, recipe, steps):
        import keras

        model = self.student()
        model.compile(
            optimizer=recipe.optimizer(steps),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        dataset = self._dataset(indices, self.labels, seed, recipe).map(
            _hard_labels_only
        )
        return model, _fit_steps(model, dataset, steps)

    def _distilled(self, indices, labels, seed, recipe, steps):
        import keras

        from kdkeras import Distiller

        distiller = Distiller(student=self.student(), teacher=self.teacher)
        distiller.compile(
            optimizer=recipe.optimizer(steps),
            student_loss_fn=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True
            ),
            alpha=recipe.alpha,
            temperature=recipe.temperature,
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
        seconds = _fit_steps(
            distiller, self._dataset(indices, labels, seed, recipe), steps
        )
        self._check_distiller_metrics(distiller)
        return distiller.student, seconds

    def _check_distiller_metrics(self, distiller):
        """The Distiller's metrics must match NumPy's on the held-out images."""
        from experiments import training
        from kdkeras import soft_target_dataset

        logs = distiller.evaluate(
            soft_target_dataset(
                self.held_images,
                self.held_labels,
                self.held_logits,
                batch_size=1024,
                shuffle=False,
            ),
            verbose=0,
            return_dict=True,
        )
        predictions = np.argmax(
            training.predict_logits(distiller.student, self.held_images), axis=-1
        )
        expected = {
            "accuracy": np.mean(predictions == self.held_labels),
            "teacher_agreement": np.mean(predictions == self.teacher_predictions),
        }
        for name, value in expected.items():
            if abs(float(logs[name]) - value) > 1e-6:
                raise RuntimeError(
                    f"Distiller.evaluate reports {name}={float(logs[name])} on "
                    f"the held-out images, NumPy {value}."
                )


def _hard_labels_only(images, targets):
    """A soft-target dataset's element with its labels alone."""
    from kdkeras.targets import split_targets

    return images, split_targets(targets)[0]


def _fit_steps(model, dataset, steps):
    """Fits `steps` optimizer steps on the repeated dataset; returns seconds."""
    start = time.perf_counter()
    model.fit(dataset.repeat(), epochs=1, steps_per_epoch=steps, verbose=0)
    return time.perf_counter() - start
