"""`--import`: the export tools load `.keras` files naming a user's registered classes.

The module registering the class lives outside the repository (the user's
folder, the tools' working directory); `--import=<module>` imports it before
the model is loaded. Only module names are accepted, checked before any work.
"""

import os

import numpy as np
import pytest

from export import loading
from tests.command_line import run_tool
from tests.export import user_module


def error_line(completed, tool):
    """The one `export.<tool>: error:` line; no traceback."""
    assert "Traceback" not in completed.stderr
    errors = [
        line
        for line in completed.stderr.splitlines()
        if line.startswith(f"export.{tool}: error: ")
    ]
    assert len(errors) == 1, completed.stderr
    return errors[0]


@pytest.mark.parametrize(
    "value, names",
    [
        ("user_layers", ("user_layers",)),
        ("my_package.layers, other._private", ("my_package.layers", "other._private")),
        ("", ()),
        (None, ()),
    ],
)
def test_module_names_are_parsed(value, names):
    assert loading.parse_module_names(value) == names


@pytest.mark.parametrize(
    "value",
    ["user_layers.py", "./user_layers", "/tmp/evil", "a..b", "1module", "x;rm -rf"],
)
def test_anything_but_a_module_name_is_refused(value):
    with pytest.raises(ValueError, match=r"^`--import` must be .*module names") as e:
        loading.parse_module_names(f"ok_module,{value}")
    assert "\n" not in str(e.value)


def test_a_huge_value_is_echoed_bounded():
    with pytest.raises(ValueError) as caught:
        loading.parse_module_names("/" + "x" * 100_000)
    assert len(str(caught.value)) < 400


def test_a_module_that_does_not_import_is_named_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "broken_layers.py").write_text("raise RuntimeError('boom\\nmore')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(loading.ModelLoadError) as caught:
        loading.import_modules("no_such_module_kd")
    assert "no_such_module_kd" in str(caught.value)
    with pytest.raises(loading.ModelLoadError) as caught:
        loading.import_modules(["broken_layers"])
    message = str(caught.value)
    assert "broken_layers" in message and "boom" in message and "\n" not in message
    assert "broken_layers" not in loading.imported_modules()


def test_imported_modules_are_remembered_with_their_folder(tmp_path, monkeypatch):
    (tmp_path / "remembered_layers.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    loading.import_modules("remembered_layers")
    assert "remembered_layers" in loading.imported_modules()
    assert str(tmp_path) in loading.imported_module_roots()


@pytest.mark.parametrize("tool", ["to_onnx", "to_tflite", "to_savedmodel"])
def test_a_file_path_is_a_usage_error_before_any_work(tool, tmp_path):
    output = tmp_path / "out.onnx"
    completed = run_tool(
        tool, tmp_path / "missing.keras", "--output", output, "--import=layers.py"
    )
    assert completed.returncode == 2
    line = error_line(completed, tool)
    assert "`--import` must be" in line and "layers.py" in line
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory):
    """The user's folder: their module and a model of its class, trained briefly."""
    folder = tmp_path_factory.mktemp("user")
    module = user_module.write_module(folder)
    model = user_module.save_trained(module, folder / "student.keras", width=8)
    return folder, model


@pytest.mark.e2e
def test_exporter_loads_the_users_class_with_import(user_folder, tmp_path):
    from export import runtimes
    from export import verify

    folder, model = user_folder
    output = tmp_path / "student.onnx"
    completed = run_tool(
        "to_onnx",
        folder / "student.keras",
        "--output",
        output,
        "--import=user_layers",
        cwd=folder,
    )
    assert completed.returncode == 0, completed.stderr
    x, _ = user_module.data(29, seed=9)
    actual = runtimes.load(str(output), "onnx").predict(x)
    expected = np.asarray(model(x, training=False))
    assert verify.relative_error(actual, expected) < 1e-5


@pytest.mark.e2e
@pytest.mark.parametrize(
    "tool, suffix, flags, run_in_user_folder, named",
    [
        # Without --import the class is not found: the error names the flag.
        ("to_onnx", ".onnx", [], False, ["UserCNN", "--import"]),
        # A module that cannot be imported is named.
        (
            "to_tflite",
            ".tflite",
            ["--import=user_layers,not_installed_kd"],
            True,
            ["not_installed_kd"],
        ),
    ],
    ids=["without-import", "missing-module"],
)
def test_import_problems_are_one_line_and_write_nothing(
    user_folder, tmp_path, tool, suffix, flags, run_in_user_folder, named
):
    folder, _ = user_folder
    completed = run_tool(
        tool,
        folder / "student.keras",
        "--output",
        tmp_path / f"student{suffix}",
        *flags,
        cwd=folder if run_in_user_folder else tmp_path,
    )
    assert completed.returncode == 2
    line = error_line(completed, tool)
    assert all(part in line for part in named), line
    assert os.listdir(tmp_path) == []
