"""Training runs behind the results table: teachers, students, distillation.

Each run is seeded (`keras.utils.set_random_seed`), trains for
`recipe.epochs` epochs on per-epoch augmented copies of the training set
(`augment.epoch_images`, identical for every run), and returns the wall time
of its `fit` calls.
"""

import math
import os
import time

import keras
import numpy as np

from experiments import augment
from kdkeras import distiller as distiller_lib
from kdkeras import targets as targets_lib


def _sparse_crossentropy():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def training_images(images, recipe, epoch):
    """The images of `epoch`: augmented when the recipe says so."""
    if not recipe.augment:
        return images
    return augment.epoch_images(
        images, epoch, recipe.augment_seed, recipe.max_shift, recipe.flip
    )


def _steps_per_epoch(images, recipe):
    return math.ceil(len(images) / recipe.batch_size)


def _fit_epochs(model, images, targets_of_epoch, recipe, verbose):
    """Fits one epoch at a time on that epoch's images; returns seconds."""
    seconds = 0.0
    for epoch in range(recipe.epochs):
        epoch_images = training_images(images, recipe, epoch)
        targets = targets_of_epoch(epoch)
        start = time.perf_counter()
        model.fit(
            epoch_images,
            targets,
            batch_size=recipe.batch_size,
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=True,
            verbose=verbose,
        )
        seconds += time.perf_counter() - start
    return seconds


def _compile_classifier(model, images, recipe, seed, jit_compile):
    """Seeds, then compiles `model` for hard-label cross-entropy on `recipe`."""
    keras.utils.set_random_seed(seed)
    model.compile(
        optimizer=recipe.optimizer(_steps_per_epoch(images, recipe)),
        loss=_sparse_crossentropy(),
        jit_compile=jit_compile,
    )


def train_classifier(model, images, labels, recipe, seed, jit_compile, verbose=0):
    """Trains `model` (logits) on hard labels with cross-entropy.

    Args:
        model: A fresh `keras.Model` outputting logits.
        images: Training images `(N, 28, 28, 1)`.
        labels: Int labels `(N,)`.
        recipe: A `Recipe`.
        seed: Int seeding shuffling (and dropout draws).
        jit_compile: Passed to `compile` (XLA convolutions are slow on CPU).
        verbose: Keras verbosity.

    Returns:
        Seconds spent in `fit`.
    """
    _compile_classifier(model, images, recipe, seed, jit_compile)
    return _fit_epochs(model, images, lambda epoch: labels, recipe, verbose)


def predict_logits(model, images, batch_size=1024):
    """Inference-mode logits as float32 NumPy."""
    return np.asarray(
        model.predict(images, batch_size=batch_size, verbose=0), "float32"
    )


def teacher_logits_by_epoch(teacher, images, recipe):
    """The teacher's logits on every epoch's (augmented) training images.

    Returns:
        A list of `recipe.epochs` arrays `(N, classes)` (the same array
        repeated when the recipe does not augment).
    """
    if not recipe.augment:
        return [predict_logits(teacher, images)] * recipe.epochs
    return [
        predict_logits(teacher, training_images(images, recipe, epoch))
        for epoch in range(recipe.epochs)
    ]


def _compiled_distiller(student, teacher, images, recipe, distillation_loss_fn):
    distiller = distiller_lib.Distiller(student=student, teacher=teacher)
    loss = {"temperature": recipe.temperature}
    if distillation_loss_fn is not None:
        loss = {"distillation_loss_fn": distillation_loss_fn}
    distiller.compile(
        optimizer=recipe.optimizer(_steps_per_epoch(images, recipe)),
        student_loss_fn=_sparse_crossentropy(),
        alpha=recipe.alpha,
        **loss,
    )
    return distiller


def distill_with_kdkeras(
    student,
    teacher,
    images,
    labels,
    logits_by_epoch,
    recipe,
    seed,
    verbose=0,
    distillation_loss_fn=None,
):
    """Distils with `kdkeras.Distiller` from cached soft targets.

    The teacher's logits on each epoch's images were computed once
    (`teacher_logits_by_epoch`) and are fed as
    `{"labels": y, "teacher_logits": t}`, so the teacher does not run here.

    Args:
        distillation_loss_fn: None for `kdkeras.kd_loss` at the recipe's
            temperature, else a soft-target loss such as `kdkeras.DIST`
            (which carries its own temperature).

    Returns:
        Seconds spent in `fit`.
    """
    keras.utils.set_random_seed(seed)
    distiller = _compiled_distiller(
        student, teacher, images, recipe, distillation_loss_fn
    )
    return _fit_epochs(
        distiller,
        images,
        lambda epoch: {
            targets_lib.LABELS_KEY: labels,
            targets_lib.TEACHER_LOGITS_KEY: logits_by_epoch[epoch],
        },
        recipe,
        verbose,
    )


def shift_and_flip_layer(recipe, seed):
    """The recipe's shift (whole pixels, zero fill) and mirror as a layer.

    The in-graph counterpart of `augment.shift_and_flip`, for pipelines
    that augment each batch as it is drawn (`distill_online`).
    """
    layers = [
        keras.layers.RandomTranslation(
            recipe.max_shift / 28,
            recipe.max_shift / 28,
            fill_mode="constant",
            interpolation="nearest",
            seed=seed,
        )
    ]
    if recipe.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 1))
    return keras.Sequential(layers, name="shift_and_flip")


