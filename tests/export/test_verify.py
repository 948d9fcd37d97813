"""export.verify: the parity figures and the gates built on them."""

import numpy as np
import pytest

from export import runtimes
from export import verify
from tests.export import trained_cnn


def test_relative_error_matches_its_definition_in_float64():
    rng = np.random.default_rng(0)
    expected = rng.normal(size=(7, 10)).astype(np.float32)
    actual = expected + rng.normal(scale=1e-3, size=(7, 10)).astype(np.float32)
    a64, b64 = actual.astype(np.float64), expected.astype(np.float64)
    reference = np.abs(a64 - b64).max() / np.abs(b64).max()
    assert verify.relative_error(actual, expected) == pytest.approx(
        reference, rel=1e-12
    )


@pytest.mark.parametrize(
    "actual,expected,error",
    [
        ([1.0, 2.0], [1.0, 2.5], 0.2),  # 0.5 / 2.5
        ([0.0, 0.0], [0.0, 0.0], 0.0),
        ([100.0, -3.0], [100.0, -3.001], 0.001 / 100.0),  # scale = max|b|
    ],
)
def test_relative_error_hand_computed(actual, expected, error):
    assert verify.relative_error(np.array(actual), np.array(expected)) == pytest.approx(
        error, rel=1e-9
    )


def test_relative_error_all_zero_reference_uses_tiny():
    assert verify.relative_error(np.array([1e-30]), np.array([0.0])) == pytest.approx(
        1e-30 / verify.TINY
    )


def test_relative_error_non_finite_and_shape_mismatch():
    assert verify.relative_error(np.array([np.nan]), np.array([1.0])) == float("inf")
    with pytest.raises(verify.ParityError, match="shape"):
        verify.relative_error(np.zeros((2, 10)), np.zeros((3, 10)))


def test_top1_agreement_and_accuracy():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    other = np.array([[0.2, 0.8], [0.1, 0.9], [0.4, 0.6], [0.9, 0.1]])
    assert verify.top1_agreement(logits, other) == 0.75
    assert verify.accuracy(logits, np.array([1, 0, 0, 0])) == 0.75
    assert verify.accuracy(logits, np.eye(2)[[1, 0, 0, 0]]) == 0.75  # one-hot


@pytest.fixture(scope="module")
def model():
    return trained_cnn.trained_cnn()[0]


def scaled_runner(model, factor):
    """A fake artifact whose outputs are Keras' times `factor`."""
    reference = runtimes.KerasRuntime(model).predict
    return lambda x: reference(x) * np.float32(factor)


@pytest.mark.parametrize("factor,passes", [(1 + 2e-6, True), (1 + 5e-5, False)])
def test_float_gate_at_relative_error_1e_5(model, factor, passes):
    run = scaled_runner(model, factor)
    if passes:
        report = verify.verify_artifact(model, None, "onnx", runner=run)
        assert report["max_relative_error"] == pytest.approx(factor - 1, rel=0.05)
        assert report["random_inputs"]["count"] == 17
    else:
        with pytest.raises(verify.ParityError, match="relative error"):
            verify.verify_artifact(model, None, "onnx", runner=run)


def test_quantised_gate_is_top1_agreement_on_real_inputs(model):
    _, _, (x_test, _) = trained_cnn.trained_cnn()
    reference = runtimes.KerasRuntime(model).predict

    def disagree_on_one_in_ten(x):
        logits = reference(x)
        swapped = logits.copy()
        order = np.argsort(logits, axis=-1)
        rows = np.arange(0, len(logits), 10)
        top, second = order[rows, -1], order[rows, -2]
        # argmax changes on every 10th row; the values stay those of Keras.
        swapped[rows, top] = logits[rows, second]
        swapped[rows, second] = logits[rows, top]
        return swapped

    int8 = {"quantize": "int8", "real_inputs": x_test, "runner": disagree_on_one_in_ten}
    report = verify.verify_artifact(model, None, "tflite", min_agreement=0.85, **int8)
    assert report["top1_agreement"] == pytest.approx(0.9, abs=0.005)
    with pytest.raises(verify.ParityError, match="top-1 agreement"):
        verify.verify_artifact(model, None, "tflite", **int8)  # int8 default: 0.97


def test_quantised_gate_defaults_to_fashion_mnist_test_images(model):
    report = verify.verify_artifact(
        model,
        None,
        "tflite",
        quantize="float16",
        runner=runtimes.KerasRuntime(model).predict,
    )
    assert report["real_inputs"].startswith("Fashion-MNIST test")
    assert report["real_inputs_count"] == verify.DEFAULT_REAL_INPUTS
    assert report["top1_agreement"] == 1.0


