"""The in-memory soft-target cache: the teacher's logits for arrays, in one file.

cache    `cache_soft_targets`, `load_soft_targets`: computed once, digest-checked
dataset  `soft_target_dataset`: batches of inputs joined with their logits
"""
