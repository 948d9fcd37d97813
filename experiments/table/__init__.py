"""The results table: the paper's MLPs and the CNN teacher, every method, several seeds.

cli       the flags and `main` (`python -m experiments.table`)
runs      one training run per method and seed
markdown  the RESULTS.md section
"""
