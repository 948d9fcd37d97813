"""The export CLIs on bad input: one-line error, non-zero exit, nothing written.

Each case runs `python -m export.to_*` as a subprocess and checks what a user
sees: exit status, exactly one `<tool>: error: ...` line naming the problem,
no traceback, and the output folder unchanged (no artifact, no temp files).
"""

import os
import zipfile

import numpy as np
import pytest

from tests.command_line import assert_refused
from tests.command_line import run_tool

TOOLS = ("to_savedmodel", "to_tflite", "to_onnx")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A valid tiny model, a Lambda model and an unconvertible-op model."""
    import keras

    folder = tmp_path_factory.mktemp("cli_models")
    inputs = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(inputs)
    keras.Model(inputs, keras.layers.Dense(10)(flat)).save(folder / "tiny.keras")
    doubled = keras.layers.Lambda(lambda t: t * 2.0, output_shape=(784,))(flat)
    keras.Model(inputs, keras.layers.Dense(10)(doubled)).save(folder / "lambda.keras")
    logits = keras.layers.Dense(10)(flat)
    # Erfinv is neither a TFLite builtin nor convertible by tf2onnx. The
    # lambda reaches Keras via __import__ so its bytecode needs no globals.
    unconvertible = keras.layers.Lambda(
        lambda t: __import__("keras").ops.erfinv(t * 0.01), output_shape=(10,)
    )(logits)
    keras.Model(inputs, unconvertible).save(folder / "erfinv.keras")
    eight = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu")(eight)
    keras.Model(eight, keras.layers.Dense(4)(hidden)).save(folder / "tiny8.keras")
    whole = (folder / "tiny.keras").read_bytes()
    (folder / "truncated.keras").write_bytes(whole[: len(whole) // 2])
    (folder / "not_a_zip.keras").write_bytes(b"this is not a zip archive")
    with zipfile.ZipFile(folder / "no_config.keras", "w") as archive:
        archive.writestr("model.weights.h5", b"")
    return folder


def output_args(tool, folder):
    name = {"to_savedmodel": "out", "to_tflite": "out.tflite", "to_onnx": "out.onnx"}
    return folder / name[tool], ["--output", folder / name[tool]]


@pytest.mark.parametrize("tool", TOOLS)
def test_missing_model_path(tool, tmp_path):
    target, args = output_args(tool, tmp_path)
    completed = run_tool(tool, tmp_path / "missing.keras", *args)
    assert_refused(completed, tool, "missing.keras", "does not exist")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize(
    "name,problem",
    [
        ("not_a_zip.keras", "not a .keras zip"),
        ("no_config.keras", "no config.json"),
        ("truncated.keras", "truncated"),
    ],
)
def test_corrupt_keras_file(tool, name, problem, models_dir, tmp_path):
    target, args = output_args(tool, tmp_path)
    completed = run_tool(tool, models_dir / name, *args)
    assert_refused(completed, tool, name, "corrupt", problem)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("tool", TOOLS)
def test_existing_output_refused_and_untouched(tool, models_dir, tmp_path):
    target, args = output_args(tool, tmp_path)
    if tool == "to_savedmodel":
        target.mkdir()
        (target / "saved_model.pb").write_bytes(b"previous export")
    else:
        target.write_bytes(b"previous export")
    before = sorted(os.listdir(tmp_path))
    completed = run_tool(tool, models_dir / "tiny.keras", *args)
    assert_refused(completed, tool, str(target), "already exists", "--overwrite")
    assert sorted(os.listdir(tmp_path)) == before
    kept = target / "saved_model.pb" if tool == "to_savedmodel" else target
    assert kept.read_bytes() == b"previous export"


def run_quantize(model, output, mode, data=None, env=None):
    """`python -m export.to_tflite MODEL --output OUTPUT --quantize MODE`.

    With `--representative-data DATA` when `data` is given.
    """
    args = [model, "--output", output, "--quantize", mode]
    if data is not None:
        args += ["--representative-data", data]
    return run_tool("to_tflite", *args, env=env)


def run_int8_with_scratch(models_dir, folder, data, **env):
    """Quantises tiny8.keras to `folder/q.tflite` (int8, calibrated on `data`).

    TMPDIR is a new empty `folder/tmpdir`; returns the completed process and that
    folder, which the tool must leave empty.
    """
    scratch = folder / "tmpdir"
    scratch.mkdir()
    completed = run_quantize(
        models_dir / "tiny8.keras",
        folder / "q.tflite",
        "int8",
        data,
        env={"TMPDIR": str(scratch), **env},
    )
    return completed, scratch


@pytest.mark.e2e
@pytest.mark.parametrize(
    "mode,data_shape,keywords",
    [
        ("int8", None, ["int8", "--representative-data"]),
        ("int4", None, ["--quantize", "int4", "none|float16|dynamic|int8"]),
        ("int8", (8, 28, 28), ["--representative-data", "(8, 28, 28)"]),
    ],
    ids=["int8_without_data", "unknown_mode", "data_of_wrong_shape"],
)
def test_quantize_settings_refused(models_dir, tmp_path, mode, data_shape, keywords):
    data = None
    if data_shape is not None:
        data = tmp_path / "wrong.npy"
        np.save(data, np.random.default_rng(0).random(data_shape).astype(np.float32))
    completed = run_quantize(
        models_dir / "tiny.keras", tmp_path / "q.tflite", mode, data
    )
    assert_refused(completed, "to_tflite", *keywords)
    assert os.listdir(tmp_path) == ([] if data is None else ["wrong.npy"])


@pytest.mark.parametrize(
    "args,keywords",
    [
        ([], ["`MODEL` must be exactly one path", "Received: 0 arguments"]),
        (
            ["a.keras", "b.keras"],
            ["`MODEL` must be exactly one path", "Received: 2 arguments"],
        ),
        (["a.keras", "--no-such-flag"], ["no-such-flag"]),
        (["a.keras", "--opset", "seven"], ["--opset", "seven"]),
    ],
)
def test_usage_errors(args, keywords):
    completed = run_tool("to_onnx", *args)
    assert_refused(completed, "to_onnx", *keywords, code=2)


@pytest.mark.e2e
@pytest.mark.parametrize("tool", ["to_tflite", "to_onnx"])
def test_op_the_converter_cannot_handle(tool, models_dir, tmp_path):
    target, args = output_args(tool, tmp_path)
    completed = run_tool(tool, models_dir / "erfinv.keras", *args, "--unsafe")
    assert_refused(completed, tool, "cannot", "Erfinv")
    assert "safe_mode=False" in completed.stderr  # The --unsafe warning.
    assert os.listdir(tmp_path) == []


@pytest.mark.e2e
def test_lambda_refused_without_unsafe(models_dir, tmp_path):
    completed = run_tool(
        "to_onnx", models_dir / "lambda.keras", "--output", tmp_path / "l.onnx"
    )
    assert_refused(completed, "to_onnx", "Lambda", "safe mode", "--unsafe")
    assert os.listdir(tmp_path) == []


def test_verbose_shows_the_traceback(tmp_path):
    completed = run_tool(
        "to_onnx",
        tmp_path / "missing.keras",
        "--output",
        tmp_path / "m.onnx",
        "--verbose",
    )
    assert completed.returncode != 0
    assert "Traceback" in completed.stderr
    assert "FileNotFoundError" in completed.stderr


@pytest.mark.e2e
@pytest.mark.parametrize(
    "name,values,keyword",
    [("nan.npy", np.nan, "50 NaN"), ("inf.npy", np.inf, "1 inf")],
)
def test_int8_calibrated_on_non_finite_data_refused(
    models_dir, tmp_path, name, values, keyword
):
    """The issue's commands: exit 2, one line, nothing written, no scratch left."""
    data = np.random.default_rng(0).random((50, 8)).astype(np.float32)
    if np.isnan(values):
        data[:, 0] = np.nan
    else:
        data[7, 3] = np.inf
    np.save(tmp_path / name, data)
    completed, scratch = run_int8_with_scratch(models_dir, tmp_path, tmp_path / name)
    assert_refused(
        completed, "to_tflite", "`--representative-data` must be finite", keyword
    )
    assert sorted(os.listdir(tmp_path)) == [name, "tmpdir"]
    assert os.listdir(scratch) == []


