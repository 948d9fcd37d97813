"""The model zoo check: the architectures users bring, through every step.

`python -m benchmarks.zoo` builds each architecture of
`architectures.ARCHITECTURES` (keras.applications backbones at a small width,
a keras_hub BERT classifier pair from a config, a subclassed model, a
two-input functional model) at 32x32x3 / 16 tokens and 10 classes, trains it
briefly on synthetic learnable data, and runs each step of `steps.STEPS` on it:
fit with a teacher (`kdkeras.Distiller`), the `.keras` round trip, SavedModel,
ONNX, TFLite fp32 / float16 / dynamic / int8 (with `float_fallback="auto"`)
and `python -m export.report`. It prints one matrix (architecture x step, "ok"
or the one-line reason) and writes it, with the command, to a section of
BENCHMARKS.md.

Usage:

    python -m benchmarks.zoo                                  # the whole matrix
    python -m benchmarks.zoo --models=mobilenet_a025,bert_4to1 --output=zoo.md
"""

from benchmarks.zoo.architectures import ARCHITECTURES
from benchmarks.zoo.architectures import CI_SUBSET
from benchmarks.zoo.architectures import DEFAULT_MODELS
from benchmarks.zoo.matrix import render_matrix
from benchmarks.zoo.matrix import run_zoo
from benchmarks.zoo.matrix import write_section
from benchmarks.zoo.steps import ALLOWED_REFUSALS
from benchmarks.zoo.steps import STEPS
from benchmarks.zoo.steps import is_allowed
