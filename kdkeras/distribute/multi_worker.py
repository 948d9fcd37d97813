"""`fit` for `MultiWorkerMirroredStrategy`, which Keras 3's own `fit` lacks.

Keras 3.15's TensorFlow trainer fails under a multi-worker
`tf.distribute.MultiWorkerMirroredStrategy` (keras-team/keras#20585): first
`_maybe_symbolic_build` calls `strategy.reduce("MEAN", batch)` on a
distributed batch, then `reduce_per_replica` reduces scalar metric results
with `axis=0`. This module is a small replacement loop built only from
public TensorFlow pieces: `strategy.experimental_distribute_dataset` feeds
`strategy.run(model.train_step)` (the model's own per-replica step), Keras
callbacks are driven through a `keras.callbacks.CallbackList`, validation
runs `model.test_step`, and a `keras.callbacks.History` is returned.

It also makes `keras.callbacks.BackupAndRestore` safe and exact, which the
stock callback is not in 3.15: (1) the stock callback restores only the epoch
number, so a run killed mid-epoch repeats that epoch's first batches with
already-updated weights; here the loop skips them. (2) It writes
`latest.weights.h5` in place, so a kill during the write leaves a corrupt
file; here the file is written beside, fsynced and `os.replace`d, with the
training position stored inside the same file. (3) Every worker writes the
same path; here only the chief writes the backup (and `ModelCheckpoint`
files); the other workers write to temporary directories that are deleted.
Every worker still performs the save, because reading metric variables
is a collective operation that all workers must join.

Delete this module (and the hook in `Distiller.fit`) once Keras' `fit`
works under `MultiWorkerMirroredStrategy` and `BackupAndRestore` resumes
mid-epoch.
"""

import copy
import json
import math
import os
import shutil
import tempfile

import h5py
import keras
import numpy as np
import tensorflow as tf
from keras.src.trainers.data_adapters import array_slicing

from kdkeras.distribute import strategy as strategy_lib
from kdutils.staging import fsync_path
from kdutils.staging import write_atomically

STATE_ATTRIBUTE = "kdkeras_training_state"
_WEIGHTS_NAME = "latest.weights.h5"
_METADATA_NAME = "training_metadata.json"


def needs_multi_worker_fit(strategy, callbacks=None):
    """Whether `fit` must go through this module instead of Keras' `fit`.

    Args:
        strategy: the model's `distribute_strategy`.
        callbacks: the callbacks passed to `fit` (optional).

    Returns:
        True under a `MultiWorkerMirroredStrategy` spanning more than one
        worker (Keras' `fit` fails there), or when `callbacks` holds a
        `keras.callbacks.BackupAndRestore` that saves every N batches (Keras'
        `fit` cannot resume such a backup mid-epoch).
    """
    if _in_multi_worker_mode(strategy):
        return True
    if isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = callbacks.callbacks
    return any(
        isinstance(callback, keras.callbacks.BackupAndRestore)
        and callback.save_freq != "epoch"
        for callback in callbacks or ()
    )


def _tf_config(strategy):
    """The strategy's cluster as `strategy.parse_tf_config` returns it."""
    resolver = strategy.cluster_resolver
    return {
        "cluster": resolver.cluster_spec().as_dict(),
        "task_type": resolver.task_type,
        "task_index": resolver.task_id,
    }


def _in_multi_worker_mode(strategy):
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    return strategy_lib.num_workers(_tf_config(strategy)) > 1


def _is_chief(strategy):
    if not _in_multi_worker_mode(strategy):
        return True
    return strategy_lib.is_chief(_tf_config(strategy))