@pytest.mark.e2e
def test_successful_run_prints_no_tensorflow_start_up_noise(models_dir, tmp_path):
    data = tmp_path / "calibration.npy"
    np.save(data, np.random.default_rng(0).random((64, 8)).astype(np.float32))
    completed, scratch = run_int8_with_scratch(
        models_dir, tmp_path, data, TF_CPP_MIN_LOG_LEVEL="0"
    )
    assert completed.returncode == 0, completed.stderr
    for noise in ("cuInit", "oneDNN", "absl::InitializeLog", "cuda", "W0000", "I0000"):
        assert noise not in completed.stderr, completed.stderr
    assert completed.stderr == ""
    assert completed.stdout.startswith("verified tflite")
    assert "quantize=int8" in completed.stdout
    assert sorted(os.listdir(tmp_path)) == [
        "calibration.npy",
        "q.tflite",
        "q.tflite.json",
        "tmpdir",
    ]
    assert os.listdir(scratch) == []


@pytest.mark.parametrize(
    "argv,verbose",
    [
        (["tool"], False),
        (["tool", "--verbose"], True),
        (["tool", "-verbose"], True),
        (["tool", "--verbose=true"], True),
        (["tool", "--verbose=false"], False),
        (["tool", "--verbose", "--noverbose"], False),
        (["tool", "--", "--verbose"], False),
        (["tool", "verbose"], False),
    ],
)
def test_verbose_is_read_before_flags_are_parsed(argv, verbose):
    from export import cli

    assert cli.verbose_requested(argv) is verbose


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize(
    "where,keyword",
    [
        ("proc", "must be in a writable folder"),
        ("missing", "does not exist"),
        ("file", "is not a folder"),
    ],
)
def test_bad_output_location_refused_before_loading(
    tool, where, keyword, models_dir, tmp_path
):
    """The destination is checked first: the (corrupt) model is never opened."""
    if where == "proc" and not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    folder = {
        "proc": "/proc",
        "missing": str(tmp_path / "no" / "such"),
        "file": str(tmp_path / "plain"),
    }[where]
    (tmp_path / "plain").write_bytes(b"x")
    name = {"to_savedmodel": "out", "to_tflite": "out.tflite", "to_onnx": "out.onnx"}[
        tool
    ]
    completed = run_tool(
        tool, models_dir / "not_a_zip.keras", "--output", os.path.join(folder, name)
    )
    assert_refused(completed, tool, "`--output` must be", keyword)
    assert "not_a_zip" not in completed.stderr
    assert sorted(os.listdir(tmp_path)) == ["plain"]


