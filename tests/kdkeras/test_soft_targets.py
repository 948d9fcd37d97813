"""kdkeras.soft_targets keeps its public names; their home is kdkeras.targets."""

import pytest

import kdkeras
from kdkeras import soft_targets
from kdkeras import targets
from kdkeras.targets import augmentation
from kdkeras.targets import cache
from kdkeras.targets import dataset
from kdkeras.targets import fingerprint


@pytest.mark.parametrize(
    "name, home",
    [
        ("cache_soft_targets", cache),
        ("load_soft_targets", cache),
        ("compute_soft_targets", cache),
        ("StaleSoftTargetsError", cache),
        ("soft_target_dataset", dataset),
        ("index_batches", dataset),
        ("teacher_fingerprint", fingerprint),
        ("data_fingerprint", fingerprint),
        ("random_augmentation_layers", augmentation),
        ("check_no_augmentation", augmentation),
        ("inference_supports_jit", augmentation),
    ],
)
def test_old_names_are_the_targets_packages_objects(name, home):
    assert getattr(soft_targets, name) is getattr(home, name)


def test_package_exports_the_cache_api():
    assert kdkeras.cache_soft_targets is targets.cache_soft_targets
    assert kdkeras.StaleSoftTargetsError is targets.StaleSoftTargetsError
    assert issubclass(targets.StaleSoftTargetsError, ValueError)