def fit(
    model,
    x=None,
    y=None,
    batch_size=None,
    epochs=1,
    verbose="auto",
    callbacks=None,
    validation_split=0.0,
    validation_data=None,
    shuffle=True,
    class_weight=None,
    sample_weight=None,
    initial_epoch=0,
    steps_per_epoch=None,
    validation_steps=None,
    validation_batch_size=None,
    validation_freq=1,
):
    """`model.fit(...)` as a distributed loop; same arguments and History.

    `batch_size` is the GLOBAL batch: each of the `N` replicas gets
    `batch_size / N` examples of every batch (auto-shard policy `DATA` for
    arrays). With `shuffle=True` arrays are shuffled with a seed that depends
    only on the epoch, so every worker (and a restarted run) sees the same
    order. `class_weight` is not supported.

    Args:
        model: a compiled `keras.Model` (e.g. a `kdkeras.Distiller`) created
            under `strategy.scope()`.
        x, y, sample_weight: NumPy arrays / tensors, or `x` a
            `tf.data.Dataset` of `(x, y[, sample_weight])` batched with the
            global batch size.
        Other arguments: as in `keras.Model.fit`.

    Returns:
        The `keras.callbacks.History` of the run.

    Example:

    ```python
    strategy = kdkeras.distribute.strategy_from_environment()
    with strategy.scope():
        model = build_model()
        model.compile(...)
    history = multi_worker.fit(model, x, y, batch_size=256, epochs=3)
    ```
    """
    if not model.compiled:
        raise ValueError("You must call `compile()` before calling `fit()`.")
    if class_weight is not None:
        raise ValueError(
            "`class_weight` is not supported by the multi-worker fit; use "
            "`sample_weight`. Received: class_weight=" + repr(class_weight)
        )
    strategy = model.distribute_strategy
    if validation_split and validation_data is None:
        (x, y, sample_weight), validation_data = array_slicing.train_validation_split(
            (x, y, sample_weight), validation_split=validation_split
        )
    train = _Input(x, y, sample_weight, batch_size, shuffle, steps_per_epoch)
    validation = None
    if validation_data is not None:
        val_x, val_y, val_weight = keras.utils.unpack_x_y_sample_weight(validation_data)
        validation = _Input(
            val_x,
            val_y,
            val_weight,
            validation_batch_size or batch_size,
            False,
            validation_steps,
        )

    with strategy.scope():
        # Keras internal (no public equivalent): builds metrics and losses as fit does.
        model._symbolic_build(data_batch=train.first_batch())
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)

    scratch_dir = None if _is_chief(strategy) else tempfile.mkdtemp("kdkeras")
    callbacks, backup = _prepare_callbacks(callbacks, scratch_dir)
    callback_list = keras.callbacks.CallbackList(
        callbacks,
        add_history=True,
        add_progbar=verbose != 0 and scratch_dir is None,
        verbose=verbose,
        epochs=epochs,
        steps=train.steps,
        model=model,
    )
    train_function = _step_function(model.train_step, strategy)
    test_function = _step_function(model.test_step, strategy)

    try:
        start_epoch, start_step = initial_epoch, 0
        if backup is not None:
            position = backup.restore(model)
            if position is not None:
                start_epoch, start_step = position
        model.stop_training = False
        callback_list.on_train_begin()
        training_logs = None
        for epoch in range(start_epoch, epochs):
            model.reset_metrics()
            callback_list.on_epoch_begin(epoch)
            skip = start_step if epoch == start_epoch else 0
            logs = {}
            for step, batch in train.batches(strategy, epoch, skip):
                callback_list.on_train_batch_begin(step)
                logs = train_function(batch)
                callback_list.on_train_batch_end(step, logs)
                if model.stop_training:
                    break
            # Keras internal (no public equivalent): the logs fit reports.
            epoch_logs = dict(model._get_metrics_result_or_logs(logs))
            if validation is not None and _should_evaluate(epoch, validation_freq):
                val_logs = _evaluate(
                    model, validation, strategy, test_function, callback_list
                )
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            callback_list.on_epoch_end(epoch, epoch_logs)
            training_logs = epoch_logs
            if model.stop_training:
                break
        if isinstance(model.optimizer, keras.optimizers.Optimizer) and epochs:
            model.optimizer.finalize_variable_values(model.trainable_weights)
        callback_list.on_train_end(logs=training_logs)
    finally:
        if scratch_dir is not None:
            shutil.rmtree(scratch_dir, ignore_errors=True)
    return model.history


