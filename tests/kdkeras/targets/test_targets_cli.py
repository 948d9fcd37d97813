"""Tests for kdkeras/targets/cli.py: workers' shards from the command line."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kdkeras.targets import cli
from kdkeras.targets.shards import writer as shards
from tests.command_line import REPO

FEATURES = 5
CLASSES = 7


@pytest.fixture
def files(tmp_path):
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)])
    teacher.save(tmp_path / "teacher.keras")
    x = np.random.default_rng(0).standard_normal((41, FEATURES)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    return tmp_path, teacher, x


def values(**overrides):
    result = {
        "teacher": None,
        "inputs": None,
        "output": None,
        "batch-size": 8,
        "dtype": None,
        "top-k": None,
        "temperature": None,
        "examples-per-shard": 10,
        "shard": None,
        "merge": None,
        "on-stale": "recompute",
        "import": None,
        "verbose": False,
    }
    result.update(overrides)
    return result


def test_two_workers_then_merge_equal_one_process(files):
    folder, teacher, x = files
    common = dict(teacher=str(folder / "teacher.keras"), inputs=str(folder / "x.npy"))
    assert cli.run(values(output=str(folder / "one"), **common)) == 0
    for worker in range(2):
        assert (
            cli.run(values(output=str(folder / "part"), shard=f"{worker}/2", **common))
            == 0
        )
    parts = [str(folder / "part.0-of-2"), str(folder / "part.1-of-2")]
    assert cli.run(values(merge=parts, output=str(folder / "merged"))) == 0
    names = sorted(os.listdir(folder / "one"))
    assert len(names) == 1 + 2 * 5  # index + ceil(41 / 10) shards of 2 files
    for name in names:
        assert (folder / "merged" / name).read_bytes() == (
            folder / "one" / name
        ).read_bytes()
    merged = shards.load_soft_target_shards(folder / "merged", teacher)
    np.testing.assert_allclose(
        merged.logits(np.arange(41)),
        teacher.predict(x, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_parse_shard():
    assert cli.parse_shard("0/2") == (0, 2)
    for text in ("2/2", "a/b", "1", "-1/2"):
        with pytest.raises(cli.UsageError, match="`--shard`"):
            cli.parse_shard(text)


@pytest.mark.parametrize(
    "overrides, code, word",
    [
        ({"output": None}, 2, "`--output`"),
        ({"inputs": "missing.npy"}, 2, "`--inputs`"),
        ({"shard": "2/2"}, 2, "`--shard`"),
        ({"top-k": 3}, 2, "`--temperature`"),
        ({"batch-size": 0}, 2, "`--batch-size`"),
        ({"merge": ["a"], "shard": "0/2"}, 2, "`--merge`"),
        ({"import": "layers.py"}, 2, "`--import` must be"),
        ({"import": "ok, /" + "x" * 5000}, 2, "`--import` must be"),
        ({"import": "no_such_module_kd"}, 2, "no_such_module_kd"),
        ({"merge": ["a"], "import": "user_layers"}, 2, "`--merge`"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, capsys, overrides, code, word):
    folder, _, _ = files
    arguments = values(
        teacher=str(folder / "teacher.keras"),
        inputs=str(folder / "x.npy"),
        output=str(folder / "out"),
    )
    for name, value in overrides.items():
        arguments[name] = str(folder / value) if name == "inputs" and value else value
    assert cli.run(arguments) == code
    error = capsys.readouterr().err
    assert error.startswith("kdkeras.targets.cli: error: ") and word in error
    assert error.count("\n") == 1 and len(error) < 800
    assert not os.path.exists(folder / "out")


@pytest.mark.e2e
def test_process_exit_codes_and_stale_check(files):
    folder, _, x = files
    base = [
        sys.executable,
        "-m",
        "kdkeras.targets.cli",
        f"--teacher={folder / 'teacher.keras'}",
        f"--inputs={folder / 'x.npy'}",
        f"--output={folder / 'out'}",
        "--examples-per-shard=10",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    assert (
        cli.run(
            values(
                teacher=str(folder / "teacher.keras"),
                inputs=str(folder / "x.npy"),
                output=str(folder / "out"),
            )
        )
        == 0
    )
    np.save(folder / "x.npy", x[::-1].copy())  # other data order
    stale = subprocess.run(
        base + ["--on-stale=error"], capture_output=True, text=True, env=env
    )
    assert stale.returncode == 1
    assert "another data order" in stale.stderr and "Traceback" not in stale.stderr
    bad = subprocess.run(
        base + ["--batch-size=x"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_help_prints_usage_and_every_flag(capsys):
    assert cli.entry_point(["cli", "--help"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "python -m kdkeras.targets.cli" in out
    for name in ("--teacher", "--inputs", "--merge", "--verbose", "--on-stale"):
        assert name in out


def test_a_damaged_index_is_one_line_and_exit_1(files, capsys):
    folder, _, _ = files
    arguments = values(
        teacher=str(folder / "teacher.keras"),
        inputs=str(folder / "x.npy"),
        output=str(folder / "out"),
    )
    assert cli.run(arguments) == 0
    index = folder / "out" / "index.json"
    content = json.loads(index.read_text())
    del content["classes"]
    index.write_text(json.dumps(content))
    capsys.readouterr()
    assert cli.run(dict(arguments, **{"on-stale": "error"})) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert "index.json" in error and "KeyError" not in error
    # Recomputed (the folder is the tool's own) with the default.
    assert cli.run(arguments) == 0


@pytest.mark.parametrize("verbose", [False, True])
def test_inputs_the_teacher_cannot_take_name_both_shapes(files, capsys, verbose):
    folder, _, x = files
    np.save(folder / "x7.npy", x[:, :-1].copy())
    arguments = values(
        teacher=str(folder / "teacher.keras"),
        inputs=str(folder / "x7.npy"),
        output=str(folder / "out"),
        verbose=verbose,
    )
    assert cli.run(arguments) == 2
    error = capsys.readouterr().err
    last = error.splitlines()[-1]
    assert last.startswith("kdkeras.targets.cli: error: `--inputs`")
    assert f"(None, {FEATURES})" in last and f"(None, {FEATURES - 1})" in last
    assert ("Traceback" in error) == verbose
    assert not os.path.exists(folder / "out")


@pytest.mark.parametrize(
    "name, content, word",
    [
        ("inputs", b"not a numpy file", "`--inputs` must be a .npy array"),
        ("teacher", b"not a model", "`--teacher` must be a Keras model file"),
    ],
)
def test_unreadable_files_exit_2_with_one_line(files, capsys, name, content, word):
    folder, _, _ = files
    (folder / "bad").write_bytes(content)
    arguments = values(
        teacher=str(folder / "teacher.keras"),
        inputs=str(folder / "x.npy"),
        output=str(folder / "out"),
    )
    arguments[name] = str(folder / "bad")
    assert cli.run(arguments) == 2
    error = capsys.readouterr().err
    assert word in error and error.count("\n") == 1
    assert not os.path.exists(folder / "out")


@pytest.mark.e2e
def test_the_process_prints_only_its_own_lines(files):
    """No TensorFlow start-up lines before the tool's (no TF_CPP_MIN_LOG_LEVEL
    set here); --help exits 0; a bad flag exits 2; --verbose keeps the logs."""
    folder, _, _ = files
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "kdkeras.targets.cli"]
    helped = subprocess.run(
        command + ["--help"], capture_output=True, text=True, env=env
    )
    assert helped.returncode == 0 and "--verbose" in helped.stdout
    assert "--import" in helped.stdout
    assert helped.stderr == ""
    missing = subprocess.run(
        command + [f"--teacher={folder / 'none.keras'}", "--inputs=x", "--output=o"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        f"kdkeras.targets.cli: error: `--teacher` must be an existing file. "
        f"Received: --teacher={str(folder / 'none.keras')!r}"
    ]


@pytest.mark.e2e
def test_import_loads_a_teacher_of_the_users_own_class(tmp_path):
    """The module registering the teacher's class is the user's, outside the
    repository: the tool loads the teacher only with `--import` naming it."""
    from tests.export import user_module

    module = user_module.write_module(tmp_path, name="teacher_layers")
    teacher = user_module.save_trained(module, tmp_path / "teacher.keras", width=4)
    x, _ = user_module.data(24, seed=5)
    np.save(tmp_path / "x.npy", x)
    command = [
        sys.executable,
        "-m",
        "kdkeras.targets.cli",
        "--teacher=teacher.keras",
        "--inputs=x.npy",
        "--batch-size=8",
    ]
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    refused = subprocess.run(
        command + ["--output=without"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("kdkeras.targets.cli: error: `--teacher`")
    assert not os.path.exists(tmp_path / "without")
    completed = subprocess.run(
        command + ["--output=targets", "--import=teacher_layers"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    cached = shards.load_soft_target_shards(tmp_path / "targets", teacher)
    np.testing.assert_allclose(
        cached.logits(np.arange(24)),
        np.asarray(teacher(x, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )
