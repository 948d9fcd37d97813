import gzip

import keras
import numpy as np
import pytest
from tensorflow.python.framework import config as tf_config

from kdkeras import compress
from tests.kdkeras.compress.conftest import accuracy
from tests.kdkeras.compress.conftest import self_distil
from tests.kdkeras.compress.conftest import synthetic_images
from tests.kdkeras.compress.conftest import tflite_kernels

TARGET_SPARSITY = 0.8


@pytest.fixture(scope="module")
def pruned(compress_student):
    return compress_student(
        compress.prune,
        seed=11,
        target_sparsity=TARGET_SPARSITY,
        epochs=2,
        learning_rate=1e-3,
    )


def test_target_sparsity_is_reached_in_every_kernel(pruned):
    assert isinstance(pruned, keras.Model)
    sparsity = compress.kernel_sparsity(pruned)
    assert sorted(sparsity) == ["hidden", "logits"]
    for name, fraction in sparsity.items():
        assert fraction >= TARGET_SPARSITY - 0.01, (name, fraction)
        assert fraction <= TARGET_SPARSITY + 0.01, (name, fraction)


def test_pruned_student_still_distils(pruned, fashion, teacher_and_student):
    _, (x_test, y_test) = fashion
    _, student = teacher_and_student
    dense_accuracy = accuracy(student.predict(x_test, verbose=0), y_test)
    pruned_accuracy = accuracy(pruned.predict(x_test, verbose=0), y_test)
    assert pruned_accuracy > 0.5  # 10 classes: chance is 0.1.
    assert pruned_accuracy > dense_accuracy - 0.1


def test_sparsity_survives_tflite_export_and_shrinks_gzip(
    pruned, teacher_and_student, tmp_path
):
    from export import runtimes
    from export.to_tflite import export_tflite

    _, student = teacher_and_student
    path = export_tflite(pruned, str(tmp_path / "pruned.tflite")).path
    dense_path = export_tflite(student, str(tmp_path / "dense.tflite")).path
    with open(path, "rb") as file:
        pruned_flatbuffer = file.read()
    with open(dense_path, "rb") as file:
        dense_flatbuffer = file.read()

    kernels = tflite_kernels(path)
    assert len(kernels) == 2
    for name, value in kernels.items():
        assert np.mean(value == 0) >= TARGET_SPARSITY - 0.01, name

    x = np.random.default_rng(12).uniform(size=(32, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(
        runtimes.TFLiteRuntime(path).predict(x),
        pruned.predict(x, verbose=0),
        rtol=1e-4,
        atol=1e-4,
    )
    assert len(gzip.compress(pruned_flatbuffer)) < 0.5 * len(
        gzip.compress(dense_flatbuffer)
    )


def test_teacher_logits_give_the_same_student_as_the_teacher(
    fashion, teacher_and_student
):
    (x, y), _ = fashion
    x, y = x[:256], y[:256]
    teacher, student = teacher_and_student
    was_deterministic = tf_config.is_op_determinism_enabled()
    tf_config.enable_op_determinism()
    try:
        results = []
        for arguments in (
            {"teacher": teacher},
            # The batch size `soft_targets` runs the teacher with: another
            # one changes the logits' last bits (the matmul's blocking).
            {
                "teacher": None,
                "teacher_logits": teacher.predict(x, batch_size=256, verbose=0),
            },
        ):
            keras.utils.set_random_seed(13)
            results.append(
                compress.prune(
                    student,
                    x=x,
                    y=y,
                    target_sparsity=0.5,
                    epochs=1,
                    batch_size=64,
                    **arguments,
                ).get_weights()
            )
    finally:
        if not was_deterministic:
            tf_config.disable_op_determinism()
    for first, second in zip(*results, strict=True):
        np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"target_sparsity": 1.0}, r"`target_sparsity` must be in \[0, 1\)"),
        (
            {"target_sparsity": 0.5, "initial_sparsity": 0.6},
            "`initial_sparsity` must be <= `target_sparsity`",
        ),
        ({"pruning_end": 0.0}, r"`pruning_end` must be in \(0, 1\]"),
    ],
)
def test_bad_schedule_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        compress.pruning_schedule(1000, 100, 2, **arguments)


def test_schedule_reaches_the_target_on_an_update_step():
    schedule = compress.pruning_schedule(1000, 100, 2, 0.8, pruning_end=0.7)
    config = schedule.get_config()["config"]
    assert config["end_step"] <= 19
    assert config["end_step"] % config["frequency"] == 0
    should_prune, sparsity = schedule(config["end_step"])
    assert bool(should_prune)
    assert float(sparsity) == pytest.approx(0.8)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # Minutes on a loaded 2-core machine.
def test_mobilenet_v2_prunes_every_prunable_kernel_and_lists_the_rest(mobilenet_v2):
    x, y = synthetic_images(128, seed=23)
    pruned = self_distil(
        compress.prune, mobilenet_v2, x, y, seed=24, target_sparsity=0.5, epochs=2
    )
    assert isinstance(pruned, keras.Model)
    report = pruned.compression_report
    convolutions = [
        layer.name
        for layer in pruned.layers
        if type(layer).__name__ in ("Conv2D", "Dense")
    ]
    assert len(convolutions) == 36  # Flattened out of the nested backbone.
    assert sorted(report.wrapped) == sorted(convolutions)
    for name, fraction in compress.kernel_sparsity(pruned).items():
        assert 0.49 <= fraction <= 0.51, (name, fraction)
    depthwise = [
        layer.name
        for layer in pruned.layers
        if type(layer).__name__ == "DepthwiseConv2D"
    ]
    assert depthwise and all(
        report.left_as_is[name] == "TFMOT prunes none of its weights"
        for name in depthwise
    )
    for name in depthwise:
        assert np.mean(pruned.get_layer(name).get_weights()[0] == 0) < 0.01
    assert np.isfinite(pruned.predict(x, verbose=0)).all()
