"""export.pipeline: destinations checked first, converters isolated in a child."""

import os
import subprocess
import sys

import numpy as np
import pytest

from export import loading
from export import pipeline
from tests.export import crashing


def test_run_isolated_turns_a_segfault_into_one_line_error():
    with pytest.raises(pipeline.ConversionError, match=r"crashed \(SIGSEGV\)") as info:
        pipeline.run_isolated(crashing.segfault, {}, what="the converter")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("the converter crashed")


def test_run_isolated_reports_the_child_exception():
    with pytest.raises(pipeline.ConversionError, match="ValueError: bad arguments"):
        pipeline.run_isolated(crashing.raise_value_error, {"a": 1}, what="tf2onnx")


def test_run_isolated_runs_the_target(tmp_path):
    target = tmp_path / "out.txt"
    pipeline.run_isolated(crashing.write_marker, {"output_path": str(target)}, "x")
    assert target.read_text() == "done"


@pytest.fixture(scope="module")
def classifier():
    import keras

    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(7, activation="relu"),
            keras.layers.Dense(3),
        ]
    )


def labelled_file(path, x, y):
    np.savez(path, x=x, y=y)
    return path


def good_x(count=6):
    return np.random.default_rng(0).random((count, 5)).astype(np.float32)


@pytest.mark.parametrize(
    "make,message",
    [
        (
            lambda: (np.full((6, 5), np.nan), np.zeros(6)),
            "must be finite.*6 NaN|30 NaN",
        ),
        (
            lambda: (np.where(np.eye(6, 5) > 0, np.inf, good_x()), np.zeros(6)),
            "must be finite",
        ),
        (
            lambda: (good_x(), np.array([0, 1, np.nan, 2, 0, 1])),
            "labels must be finite",
        ),
        (
            lambda: (good_x(), np.array([0, 1, 2, 3, 0, 1])),
            "class indices in 0..2.*1 labels out of range",
        ),
        (lambda: (good_x(), np.array([0, -1, 2, 1, 0, 1])), "class indices in 0..2"),
        (lambda: (good_x(), np.array([0, 1.5, 2, 1, 0, 1])), "class indices"),
        (lambda: (good_x(), np.eye(4)[[0, 1, 2, 3, 0, 1]]), "must have 3 columns"),
        (lambda: (good_x(), np.zeros(5)), "one label per input"),
        (lambda: (good_x(), np.array(["a"] * 6)), "labels must be numeric"),
        (
            lambda: (good_x().astype(np.complex64), np.zeros(6)),
            "must hold real numbers",
        ),
        (lambda: (np.zeros((6, 4)), np.zeros(6)), r"must have shape \(N,\) \+ \(5,\)"),
    ],
)
def test_hostile_labelled_data_refused_naming_the_flag(
    classifier, tmp_path, make, message
):
    x, y = make()
    path = labelled_file(tmp_path / "data.npz", x, y)
    with pytest.raises(ValueError, match=message) as info:
        pipeline.load_labelled_data(path, classifier)
    assert str(info.value).startswith("`--labelled-data`")
    assert "\n" not in str(info.value)


def test_labelled_npz_missing_keys(classifier, tmp_path):
    np.savez(tmp_path / "d.npz", inputs=good_x(), labels=np.zeros(6))
    with pytest.raises(ValueError, match="arrays x and y.*'inputs', 'labels'"):
        pipeline.load_labelled_data(tmp_path / "d.npz", classifier)


def test_valid_labelled_data_passes(classifier, tmp_path):
    y = np.array([0, 1, 2, 2, 1, 0])
    x, labels = pipeline.load_labelled_data(
        labelled_file(tmp_path / "d.npz", good_x(), y), classifier
    )
    np.testing.assert_array_equal(labels, y)
    assert x.dtype == np.float32


@pytest.mark.parametrize(
    "output_shape", [(None, 4, 3), (None,), (None, 1)], ids=["3d", "1d", "one-class"]
)
def test_model_whose_output_is_not_2d_logits_is_refused(tmp_path, output_shape):
    import keras

    inputs = keras.Input((4, 6))
    if output_shape == (None, 4, 3):
        outputs = keras.layers.Dense(3)(inputs)
    elif output_shape == (None,):
        outputs = keras.layers.Reshape(())(
            keras.layers.Dense(1)(keras.layers.Flatten()(inputs))
        )
    else:
        outputs = keras.layers.Dense(1)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    with pytest.raises(loading.ModelLoadError, match="2-D logits"):
        pipeline.resolve_for_export(model, tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_sidecar_path_that_is_a_directory_is_refused_first(tmp_path):
    (tmp_path / "m.onnx.json").mkdir()
    with pytest.raises(ValueError, match="must be a file path"):
        pipeline.resolve_for_export("does-not-matter.keras", tmp_path / "m.onnx")


@pytest.mark.e2e
@pytest.mark.parametrize("level", ["1", "3"])
def test_isolated_child_start_up_is_as_quiet_as_the_caller_asks(level):
    """The converter child writes to the caller's stderr: no TensorFlow noise."""
    script = (
        "import importlib\n"
        "from export import pipeline\n"
        "pipeline.run_isolated(importlib.import_module, {'name': 'tensorflow'}, 'x')\n"
        "pipeline.stop_isolated()\n"
    )
    repository = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=repository,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": level},
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
