"""The Distiller's internals (not public API).

arguments     argument checks of `Distiller.compile`, `fit` and the losses
labels        sparse / one-hot labels, the unlabelled mask, range checks
reductions    the one `global_sum` over replicas, per-example weights and losses
loss          one step's losses over the global batch
metrics       what a step reports (the blended loss, teacher agreement)
functions     the step functions, checks outside XLA, the step inside
xla           when `jit_compile="auto"` uses XLA
"""