def train_classifier_online(
    model, images, labels, recipe, seed, jit_compile, verbose=0
):
    """Trains `model` on hard labels, each batch shifted and mirrored afresh.

    The baseline of `distill_online`: the same augmentation layer
    (`shift_and_flip_layer(recipe, seed)`, a fresh draw every step), the same
    batch size, schedule and epochs, and no teacher.

    Returns:
        Seconds spent in `fit`.
    """
    import tensorflow as tf

    _compile_classifier(model, images, recipe, seed, jit_compile)
    augmentation = shift_and_flip_layer(recipe, seed)
    dataset = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        .batch(recipe.batch_size)
        .map(lambda x, y: (augmentation(x, training=True), y))
        .prefetch(tf.data.AUTOTUNE)
    )
    start = time.perf_counter()
    model.fit(dataset, epochs=recipe.epochs, verbose=verbose)
    return time.perf_counter() - start


def distill_online(
    student, teacher, images, labels, recipe, seed, verbose=0, distillation_loss_fn=None
):
    """Distils with the teacher run per batch on the augmented batch.

    `kdkeras.online_soft_target_dataset` draws each batch, shifts and
    mirrors it (`shift_and_flip_layer`, a fresh draw every step) and runs
    the teacher on exactly those images in the input pipeline (consistent
    augmentation), so the student never sees the same image twice.

    Returns:
        Seconds spent in `fit`.
    """
    keras.utils.set_random_seed(seed)
    distiller = _compiled_distiller(
        student, teacher, images, recipe, distillation_loss_fn
    )
    dataset = targets_lib.online_soft_target_dataset(
        images,
        labels,
        teacher,
        batch_size=recipe.batch_size,
        seed=seed,
        augmentation=shift_and_flip_layer(recipe, seed),
    )
    start = time.perf_counter()
    distiller.fit(dataset, epochs=recipe.epochs, verbose=verbose)
    return time.perf_counter() - start


def distill_with_keras(student, teacher, images, labels, recipe, seed, verbose=0):
    """Distils with `keras.distillation.Distiller`, configured correctly.

    `LogitsDistillation(temperature=T, loss=keras.losses.KLDivergence())`:
    the `KLDivergence` *instance* makes Keras apply the softmax at
    temperature `T` and the `T²` factor (its default `"kl_divergence"`
    string skips both). The student loss is a from-logits cross-entropy
    instance (the string would treat logits as probabilities), weighted by
    `student_loss_weight=alpha`. The teacher runs on every batch.

    Returns:
        Seconds spent in `fit`.
    """
    keras.utils.set_random_seed(seed)
    distiller = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=recipe.temperature, loss=keras.losses.KLDivergence()
        ),
        student_loss_weight=recipe.alpha,
    )
    distiller.compile(
        optimizer=recipe.optimizer(_steps_per_epoch(images, recipe)),
        loss=_sparse_crossentropy(),
    )
    return _fit_epochs(distiller, images, lambda epoch: labels, recipe, verbose)


def count_errors(model, images, labels):
    """Number of misclassified examples (argmax of the logits)."""
    predictions = np.argmax(predict_logits(model, images), axis=-1)
    return int(np.sum(predictions != np.asarray(labels)))


def cached_teacher(path, build, train):
    """Loads a trained teacher from `path`, or builds, trains and saves it.

    The file is written beside `path` and moved into place once complete;
    it is loaded with `safe_mode=True`.

    Args:
        path: A `.keras` file path, or None for no caching.
        build: Callable returning the fresh model.
        train: Callable training the model in place; returns seconds.

    Returns:
        `(model, seconds)`: seconds is None when loaded from the cache.
    """
    if path and os.path.exists(path):
        return keras.saving.load_model(path, safe_mode=True), None
    model = build()
    seconds = train(model)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        temporary = path + ".partial.keras"
        model.save(temporary)
        os.replace(temporary, path)
    return model, seconds


def teacher_cache_path(cache_dir, kind, seed, recipe, train_size):
    """The cache file of a teacher trained with `recipe`, or None.

    The name encodes everything that changes the trained weights.
    """
    if not cache_dir:
        return None
    augmentation = (
        f"shift{recipe.max_shift}{'flip' if recipe.flip else ''}s{recipe.augment_seed}"
        if recipe.augment
        else "noaug"
    )
    name = (
        f"{kind}_seed{seed}_e{recipe.epochs}_b{recipe.batch_size}"
        f"_lr{recipe.learning_rate:g}_{recipe.schedule}_{augmentation}"
        f"_n{train_size}.keras"
    )
    return os.path.join(cache_dir, name)


def cached_cnn_teacher(cache_dir, recipe, images, labels):
    """The CNN teacher of seed 0 trained with `recipe`, cached in `cache_dir`.

    `models.build_cnn_teacher(seed=0)` trained on `images` and `labels`
    without XLA (its convolutions are slow under XLA on CPU), or loaded
    from the file `teacher_cache_path` names.

    Returns:
        `(model, seconds)` as `cached_teacher`.
    """
    import models

    return cached_teacher(
        teacher_cache_path(cache_dir, "cnn_teacher", 0, recipe, len(images)),
        lambda: models.build_cnn_teacher(seed=0, name="cnn_teacher_0"),
        lambda model: train_classifier(
            model, images, labels, recipe, seed=0, jit_compile=False
        ),
    )
