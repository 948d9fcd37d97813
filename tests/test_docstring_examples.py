"""The Example sections of the public docstrings run and give what they show."""

import doctest
import importlib

import pytest

MODULES = [
    "kdkeras.bias",
    "models.data",
    "kdkeras.distiller",
    "kdkeras.hints",
    "kdkeras.losses",
    "kdkeras.online_soft_targets",
    "kdkeras.soft_targets",
    "kdkeras.targets.batch",
    "kdkeras.teachers",
    "kdkeras.xla",
    "kdkeras.random_layers",
    "kdkeras.model_graph",
    "kdkeras.compress.checks",
    "kdkeras.compress.distill",
    "experiments.augment",
    "experiments.checks",
    "experiments.cli",
    "experiments.less_data",
    "experiments.recipe",
    "experiments.report",
    "experiments.table_markdown",
    "export.worker",
    "models.cnn",
    "models.flops",
    "models.mlp",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0
