"""`Recipe`: the training settings shared by every row of the results table."""

import dataclasses

import keras

from experiments import checks
from experiments import cli

SCHEDULES = ("cosine", "constant")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a model is trained: epochs, optimiser, augmentation, distillation.

    Every student row of the table (alone, kdkeras, keras.distillation,
    ensemble) uses the same recipe; the student alone ignores `temperature`
    and `alpha`.

    Args:
        epochs: Int >= 1, passes over the (augmented) training set.
        batch_size: Int >= 1.
        learning_rate: Adam's (initial) learning rate.
        schedule: `"cosine"` (decay to 0 over the run) or `"constant"`.
        augment: Whether each epoch sees a freshly shifted/mirrored copy of
            the training set (the same copy for teacher and student).
        max_shift: Largest translation in pixels when augmenting.
        flip: Whether augmentation mirrors images left-right.
        augment_seed: Seed of the per-epoch augmentation (shared by all runs
            so cached teacher logits can be reused).
        temperature: Softmax temperature of the soft-target loss.
        alpha: Weight of the hard-label loss (soft targets get `1 - alpha`).

    Example:

    >>> Recipe(epochs=2).describe()
    'Adam 0.001, cosine schedule, 2 epochs, batch 128, shift ±2 px + mirror, T=4, alpha=0.1'
    """

    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 1e-3
    schedule: str = "cosine"
    augment: bool = True
    max_shift: int = 2
    flip: bool = True
    augment_seed: int = 0
    temperature: float = 4.0
    alpha: float = 0.1

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            checks.check_int(name, getattr(self, name), minimum=1)
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"`schedule` must be one of {SCHEDULES}. "
                f"Received: schedule={self.schedule!r}"
            )
        if not self.learning_rate > 0:
            raise ValueError(
                "`learning_rate` must be > 0. "
                f"Received: learning_rate={self.learning_rate!r}"
            )
        if not self.temperature > 0:
            raise ValueError(
                f"`temperature` must be > 0. Received: temperature={self.temperature!r}"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(
                f"`alpha` must be in [0, 1]. Received: alpha={self.alpha!r}"
            )

    def optimizer(self, steps_per_epoch):
        """A fresh Adam optimiser with this recipe's learning-rate schedule."""
        learning_rate = self.learning_rate
        if self.schedule == "cosine":
            learning_rate = keras.optimizers.schedules.CosineDecay(
                self.learning_rate, decay_steps=self.epochs * steps_per_epoch
            )
        return keras.optimizers.Adam(learning_rate)

    def describe(self):
        """A one-line human summary used in RESULTS.md."""
        augmentation = "no augmentation"
        if self.augment:
            augmentation = f"shift ±{self.max_shift} px" + (
                " + mirror" if self.flip else ""
            )
        return (
            f"Adam {self.learning_rate:g}, {self.schedule} schedule, "
            f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}, "
            f"batch {self.batch_size}, {augmentation}, "
            f"T={self.temperature:g}, alpha={self.alpha:g}"
        )


def recipes_from_settings(settings):
    """The student's and the teacher's `Recipe` of an experiment's settings.

    Both take the settings of `cli.RECIPE_SETTINGS`; the student trains for `epochs`,
    the teacher for `teacher_epochs`, with `teacher_augment` and, when the
    experiment has one, `teacher_schedule`.

    Args:
        settings: Dict of setting name -> value (`cli.settings_from_flags`).

    Returns:
        `(student_recipe, teacher_recipe)`.

    Example:

    >>> settings = dict(epochs=3, teacher_epochs=5, teacher_augment=False,
    ...                 temperature=2.0, alpha=0.5, batch_size=64,
    ...                 learning_rate=1e-3, schedule="cosine", augment=True)
    >>> student, teacher = recipes_from_settings(settings)
    >>> student.epochs, teacher.epochs, teacher.augment, student.batch_size
    (3, 5, False, 64)
    """
    common = {name: settings[name] for name in cli.RECIPE_SETTINGS}
    teacher = dict(
        common,
        augment=settings["teacher_augment"],
        schedule=settings.get("teacher_schedule", settings["schedule"]),
    )
    return (
        Recipe(epochs=settings["epochs"], **common),
        Recipe(epochs=settings["teacher_epochs"], **teacher),
    )