def test_accuracy_drop_gate(model):
    _, _, (x_test, y_test) = trained_cnn.trained_cnn()
    reference = runtimes.KerasRuntime(model).predict
    report = verify.verify_artifact(
        model, None, "onnx", labelled=(x_test, y_test), runner=reference
    )
    assert report["accuracy"]["keras"] == report["accuracy"]["exported"] > 0.6

    def always_class_zero(x):
        out = np.zeros_like(reference(x))
        out[:, 0] = 1.0
        return out

    with pytest.raises(verify.ParityError, match="accuracy .* below Keras"):
        verify.verify_artifact(
            model,
            None,
            "tflite",
            quantize="int8",
            labelled=(x_test, y_test),
            runner=always_class_zero,
            min_agreement=0.0,
            tolerance=10.0,
        )


def test_load_inputs_sources(tmp_path):
    shape = (None, 28, 28, 1)
    x = np.random.default_rng(1).random((6, 28, 28, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "named.npz", x=x, y=np.zeros(6))
    np.savez(tmp_path / "single.npz", images=x)
    for source in (
        x,
        tmp_path / "x.npy",
        tmp_path / "named.npz",
        tmp_path / "single.npz",
    ):
        np.testing.assert_array_equal(verify.load_inputs(source, shape), x)
    assert verify.load_inputs("fashion-mnist:5", shape).shape == (5, 28, 28, 1)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p / "missing.npy", "does not exist"),
        (
            lambda p: (np.save(p / "bad.npy", np.zeros((3, 28, 28))), p / "bad.npy")[1],
            "does not match",
        ),
        (
            lambda p: (p / "x.csv").write_text("1") and p / "x.csv",
            "expected a .npy or .npz",
        ),
        (
            lambda p: (np.savez(p / "two.npz", a=1, b=2), p / "two.npz")[1],
            "expected one named 'x'",
        ),
        (lambda p: "fashion-mnist:zero", "fashion-mnist:N"),
    ],
)
def test_load_inputs_errors_name_the_flag(tmp_path, make, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message) as info:
        verify.load_inputs(make(tmp_path), (None, 28, 28, 1))
    assert "--representative-data" in str(info.value)


def test_load_labelled_requires_x_and_y(tmp_path):
    np.savez(tmp_path / "only_x.npz", x=np.zeros((2, 28, 28, 1)))
    with pytest.raises(
        ValueError,
        match="`--labelled-data` must be a .npz with arrays x and y.*\\['x'\\]",
    ):
        verify.load_labelled(tmp_path / "only_x.npz", (None, 28, 28, 1))
    np.savez(tmp_path / "short.npz", x=np.zeros((2, 28, 28, 1)), y=np.zeros(3))
    with pytest.raises(
        ValueError, match="one label per input.*2 inputs and labels of shape \\(3,\\)"
    ):
        verify.load_labelled(tmp_path / "short.npz", (None, 28, 28, 1))


@pytest.mark.parametrize(
    "actual_row,expected_row",
    [
        ([np.nan] * 3, [1.0, 0.0, 0.0]),  # argmax(NaN row) == 0 == argmax(Keras)
        ([1.0, 0.0, 0.0], [np.nan] * 3),
        ([np.inf, 0.0, 0.0], [1.0, 0.0, 0.0]),
        ([1.0, np.nan, 0.0], [1.0, 0.0, 0.0]),
    ],
)
def test_non_finite_rows_never_agree(actual_row, expected_row):
    actual = np.array([actual_row, [0.0, 1.0, 0.0]])
    expected = np.array([expected_row, [0.0, 1.0, 0.0]])
    assert verify.top1_agreement(actual, expected) == 0.5
    assert verify.accuracy(actual, np.array([0, 1])) == (
        0.5 if not np.all(np.isfinite(actual_row)) else 1.0
    )
    assert verify.relative_error(actual, expected) == float("inf")
    assert verify.max_abs_error(actual, expected) == float("inf")


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_nan_outputs_fail_verification(model, quantize):
    """An artifact answering NaN must not pass (argmax of NaN is 0 on both sides)."""
    reference = runtimes.KerasRuntime(model).predict

    def nan_runner(x):
        return np.full_like(reference(x), np.nan)

    with pytest.raises(verify.ParityError, match="relative error inf"):
        verify.verify_artifact(
            model, None, "tflite", quantize=quantize, runner=nan_runner
        )


def test_model_with_nan_outputs_cannot_be_verified():
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    model.layers[-1].kernel.assign(np.full((4, 3), np.nan, np.float32))
    with pytest.raises(verify.NonFiniteOutputError, match="NaN or inf on 1 of 1"):
        verify.verify_artifact(model, None, "onnx", runner=lambda x: x[:, :3])


def test_quantised_relative_error_is_gated_even_when_argmax_agrees(model):
    """A float16 file off by 5% everywhere agrees on every argmax: still refused."""
    reference = runtimes.KerasRuntime(model).predict
    with pytest.raises(
        verify.ParityError, match="quantize=float16 parity failed: relative error 0.05"
    ):
        verify.verify_artifact(
            model,
            None,
            "tflite",
            quantize="float16",
            runner=lambda x: reference(x) * np.float32(1.05),
        )


