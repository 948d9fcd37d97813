"""The Example sections of the public docstrings run and give what they show."""

import doctest
import importlib

import pytest

MODULES = [
    "kdkeras.bias",
    "models.data",
    "kdkeras.distiller",
    "kdkeras.hints",
    "kdkeras.losses.dist",
    "kdkeras.losses.dkd",
    "kdkeras.losses.hint",
    "kdkeras.losses.kd",
    "kdkeras.losses.loss",
    "kdkeras.losses.top_k",
    "kdkeras.arguments",
    "kdkeras.labels",
    "kdkeras.reductions",
    "kdkeras.soft_target_loss",
    "kdkeras.step_loss",
    "kdkeras.step_metrics",
    "kdkeras.targets.augmentation",
    "kdkeras.targets.batch",
    "kdkeras.targets.cache",
    "kdkeras.targets.dataset",
    "kdkeras.targets.fingerprint",
    "kdkeras.targets.inputs",
    "kdkeras.targets.online",
    "kdkeras.targets.shards",
    "kdkeras.targets.shard_files",
    "kdkeras.targets.shards_dataset",
    "kdkeras.targets.stream",
    "kdkeras.targets.topk",
    "kdkeras.teachers",
    "kdkeras.xla",
    "kdkeras.random_layers",
    "kdkeras.model_graph",
    "kdkeras.compress.distill",
    "experiments.augment",
    "experiments.checks",
    "experiments.cli",
    "experiments.less_data",
    "experiments.less_data_markdown",
    "experiments.less_data_seeds",
    "experiments.less_data_students",
    "experiments.less_data_subsets",
    "experiments.recipe",
    "experiments.report",
    "experiments.table_markdown",
    "export.measure.floor",
    "export.measure.sizes",
    "export.measure.timing",
    "export.measure.worker",
    "models.cnn",
    "models.compact",
    "models.flops",
    "models.mlp",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0
