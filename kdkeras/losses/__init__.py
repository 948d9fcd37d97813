"""Distillation losses on logits: soft targets (Hinton et al. 2015), on full or
on top-k teacher targets, DKD, DIST, and the FitNets hint loss.

All functions take logits, not probabilities, and are written with `keras.ops`
so they run inside Keras 3 models, `tf_keras` models (TFMOT) and plain
`tf.function`s alike on the TensorFlow backend.

A `LogitsDistillationLoss` (`KnowledgeDistillation`, `DKD`, `DIST`) is what the
`Distiller` calls on raw teacher and student logits, with its own temperature;
any other Keras loss given as `distillation_loss_fn` is called as in the
keras.io example, on `softmax(t / T)` and `softmax(s / T)`, times `T²`.

loss    the temperature and weight checks, `LogitsDistillationLoss`
kd      `kd_loss` (`T² · KL`, from log-softmax), `KnowledgeDistillation`
top_k   `top_k_kd_loss` on top-k teacher targets (the K classes and the rest)
dkd     decoupled KD: `dkd_loss`, `DKD`
dist    Pearson-relation KD: `dist_loss`, `DIST`
hint    the FitNets hint loss
"""

from kdkeras.losses.dist import DIST
from kdkeras.losses.dist import dist_inter_class_per_example
from kdkeras.losses.dist import dist_intra_class_loss
from kdkeras.losses.dist import dist_loss
from kdkeras.losses.dkd import DKD
from kdkeras.losses.dkd import dkd_loss
from kdkeras.losses.dkd import dkd_loss_per_example
from kdkeras.losses.hint import hint_loss
from kdkeras.losses.hint import hint_loss_per_example
from kdkeras.losses.kd import KnowledgeDistillation
from kdkeras.losses.kd import kd_loss
from kdkeras.losses.kd import kd_loss_per_example
from kdkeras.losses.loss import MAX_TEMPERATURE
from kdkeras.losses.loss import MIN_TEMPERATURE
from kdkeras.losses.loss import LogitsDistillationLoss
from kdkeras.losses.loss import check_temperature
from kdkeras.losses.loss import check_weight
from kdkeras.losses.loss import float_logits
from kdkeras.losses.top_k import top_k_kd_loss
from kdkeras.losses.top_k import top_k_kd_loss_per_example
