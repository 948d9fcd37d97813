"""Experiments on real data: the results table and omitted-class transfer.

Run `python -m kdkeras.experiments.table` (writes RESULTS.md) and
`python -m kdkeras.experiments.omitted_class`.
"""
