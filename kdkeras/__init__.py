"""kdkeras: knowledge distillation for Keras 3 on TensorFlow.

The public API is what `__all__` lists; everything else (modules whose name
starts with `_`, and names not listed here or in a public subpackage's
`__all__`) is internal and may change without notice.

Training:
    Distiller             the keras.Model whose train_step blends hard and soft losses
    Hint                  a FitNets feature-matching term for the Distiller
    Ensemble              several teachers as one (arithmetic / geometric mean)
    logits_model, outputs_probabilities
                          read a softmax-output model through its logits
    UNLABELLED            the label (-1) of an unlabelled example in a partly labelled batch

Losses (all of them in `kdkeras.losses`):
    kd_loss               T² · KL(softmax(t/T) ‖ softmax(s/T)), from log-softmax
    KnowledgeDistillation, DKD, DIST
                          losses on raw logits (`distillation_loss_fn=kdkeras.DKD()`)
    LogitsDistillationLoss  their base class

Soft targets (`kdkeras.targets`):
    cache_soft_targets    run the teacher once over what `fit` takes (arrays,
                          dicts of arrays, datasets); keep its logits in memory
                          or in shards (by size, or `storage=`, `top_k=`)
    load_soft_targets, StaleSoftTargetsError
    soft_target_dataset   batches (x, {labels, teacher_logits}) for the Distiller,
                          from either storage
    online_soft_target_dataset
                          the teacher run per batch in the input pipeline

Other:
    adjust_class_bias, choose_bias_shift
                          omitted-class bias adjustment (paper §3)
    distribute            strategy from the environment, multi-worker fit, launcher
    compress              TFMOT bridge: prune, cluster, QAT while distilling
                          (imported on first use: it loads tf_keras)
"""

# First, before TensorFlow: quiets its start-up in a kdkeras command line.
from kdkeras import _quiet_start  # noqa: F401
from kdkeras import bias
from kdkeras import distribute
from kdkeras import hints
from kdkeras import losses
from kdkeras import targets
from kdkeras import teachers
from kdkeras.bias import adjust_class_bias
from kdkeras.bias import choose_bias_shift
from kdkeras.distiller import Distiller
from kdkeras.hints import Hint
from kdkeras.losses import DIST
from kdkeras.losses import DKD
from kdkeras.losses import KnowledgeDistillation
from kdkeras.losses import LogitsDistillationLoss
from kdkeras.losses import kd_loss
from kdkeras.targets import UNLABELLED
from kdkeras.targets import StaleSoftTargetsError
from kdkeras.targets import cache_soft_targets
from kdkeras.targets import load_soft_targets
from kdkeras.targets import online_soft_target_dataset
from kdkeras.targets import soft_target_dataset
from kdkeras.teachers import Ensemble
from kdkeras.teachers import logits_model
from kdkeras.teachers import outputs_probabilities

__version__ = "0.1.0"

__all__ = [
    "DIST",
    "DKD",
    "Distiller",
    "Ensemble",
    "Hint",
    "KnowledgeDistillation",
    "LogitsDistillationLoss",
    "StaleSoftTargetsError",
    "UNLABELLED",
    "adjust_class_bias",
    "bias",
    "cache_soft_targets",
    "choose_bias_shift",
    "compress",
    "distribute",
    "hints",
    "kd_loss",
    "load_soft_targets",
    "logits_model",
    "losses",
    "online_soft_target_dataset",
    "outputs_probabilities",
    "soft_target_dataset",
    "targets",
    "teachers",
]


def __getattr__(name):
    # `kdkeras.compress` loads TFMOT and tf_keras (seconds): import it on use.
    if name == "compress":
        import importlib

        return importlib.import_module("kdkeras.compress")
    raise AttributeError(f"module 'kdkeras' has no attribute {name!r}")
