"""Worker script for the multi-worker tests: distil a tiny MLP, deterministically.

Run directly (one process, default strategy) or by `kdkeras.distribute.launch` /
the tests with `TF_CONFIG` set (one process per worker). The chief writes
`student.keras`, `student_weights.npz` and (with --checkpoint)
`checkpoint.weights.h5` into --out; other workers write nothing there.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(
    0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kdkeras  # noqa: E402
from kdkeras import distribute  # noqa: E402
from kdkeras.distribute import multi_worker  # noqa: E402

FEATURES, CLASSES, EXAMPLES = 8, 3, 256


def mlp(width, seed):
    initializer = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(
                width, activation="relu", kernel_initializer=initializer
            ),
            keras.layers.Dense(CLASSES, kernel_initializer=initializer),
        ]
    )


class Progress(keras.callbacks.Callback):
    """Records the first batch run; writes a marker and stalls at a step."""

    def __init__(self, args):
        super().__init__()
        self.args = args
        self.steps = 0
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.steps == 0 and self.args.record:
            with open(self.args.record, "w") as file:
                json.dump({"epoch": self.epoch, "batch": int(batch)}, file)

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if (
            self.args.stall_at
            and self.steps == self.args.stall_at
            and self.args.stall_task in (None, task_index())
        ):
            if self.args.marker:
                with open(self.args.marker, "w") as file:
                    file.write(f"{self.epoch} {batch}\n")
            time.sleep(600)  # the test kills us here


def task_index():
    config = distribute.parse_tf_config()
    return 0 if config is None else config["task_index"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--strategy", choices=["default", "env"], default="env")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--backup")
    parser.add_argument("--save-freq", type=int, default=2)
    parser.add_argument("--checkpoint", action="store_true")
    parser.add_argument("--stall-at", type=int, default=0)
    parser.add_argument("--stall-task", type=int)
    parser.add_argument("--heartbeat", type=float, default=30.0)
    parser.add_argument("--marker")
    parser.add_argument("--record")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    if args.strategy == "env":
        strategy = distribute.strategy_from_environment(
            timeout_seconds=args.timeout, heartbeat_timeout_seconds=args.heartbeat
        )
    else:
        strategy = tf.distribute.get_strategy()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(EXAMPLES, FEATURES)).astype("float32")
    y = rng.integers(0, CLASSES, size=EXAMPLES).astype("int32")

    with strategy.scope():
        distiller = kdkeras.Distiller(student=mlp(16, 1), teacher=mlp(32, 2))
        distiller.compile(
            optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
            metrics=["accuracy"],
            alpha=0.3,
            temperature=2.0,
        )
    callbacks = [Progress(args)]
    if args.backup:
        callbacks.append(
            keras.callbacks.BackupAndRestore(args.backup, save_freq=args.save_freq)
        )
    if args.checkpoint:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                os.path.join(args.out, "checkpoint.weights.h5"),
                save_weights_only=True,
                save_freq="epoch",
            )
        )
    fit_arguments = dict(
        x=x,
        y=y,
        batch_size=args.batch,
        epochs=args.epochs,
        shuffle=False,
        callbacks=callbacks,
        verbose=0,
    )
    # The hook Distiller.fit applies (multi-worker, or a mid-epoch backup).
    if multi_worker.needs_multi_worker_fit(strategy, callbacks):
        history = multi_worker.fit(distiller, **fit_arguments)
    else:
        history = distiller.fit(**fit_arguments)

    if distribute.is_chief():
        os.makedirs(args.out, exist_ok=True)
        weights = {f"w{i}": w for i, w in enumerate(distiller.student.get_weights())}
        np.savez(os.path.join(args.out, "student_weights.npz"), **weights)
        path = os.path.join(args.out, "student.keras")
        temporary = os.path.join(args.out, ".tmp-student.keras")
        distiller.student.save(temporary)
        os.replace(temporary, path)
        with open(os.path.join(args.out, "history.json"), "w") as file:
            json.dump(history.history, file)
    print(
        "done", json.dumps({k: v[-1] for k, v in history.history.items()}), flush=True
    )


if __name__ == "__main__":
    main()
