"""Soft targets: the batch contract, the offline cache and the online pipeline.

    batch     the keys of a target dict (`LABELS_KEY`, `TEACHER_LOGITS_KEY`) and
              `split_targets`, the one reader of a batch's targets; `UNLABELLED`, the
              label of an unlabelled example
"""

from kdkeras.targets.batch import LABELS_KEY
from kdkeras.targets.batch import TEACHER_LOGITS_KEY
from kdkeras.targets.batch import UNLABELLED
from kdkeras.targets.batch import split_targets