@pytest.mark.parametrize("tool", ["to_tflite", "to_onnx"])
def test_existing_directory_for_a_file_format(tool, models_dir, tmp_path):
    target, args = output_args(tool, tmp_path)
    target.mkdir()
    completed = run_tool(tool, models_dir / "tiny.keras", *args)
    assert_refused(completed, tool, "must be a file path", "existing directory")
    assert os.listdir(tmp_path) == [target.name] and os.listdir(target) == []


@pytest.mark.e2e
@pytest.mark.parametrize(
    "tool,output,non_finite,classes,keywords",
    [
        ("to_savedmodel", "sm", True, 4, ["`--labelled-data` must be finite", "1 NaN"]),
        (
            "to_onnx",
            "m.onnx",
            False,
            5,
            ["`--labelled-data` labels must be class indices in 0..3"],
        ),
    ],
    ids=["nan_inputs", "labels_out_of_range"],
)
def test_bad_labelled_data_refused(
    models_dir, tmp_path, tool, output, non_finite, classes, keywords
):
    """The model has 4 classes; labelled data with a NaN or a 5th class is refused."""
    x = np.random.default_rng(0).random((20, 8)).astype(np.float32)
    if non_finite:
        x[4, 4] = np.nan
    np.savez(tmp_path / "labelled.npz", x=x, y=np.arange(20) % classes)
    completed = run_tool(
        tool,
        models_dir / "tiny8.keras",
        "--output",
        tmp_path / output,
        "--labelled-data",
        tmp_path / "labelled.npz",
    )
    assert_refused(completed, tool, *keywords)
    assert os.listdir(tmp_path) == ["labelled.npz"]


@pytest.mark.parametrize(
    "tool, flag",
    [
        ("to_savedmodel", "--output"),
        ("to_tflite", "--representative-data"),
        ("to_onnx", "--labelled-data"),
        ("report", "--budget"),
    ],
)
def test_help_lists_the_tool_flags_and_exits_0(tool, flag):
    completed = run_tool(tool, "--help")
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    assert f"  {flag}:" in completed.stdout
    assert "  --[no]verbose:" in completed.stdout


def test_error_and_warning_lines_stay_one_bounded_line(capsys):
    from export import cli

    cli.warn("tool", "  indented as it was")
    assert capsys.readouterr().err == "tool: warning:   indented as it was\n"
    cli.warn("tool", "w" * 1_000_000)
    with pytest.raises(SystemExit) as exit:
        cli.fail("tool", "first line\nsecond " + "e" * 1_000_000, 2)
    assert exit.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(len(line) < 1200 for line in lines)
    assert lines[1].startswith("tool: error: first line second eee")
