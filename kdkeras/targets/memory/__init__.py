"""The in-memory soft-target cache: the teacher's logits for arrays, in one file.

cache    `cache_soft_targets`, `load_soft_targets`: computed once, digest-checked
dataset  `cached_array_dataset`: batches of inputs joined with their logits
"""
