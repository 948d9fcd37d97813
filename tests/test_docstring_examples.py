"""The Example sections of the public docstrings run and give what they show.

The modules are discovered, not listed: every module under the packages below whose
source holds a docstring example (`>>> `) is run, so a new example cannot be left out.
"""

import doctest
import importlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = (
    "kdkeras",
    "kdutils",
    "models",
    "export",
    "experiments",
    "benchmarks",
    "examples",
)


def modules_with_examples():
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ">>> " not in path.read_text(encoding="utf-8"):
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join(parts))
    return names


MODULES = modules_with_examples()


def test_modules_are_discovered():
    assert "export.to_onnx" in MODULES
    assert "kdkeras.losses.kd" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failures = []
    for test in finder.find(module, name):
        runner.run(test, out=failures.append)
    summary = runner.summarize(verbose=False)
    assert summary.attempted > 0, f"{name} has no docstring example"
    assert summary.failed == 0, "".join(failures)
