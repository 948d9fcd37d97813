"""kdkeras: knowledge distillation for Keras 3 on TensorFlow.

Public API:
    Distiller            the keras.Model whose train_step blends hard and soft losses
    Hint                 a FitNets feature-matching term for the Distiller
    kd_loss              T² · KL(softmax(t/T) ‖ softmax(s/T)), from log-softmax
    losses, hints, data  the modules behind them
    distribute           strategy from the environment (TF_CONFIG, local GPUs)
"""

from kdkeras import data
from kdkeras import distribute
from kdkeras import hints
from kdkeras import losses
from kdkeras.distiller import Distiller
from kdkeras.hints import Hint
from kdkeras.losses import KnowledgeDistillation
from kdkeras.losses import kd_loss

__version__ = "0.1.0"
