"""Online soft targets; their home is `kdkeras.targets.online` (an alias)."""

from kdkeras.targets.online import online_soft_target_dataset
