"""Compress a distilled Keras 3 student with TFMOT, still distilling.

TensorFlow Model Optimization 0.8.1 works only on `tf_keras` (Keras 2)
models, so every compression step goes over a bridge
(`kdkeras.compress.bridge`): the Keras 3 student's functional graph
(branches, merges, shared and nested layers: every `keras.applications`
family) is rebuilt as a `tf_keras` model from its layer configs and weights,
its outputs checked against the student's, wrapped by TFMOT layer by layer as
TFMOT's own registries decide, fine-tuned with the distillation loss
`alpha * student_loss + (1 - alpha) * T² · KL` on the teacher's soft targets
(`TfKerasDistiller`), stripped and carried back to Keras 3 for the exporters.
The layers TFMOT could not wrap are left as they are and listed in the
returned model's `compression_report` (`CompressionReport`).

- `prune`: magnitude pruning to a target sparsity (polynomial decay).
- `cluster`: weight clustering, `number_of_clusters` values per kernel.
- `quantization_aware`: int8 quantization-aware training.

Every function returns a model and writes no file: `export.to_tflite` converts
them (`quantize="qat"` for the quantization-aware model, `quantize="int8"` for
post-training full-integer quantization).

Example:

```python
import kdkeras.compress as compress

pruned = compress.prune(student, teacher, x_train, y_train,
                        target_sparsity=0.8, epochs=2)
clustered = compress.cluster(student, teacher, x_train, y_train,
                             number_of_clusters=16)
qat_model = compress.quantization_aware(student, teacher, x_train, y_train)
qat_model.compression_report.left_as_is  # Layers left in float, and why.

from export.to_tflite import export_tflite

export_tflite(qat_model, "student_int8.tflite", quantize="qat")
```
"""

from kdkeras.compress.bridge import DROPPED_LAYERS
from kdkeras.compress.bridge import SUPPORTED_LAYERS
from kdkeras.compress.bridge import from_tf_keras
from kdkeras.compress.bridge import to_tf_keras
from kdkeras.compress.cluster import cluster
from kdkeras.compress.cluster import unique_kernel_values
from kdkeras.compress.distill import CompressionReport
from kdkeras.compress.distill import TfKerasDistiller
from kdkeras.compress.distill import fit_distilling
from kdkeras.compress.distill import soft_targets
from kdkeras.compress.prune import kernel_sparsity
from kdkeras.compress.prune import prune
from kdkeras.compress.prune import pruning_schedule
from kdkeras.compress.qat import quantization_aware

__all__ = [
    "CompressionReport",
    "DROPPED_LAYERS",
    "SUPPORTED_LAYERS",
    "TfKerasDistiller",
    "cluster",
    "fit_distilling",
    "from_tf_keras",
    "kernel_sparsity",
    "prune",
    "pruning_schedule",
    "quantization_aware",
    "soft_targets",
    "to_tf_keras",
    "unique_kernel_values",
]
