"""Distillation with few labels and with unlabelled images.

cli       the flags and `main` (`python -m experiments.less_data`)
probe     the settings search (`python -m experiments.less_data.probe`)
students  the students and their training
subsets   the labelled / unlabelled subsets
seeds     seeds run in worker processes
markdown  the RESULTS.md section and its goals
"""
