"""Distributed training: the strategy, the multi-worker fit loop, the launcher.

Public API:
    strategy_from_environment   the `tf.distribute` strategy `TF_CONFIG` and
                                the local GPUs call for
    parse_tf_config, num_workers, is_chief, wait_for_chief
                                reading `TF_CONFIG`
    per_replica_batch_size, with_auto_shard_policy, distribute_dataset
                                sharding input over the replicas
    needs_multi_worker_fit, multi_worker_fit
                                `fit` under `MultiWorkerMirroredStrategy`
                                (used by `kdkeras.Distiller.fit`)
    launch                      run a script as N local workers
                                (`python -m kdkeras.distribute.launch`)
"""

from kdkeras.distribute import launch
from kdkeras.distribute import multi_worker
from kdkeras.distribute import strategy
from kdkeras.distribute.multi_worker import fit as multi_worker_fit
from kdkeras.distribute.multi_worker import needs_multi_worker_fit
from kdkeras.distribute.multi_worker import read_training_state
from kdkeras.distribute.multi_worker import save_weights_atomically
from kdkeras.distribute.strategy import DEFAULT_TIMEOUT_SECONDS
from kdkeras.distribute.strategy import TF_CONFIG
from kdkeras.distribute.strategy import distribute_dataset
from kdkeras.distribute.strategy import is_chief
from kdkeras.distribute.strategy import num_workers
from kdkeras.distribute.strategy import parse_tf_config
from kdkeras.distribute.strategy import per_replica_batch_size
from kdkeras.distribute.strategy import strategy_from_environment
from kdkeras.distribute.strategy import wait_for_chief
from kdkeras.distribute.strategy import with_auto_shard_policy
