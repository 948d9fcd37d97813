"""kdkeras: knowledge distillation for Keras 3 on TensorFlow.

Public API:
    Distiller             the keras.Model whose train_step blends hard and soft losses
    Hint                  a FitNets feature-matching term for the Distiller
    Ensemble              several teachers as one (arithmetic / geometric mean)
    kd_loss               T² · KL(softmax(t/T) ‖ softmax(s/T)), from log-softmax
    DKD, DIST             decoupled KD and Pearson-relation KD, on raw logits
                          (`distillation_loss_fn=kdkeras.DKD()`)
    UNLABELLED            the label (-1) of an unlabelled example in a partly labelled batch
    cache_soft_targets    run the teacher once; train on its cached logits
    soft_target_dataset   batches (x, {LABELS_KEY: y, TEACHER_LOGITS_KEY: t}) for the Distiller
    online_soft_target_dataset
                          the same batches with the teacher run per batch in the
                          input pipeline (prefetched; consistent augmentation)
    cache_soft_target_shards, soft_target_shards_dataset
                          the cache for streams larger than memory (sharded, top-k)
    adjust_class_bias     raise one class's output bias (paper §3), amount chosen on held-out data
    targets               the home of soft targets: batch contract, cache, shards, online
    bias, distribute, hints, losses, online_soft_targets, soft_targets, teachers: the modules behind them
    the Distiller's parts: labels (sparse / one-hot, the unlabelled mask, range checks),
                          reductions (global sums, per-example values), soft_target_loss and
                          step_loss (one step's loss), step_metrics (what a step reports),
                          step_functions (checks outside XLA, the step inside), arguments
    random_layers         which layers are random in training and the identity at inference
    xla                   when jit_compile="auto" uses XLA (on CPU: dense layers, no training-time random draws)
    compress              TFMOT bridge: prune, cluster, QAT while distilling (loaded on use)
"""

from kdkeras import bias
from kdkeras import distribute
from kdkeras import hints
from kdkeras import losses
from kdkeras import online_soft_targets
from kdkeras import random_layers
from kdkeras import soft_targets
from kdkeras import targets
from kdkeras import teachers
from kdkeras import xla
from kdkeras.bias import adjust_class_bias
from kdkeras.bias import choose_bias_shift
from kdkeras.distiller import Distiller
from kdkeras.hints import Hint
from kdkeras.losses import DIST
from kdkeras.losses import DKD
from kdkeras.losses import KnowledgeDistillation
from kdkeras.losses import LogitsDistillationLoss
from kdkeras.losses import kd_loss
from kdkeras.online_soft_targets import online_soft_target_dataset
from kdkeras.soft_targets import StaleSoftTargetsError
from kdkeras.soft_targets import cache_soft_targets
from kdkeras.soft_targets import load_soft_targets
from kdkeras.soft_targets import soft_target_dataset
from kdkeras.targets import UNLABELLED
from kdkeras.targets import cache_soft_target_shards
from kdkeras.targets import soft_target_shards_dataset
from kdkeras.teachers import Ensemble
from kdkeras.teachers import logits_model
from kdkeras.teachers import outputs_probabilities

__version__ = "0.1.0"


def __getattr__(name):
    # `kdkeras.compress` loads TFMOT and tf_keras (seconds): import it on use.
    if name == "compress":
        import importlib

        return importlib.import_module("kdkeras.compress")
    raise AttributeError(f"module 'kdkeras' has no attribute {name!r}")