def _should_evaluate(epoch, validation_freq):
    """Whether to validate after `epoch` (0-based), as Keras' `fit` does."""
    if isinstance(validation_freq, int) and not isinstance(validation_freq, bool):
        return (epoch + 1) % validation_freq == 0
    if isinstance(validation_freq, (list, tuple)):
        return epoch + 1 in validation_freq
    raise ValueError(
        "`validation_freq` must be an int or a list of epochs. "
        f"Received: validation_freq={validation_freq!r}"
    )


def _step_function(step, strategy):
    """`tf.function` running `step` on every replica, logs averaged."""

    def run(batch):
        outputs = strategy.run(step, args=(batch,))
        return tf.nest.map_structure(
            lambda value: strategy.reduce("MEAN", value, axis=None), outputs
        )

    function = tf.function(run, reduce_retracing=True)
    return lambda batch: _to_python(function(batch))


def _to_python(logs):
    return {
        name: (float(value) if np.ndim(value) == 0 else np.asarray(value))
        for name, value in logs.items()
    }


def _evaluate(model, validation, strategy, test_function, callback_list):
    model.reset_metrics()
    callback_list.on_test_begin()
    logs = {}
    for step, batch in validation.batches(strategy, 0, 0):
        callback_list.on_test_batch_begin(step)
        logs = test_function(batch)
        callback_list.on_test_batch_end(step, logs)
    # Keras internal (no public equivalent): the logs evaluate reports.
    logs = dict(model._get_metrics_result_or_logs(logs))
    callback_list.on_test_end(logs)
    return logs


class _Input:
    """Global batches of one epoch, distributed over the replicas."""

    def __init__(self, x, y, sample_weight, batch_size, shuffle, steps):
        self._steps_argument = steps
        if isinstance(x, tf.data.Dataset):
            if y is not None or sample_weight is not None:
                raise ValueError(
                    "`y` and `sample_weight` must be None when `x` is a "
                    "tf.data.Dataset (it yields them)."
                )
            if batch_size is not None:
                raise ValueError(
                    "`batch_size` must be None when `x` is a tf.data.Dataset "
                    "(batch the dataset with the global batch size)."
                )
            self._dataset = x
            self._arrays = None
            cardinality = int(x.cardinality())
            self.steps = steps or (cardinality if cardinality > 0 else None)
            # With steps_per_epoch a dataset continues across epochs, as in
            # Keras' fit; otherwise every epoch iterates it from the start.
            self._continuous = steps is not None
            return
        if x is None:
            raise ValueError("`x` is required. Received: x=None")
        if y is None and sample_weight is not None:
            raise ValueError("`sample_weight` needs `y`. Received: y=None")
        arrays = tuple(v for v in (x, y, sample_weight) if v is not None)
        self._arrays = arrays
        self._dataset = None
        self._continuous = False
        self._batch_size = batch_size or 32
        self._shuffle = shuffle
        self._size = int(tf.nest.flatten(x)[0].shape[0])
        steps_in_data = math.ceil(self._size / self._batch_size)
        self.steps = min(steps, steps_in_data) if steps else steps_in_data

    def _epoch_dataset(self, epoch):
        if self._dataset is not None:
            return self._dataset
        dataset = tf.data.Dataset.from_tensor_slices(self._arrays)
        if self._shuffle:
            # Same seed on every worker (DATA sharding needs one order) and
            # after a restart (resume replays the order).
            dataset = dataset.shuffle(
                self._size, seed=1_000_003 * (epoch + 1) % (2**31 - 1)
            )
        dataset = dataset.batch(self._batch_size)
        return strategy_lib.with_auto_shard_policy(dataset, "data")

    def first_batch(self):
        batch = next(iter(self._epoch_dataset(0).take(1)))
        return tuple(batch) if isinstance(batch, (tuple, list)) else batch

    def batches(self, strategy, epoch, skip):
        """Yields `(step, distributed_batch)`, the first `skip` skipped."""
        dataset = self._epoch_dataset(epoch)
        if self._continuous:
            # One iterator for the whole run, created at the resume point.
            if getattr(self, "_iterator", None) is None:
                dataset = dataset.skip(epoch * self.steps + skip)
                self._iterator = iter(
                    strategy_lib.distribute_dataset(dataset, strategy)
                )
            iterator = self._iterator
        else:
            if skip:
                dataset = dataset.skip(skip)
            iterator = iter(strategy_lib.distribute_dataset(dataset, strategy))
        step = skip
        while self.steps is None or step < self.steps:
            batch = iterator.get_next_as_optional()
            if not batch.has_value():
                break
            yield step, batch.get_value()
            step += 1


