"""The sharded soft-target cache: streams larger than memory, optional top-k.

writer   `cache_soft_target_shards`, `load_soft_target_shards`,
         `merge_soft_target_shards`, `SoftTargetShards`
index    the digest-checked `index.json`
files    shard `.npy` files written row by row, read by position
reader   reading a cache's shards by stream position
merge    joining workers' parts into one cache
stream   one pass over a finite, deterministic stream of input batches
dataset  `soft_target_shards_dataset`: training batches joined with the shards
"""