def test_held_out_inputs_are_drawn_like_the_calibration_data():
    import keras

    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    calibration = np.random.default_rng(4).normal(5.0, 2.0, (300, 6)).astype(np.float32)
    seen = []

    def recording_runner(x):
        seen.append(x)
        return runtimes.KerasRuntime(model).predict(x)

    report = verify.verify_artifact(
        model,
        None,
        "tflite",
        quantize="int8",
        calibration_inputs=calibration,
        runner=recording_runner,
        seed=3,
    )
    held_out = seen[-1]
    assert report["real_inputs_count"] == len(held_out) == verify.DEFAULT_REAL_INPUTS
    assert "held-out" in report["real_inputs"]
    calibration_rows = {row.tobytes() for row in calibration}
    assert not any(row.tobytes() in calibration_rows for row in held_out)
    assert np.all(held_out >= calibration.min(0)) and np.all(
        held_out <= calibration.max(0)
    )
    assert np.abs(held_out.mean(0) - calibration.mean(0)).max() < 0.5
    assert held_out.std() > 1.0  # never constant
    np.testing.assert_array_equal(
        held_out, verify.scaled_like(calibration, 500, seed=3)
    )


def test_quantised_check_without_any_held_out_inputs_is_bad_input():
    import keras

    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    with pytest.raises(
        ValueError, match="`--labelled-data` or `--representative-data` must be given"
    ):
        verify.verify_artifact(
            model,
            None,
            "tflite",
            quantize="dynamic",
            runner=runtimes.KerasRuntime(model).predict,
        )


def test_constant_representative_data_refused():
    with pytest.raises(ValueError, match="`--representative-data` must vary"):
        verify.load_representative(np.ones((40, 28, 28, 1)), (None, 28, 28, 1))


def _pixel_model():
    """A small model taking pixels in [0, 255], as keras.applications do."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


@pytest.mark.parametrize("given", ["labelled", "calibration_inputs"])
def test_random_inputs_lie_where_the_models_data_lies(given):
    """Pixels in [0, 255]: [0, 1) would be one near-black image every time."""
    model = _pixel_model()
    rng = np.random.default_rng(5)
    x = (255 * rng.random((64, 8, 8, 3))).astype(np.float32)
    data = {"labelled": (x, rng.integers(0, 3, 64))}
    if given == "calibration_inputs":
        data = {"calibration_inputs": x}
    reference = runtimes.KerasRuntime(model).predict
    fed = []

    def run(batch):
        fed.append(batch)
        return reference(batch)

    report = verify.verify_artifact(model, None, "onnx", runner=run, **data)
    random_batches = fed[: len(verify.DEFAULT_BATCH_SIZES)]
    assert [len(b) for b in random_batches] == list(verify.DEFAULT_BATCH_SIZES)
    random_x = np.concatenate(random_batches)
    assert random_x.min() >= 0 and random_x.max() <= 255
    assert random_x.max() > 200 and random_x.std() > 0.5 * x.std()
    # The random inputs are fresh, not rows of the given data.
    assert not any(np.array_equal(row, d) for row in random_x[:4] for d in x)
    # The model's outputs vary over the random inputs as over its data.
    spread = reference(random_x).std(axis=0).mean()
    assert spread > 0.3 * reference(x).std(axis=0).mean()
    assert "like the model's" in report["random_inputs"]["distribution"]


def test_random_inputs_without_data_stay_uniform_0_1():
    model = _pixel_model()
    reference = runtimes.KerasRuntime(model).predict
    fed = []

    def run(batch):
        fed.append(batch)
        return reference(batch)

    report = verify.verify_artifact(model, None, "onnx", runner=run)
    random_x = np.concatenate(fed)
    assert 0 <= random_x.min() and random_x.max() < 1 and random_x.std() > 0.2
    assert report["random_inputs"]["distribution"] == "uniform[0, 1)"


@pytest.mark.parametrize(
    "quantize, data_like", [("float16", False), ("dynamic", False), ("int8", True)]
)
def test_random_inputs_of_quantised_formats(quantize, data_like):
    """Calibrated ranges are checked inside them; float16 and dynamic as before."""
    model = _pixel_model()
    rng = np.random.default_rng(6)
    x = (255 * rng.random((64, 8, 8, 3))).astype(np.float32)
    reference = runtimes.KerasRuntime(model).predict
    fed = []

    def run(batch):
        fed.append(batch)
        return reference(batch)

    report = verify.verify_artifact(
        model,
        None,
        "tflite",
        quantize=quantize,
        runner=run,
        labelled=(x, rng.integers(0, 3, 64)),
    )
    random_x = np.concatenate(fed[: len(verify.DEFAULT_BATCH_SIZES)])
    assert random_x.min() >= 0
    assert bool(random_x.max() > 200) is data_like
    assert bool(random_x.max() < 1) is not data_like
    distribution = report["random_inputs"]["distribution"]
    assert ("like the model's" in distribution) is data_like
    assert report["real_inputs_count"] == 64
