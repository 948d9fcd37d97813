"""Soft targets: the batch contract, the caches and the online pipeline.

cache         `cache_soft_targets`: the one entry point, for everything
              `fit` takes (arrays, dicts of arrays, datasets), storage
              chosen by size or by argument; `soft_target_dataset`: the
              training batches from either storage (`SoftTargetCache`)
batch         the keys of a target dict and `split_targets`, the one reader
              of a batch's targets (`TopKTargets`); `UNLABELLED`
memory/       the in-memory storage: one digest-checked file
shards/       the sharded storage for streams larger than memory and top-k
              targets
cli           `python -m kdkeras.targets.cli`: the sharded cache from the
              command line, one worker at a time (`--shard i/n`, `--merge`)
online        `online_soft_target_dataset`: the teacher run per batch in
              the input pipeline (prefetched; consistent augmentation)
topk          `top_k=K` targets for many classes (their loss lives in
              `kdkeras.losses`)
fingerprint   what keys a cache to its teacher and its data
augmentation  random augmentation layers, refused with cached targets
inputs        the per-example array checks all of the above share
files         atomic, umask-respecting writes of cache files and folders
"""

from kdkeras.targets.augmentation import check_no_augmentation
from kdkeras.targets.augmentation import inference_supports_jit
from kdkeras.targets.augmentation import random_augmentation_layers
from kdkeras.targets.batch import LABELS_KEY
from kdkeras.targets.batch import TEACHER_LOGITS_KEY
from kdkeras.targets.batch import TEACHER_TAIL_KEY
from kdkeras.targets.batch import TEACHER_TEMPERATURE_KEY
from kdkeras.targets.batch import TEACHER_TOP_K_INDICES_KEY
from kdkeras.targets.batch import TEACHER_TOP_K_VALUES_KEY
from kdkeras.targets.batch import UNLABELLED
from kdkeras.targets.batch import TopKTargets
from kdkeras.targets.batch import logits_batch
from kdkeras.targets.batch import split_targets
from kdkeras.targets.batch import top_k_target_dict
from kdkeras.targets.cache import SoftTargetCache
from kdkeras.targets.cache import cache_soft_targets
from kdkeras.targets.cache import soft_target_dataset
from kdkeras.targets.fingerprint import data_fingerprint
from kdkeras.targets.fingerprint import teacher_fingerprint
from kdkeras.targets.memory.cache import StaleSoftTargetsError
from kdkeras.targets.memory.cache import compute_soft_targets
from kdkeras.targets.memory.cache import load_soft_targets
from kdkeras.targets.online import online_soft_target_dataset
from kdkeras.targets.shards.writer import SoftTargetShards
from kdkeras.targets.shards.writer import load_soft_target_shards
from kdkeras.targets.shards.writer import merge_soft_target_shards
from kdkeras.targets.topk import dense_logits_from_top_k
from kdkeras.targets.topk import top_k_targets

__all__ = [
    "LABELS_KEY",
    "SoftTargetCache",
    "SoftTargetShards",
    "StaleSoftTargetsError",
    "TEACHER_LOGITS_KEY",
    "TEACHER_TAIL_KEY",
    "TEACHER_TEMPERATURE_KEY",
    "TEACHER_TOP_K_INDICES_KEY",
    "TEACHER_TOP_K_VALUES_KEY",
    "TopKTargets",
    "UNLABELLED",
    "cache_soft_targets",
    "check_no_augmentation",
    "compute_soft_targets",
    "data_fingerprint",
    "dense_logits_from_top_k",
    "inference_supports_jit",
    "load_soft_target_shards",
    "load_soft_targets",
    "logits_batch",
    "merge_soft_target_shards",
    "online_soft_target_dataset",
    "random_augmentation_layers",
    "soft_target_dataset",
    "split_targets",
    "teacher_fingerprint",
    "top_k_target_dict",
    "top_k_targets",
]
