"""Offline soft targets; their home is `kdkeras.targets` (this is an alias).

`kdkeras.targets.cache` (the cache), `kdkeras.targets.dataset` (batches from
it), `kdkeras.targets.fingerprint` and `kdkeras.targets.augmentation` hold
what this module used to; the names below keep working.
"""

from kdkeras.targets.augmentation import check_no_augmentation
from kdkeras.targets.augmentation import inference_supports_jit
from kdkeras.targets.augmentation import random_augmentation_layers
from kdkeras.targets.cache import DTYPES
from kdkeras.targets.cache import FORMAT_VERSION
from kdkeras.targets.cache import StaleSoftTargetsError
from kdkeras.targets.cache import cache_soft_targets
from kdkeras.targets.cache import compute_soft_targets
from kdkeras.targets.cache import load_soft_targets
from kdkeras.targets.dataset import index_batches
from kdkeras.targets.dataset import soft_target_dataset
from kdkeras.targets.fingerprint import data_fingerprint
from kdkeras.targets.fingerprint import teacher_fingerprint