def _prepare_callbacks(callbacks, scratch_dir):
    """Swaps in the resumable backup and redirects non-chief checkpoints."""
    if isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = callbacks.callbacks
    prepared, backup = [], None
    for callback in callbacks or ():
        if isinstance(callback, keras.callbacks.BackupAndRestore):
            backup = _Backup(callback, scratch_dir)
            callback = backup
        elif scratch_dir is not None and isinstance(
            callback, keras.callbacks.ModelCheckpoint
        ):
            callback = copy.copy(callback)
            callback.filepath = os.path.join(
                scratch_dir, os.path.basename(callback.filepath)
            )
        prepared.append(callback)
    return prepared, backup


class _Backup(keras.callbacks.Callback):
    """`BackupAndRestore` with atomic, chief-only writes and exact resume.

    The weights file carries the training position (epoch, steps done in
    that epoch) as an HDF5 attribute, and is replaced atomically, so the
    position and the weights can never disagree.
    """

    def __init__(self, keras_callback, scratch_dir):
        super().__init__()
        self.read_dir = keras_callback.backup_dir
        self.write_dir = (
            os.path.join(scratch_dir, "backup") if scratch_dir else None
        ) or keras_callback.backup_dir
        self.save_freq = keras_callback.save_freq
        self.delete_checkpoint = keras_callback.delete_checkpoint
        self._epoch = 0
        self._steps_since_save = 0

    def restore(self, model):
        """Loads the latest backup; returns `(epoch, steps_done)` or None."""
        path = os.path.join(self.read_dir, _WEIGHTS_NAME)
        if not os.path.exists(path):
            return None
        state = read_training_state(path)
        if state is None:
            raise ValueError(
                f"Backup {path} has no kdkeras training state; it was not "
                "written by kdkeras. Delete the `backup_dir` to start over."
            )
        model.load_weights(path)
        return state["epoch"], state["steps_done"]

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._steps_since_save += 1
        if self._steps_since_save >= self.save_freq:
            self._steps_since_save = 0
            self._save(self._epoch, batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch + 1, 0)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            shutil.rmtree(self.write_dir, ignore_errors=True)

    def _save(self, epoch, steps_done):
        state = {"epoch": int(epoch), "steps_done": int(steps_done)}
        save_weights_atomically(self.model, self.write_dir, state)


def save_weights_atomically(model, directory, state):
    """Writes `directory/latest.weights.h5` (+ metadata) so a kill is safe.

    The weights go to a temporary file beside the target with `state`
    stored inside it, are fsynced, then `os.replace`d over the target: a
    reader sees either the previous complete file or the new one. (Its name
    keeps Keras' `.weights.h5` ending, which `save_weights` requires.)
    """
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, _WEIGHTS_NAME)
    temporary = os.path.join(directory, f".tmp-{os.getpid()}-{_WEIGHTS_NAME}")
    model.save_weights(temporary, overwrite=True)
    with h5py.File(temporary, "a") as file:
        file.attrs[STATE_ATTRIBUTE] = json.dumps(state)
    fsync_path(temporary)
    os.replace(temporary, target)
    # Keras' own layout: epoch and last batch index, for stock readers.
    write_atomically(
        os.path.join(directory, _METADATA_NAME),
        json.dumps({"epoch": state["epoch"], "batch": state["steps_done"] - 1}),
    )
    fsync_path(directory)


def read_training_state(path):
    """The `{"epoch", "steps_done"}` stored in a backup file, or None."""
    with h5py.File(path, "r") as file:
        value = file.attrs.get(STATE_ATTRIBUTE)
    return None if value is None else json.loads(value)
