"""Runs the same distillation on 1 and on 2 logical CPU replicas; prints JSON.

Run as a subprocess by `test_distiller.py` (logical devices must be set up
before TensorFlow initialises). Usage: python distributed_equality.py
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402

import kdkeras  # noqa: E402

tf.config.experimental.enable_op_determinism()

EXAMPLES, GLOBAL_BATCH, EPOCHS = 99, 20, 2  # last batch 19: uneven split


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(EXAMPLES, 12)).astype("float32")
    y = rng.integers(0, 5, size=EXAMPLES).astype("int32")
    sample_weight = rng.uniform(0.5, 1.5, size=EXAMPLES).astype("float32")
    return x, y, sample_weight


def mlp(width, seed, dropout=0.0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((12,)), keras.layers.Dense(width, activation="relu")]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(5))
    return keras.Sequential(layers)


def run_kdkeras(strategy):
    x, y, sample_weight = data()
    with strategy.scope():
        teacher = mlp(32, seed=1, dropout=0.5)  # dropout must be off: inference
        student = mlp(16, seed=2)
        distiller = kdkeras.Distiller(student=student, teacher=teacher)
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.1),
            metrics=["accuracy"],
            alpha=0.3,
            temperature=4.0,
            jit_compile=False,
        )
    history = distiller.fit(
        x,
        y,
        sample_weight=sample_weight,
        batch_size=GLOBAL_BATCH,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        validation_data=(x, y),
    )
    return {
        "weights": [w.tolist() for w in distiller.student.get_weights()],
        "history": history.history,
    }


def run_builtin(strategy):
    """keras.distillation with its KLDivergence instance, for contrast."""
    x, y, _ = data()
    x, y = x[:80], y[:80]  # whole batches: the built-in fails on a ragged one
    with strategy.scope():
        distiller = keras.distillation.Distiller(
            teacher=mlp(32, seed=1),
            student=mlp(16, seed=2),
            distillation_losses=keras.distillation.LogitsDistillation(
                temperature=4.0, loss=keras.losses.KLDivergence()
            ),
            student_loss_weight=0.3,
        )
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss="sparse_categorical_crossentropy",
        )
    history = distiller.fit(
        x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0
    )
    return {"history": history.history}


def main():
    devices = ["/cpu:0", "/cpu:1"]
    results = {
        "one": run_kdkeras(tf.distribute.OneDeviceStrategy("/cpu:0")),
        "two": run_kdkeras(tf.distribute.MirroredStrategy(devices)),
    }
    try:
        results["builtin_one"] = run_builtin(tf.distribute.OneDeviceStrategy("/cpu:0"))
        results["builtin_two"] = run_builtin(tf.distribute.MirroredStrategy(devices))
    except Exception as error:  # Contrast only; never fails the kdkeras run.
        results["builtin_error"] = repr(error)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
