"""Runs partly labelled, unlabelled, DKD, DIST and top-k-target distillation on
1 and on 2 logical CPU replicas; prints JSON.

Run as a subprocess by `test_distributed_labels.py` (logical devices must be
set up before TensorFlow initialises). One configuration per process.
Usage: python distributed_labels.py CONFIG_NAME
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

# 99 examples, global batch 20: the last batch (19) splits unevenly; the
# second batch has no labelled example at all.
EXAMPLES, GLOBAL_BATCH, EPOCHS, CLASSES = 99, 20, 2, 5

CONFIGS = {
    "partial": {"alpha": 0.3},
    "partial_one_hot": {"alpha": 0.3, "one_hot": True},
    "unlabelled": {"alpha": 0.0, "labels": False},
    "dkd": {"alpha": 0.3, "loss": "dkd"},
    "dist": {"alpha": 0.3, "loss": "dist"},
    "top_k": {"alpha": 0.3, "top_k": 2},
}


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(EXAMPLES, 12)).astype("float32")
    y = rng.integers(0, CLASSES, size=EXAMPLES).astype("int32")
    y[rng.uniform(size=EXAMPLES) < 0.4] = kdkeras.targets.UNLABELLED
    y[GLOBAL_BATCH : 2 * GLOBAL_BATCH] = kdkeras.targets.UNLABELLED
    sample_weight = rng.uniform(0.5, 1.5, size=EXAMPLES).astype("float32")
    return x, y, sample_weight


def mlp(width, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((12,)),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(CLASSES),
        ]
    )


def run(strategy, config):
    x, y, sample_weight = data()
    student_loss_fn = None
    if config.get("one_hot"):
        y = np.eye(CLASSES, dtype="float32")[np.maximum(y, 0)] * (y >= 0)[:, None]
        student_loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
    loss_fn = {
        None: None,
        "dkd": kdkeras.losses.DKD(alpha=1.0, beta=2.0, temperature=4.0),
        "dist": kdkeras.losses.DIST(beta=1.0, gamma=2.0, temperature=2.0),
    }[config.get("loss")]
    with strategy.scope():
        distiller = kdkeras.Distiller(student=mlp(16, seed=2), teacher=mlp(32, seed=1))
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.1),
            metrics=["accuracy"] if config.get("labels", True) else None,
            student_loss_fn=student_loss_fn,
            distillation_loss_fn=loss_fn,
            alpha=config["alpha"],
            temperature=None if loss_fn else 4.0,
            jit_compile=False,
        )
    if config.get("top_k"):
        # Top-k teacher targets (K=2 of 5 classes) at the compiled T = 4.
        logits = 3.0 * mlp(32, seed=1).predict(x, verbose=0)
        y = kdkeras.targets.top_k_target_dict(
            *kdkeras.targets.top_k_targets(logits, config["top_k"], 4.0),
            4.0,
            labels=y,
        )
    if config.get("labels", True):
        arguments = dict(x=x, y=y, sample_weight=sample_weight, validation_data=(x, y))
    else:
        arguments = dict(x=x, validation_data=(x,))
    history = distiller.fit(
        batch_size=GLOBAL_BATCH, epochs=EPOCHS, shuffle=False, verbose=0, **arguments
    )
    return {
        "weights": [w.tolist() for w in distiller.student.get_weights()],
        "history": history.history,
    }


def main(name):
    devices = ["/cpu:0", "/cpu:1"]
    config = CONFIGS[name]
    results = {
        "one": run(tf.distribute.OneDeviceStrategy("/cpu:0"), config),
        "two": run(tf.distribute.MirroredStrategy(devices), config),
    }
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
