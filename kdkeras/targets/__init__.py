"""Soft targets: the batch contract, the offline cache and the online pipeline.

batch         the keys of a target dict (`LABELS_KEY`, `TEACHER_LOGITS_KEY`,
              the top-k keys `TEACHER_TOP_K_*_KEY`) and `split_targets`,
              the one reader of a batch's targets (`TopKTargets`);
              `logits_batch`, `top_k_target_dict`; `UNLABELLED`, an
              unlabelled example
cache         `cache_soft_targets`: the teacher's logits for in-memory
              arrays, computed once, stored digest-checked in one file
dataset       `soft_target_dataset`: batches of inputs with cached logits
online        `online_soft_target_dataset`: the teacher run per batch in
              the input pipeline (prefetched; consistent augmentation)
shards        `cache_soft_target_shards`: the teacher streamed over a
              `tf.data.Dataset`/`PyDataset`, logits in `.npy` shards with a
              digest-checked index (worker shards, `merge_soft_target_shards`)
shards_dataset  `soft_target_shards_dataset`: training batches joined with
              the shards by stream position
stream        one pass over a finite, deterministic stream of input batches
shard_files   shard `.npy` files written row by row, read by position
cli           `python -m kdkeras.targets.cli`: `--shard i/n`, `--merge`
topk          `top_k=K` targets for many classes (their loss,
              `top_k_kd_loss`, lives in `kdkeras.losses`), and the checks
              that a Distiller trains on them at their temperature
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
from kdkeras.targets.cache import StaleSoftTargetsError
from kdkeras.targets.cache import cache_soft_targets
from kdkeras.targets.cache import compute_soft_targets
from kdkeras.targets.cache import load_soft_targets
from kdkeras.targets.dataset import soft_target_dataset
from kdkeras.targets.fingerprint import data_fingerprint
from kdkeras.targets.fingerprint import teacher_fingerprint
from kdkeras.targets.online import online_soft_target_dataset
from kdkeras.targets.shards import SoftTargetShards
from kdkeras.targets.shards import cache_soft_target_shards
from kdkeras.targets.shards import load_soft_target_shards
from kdkeras.targets.shards import merge_soft_target_shards
from kdkeras.targets.shards_dataset import soft_target_shards_dataset
from kdkeras.targets.topk import dense_logits_from_top_k
from kdkeras.targets.topk import top_k_kd_loss
from kdkeras.targets.topk import top_k_kd_loss_per_example
from kdkeras.targets.topk import top_k_targets
