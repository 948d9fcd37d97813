"""Model builders for 28×28 images (Fashion-MNIST / MNIST), all output logits,
and the reference data set (`models.data`: Fashion-MNIST through Keras' loader).

Every builder returns a functional `keras.Model` from an input named `images`,
`(batch, *input_shape)`, to a Dense layer without activation named `logits`,
`(batch, num_classes)`; its other layers are named too (for hint losses).
Each builder's docstring states its parameter count and FLOPs per example
(`models.flops.count_flops`: 2 × multiply-accumulates). The exception is
`build_bert_classifier`, a keras_hub text classifier (dict of int inputs) from
a config, for the optional text extra.
"""

from models import data
from models import flops
from models.bert import build_bert_classifier
from models.cnn import build_cnn_student
from models.cnn import build_cnn_teacher
from models.compact import build_compact_cnn_student
from models.compact import build_compact_student
from models.data import load_fashion_mnist
from models.flops import count_flops
from models.flops import count_training_flops
from models.mlp import build_mlp_student
from models.mlp import build_mlp_teacher

__all__ = [
    "build_bert_classifier",
    "build_cnn_student",
    "build_cnn_teacher",
    "build_compact_cnn_student",
    "build_compact_student",
    "build_mlp_student",
    "build_mlp_teacher",
    "count_flops",
    "count_training_flops",
    "data",
    "flops",
    "load_fashion_mnist",
]
