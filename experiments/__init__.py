"""Experiments on real data: the results tables, omitted-class transfer, less data.

Not installed with kdkeras; run from the repository root:
`python -m experiments.table` and `python -m experiments.compact` (write
RESULTS.md), `python -m experiments.omitted_class`,
`python -m experiments.less_data` and `python -m experiments.less_data.probe`.

Modules: `table` (its flags and main), `table_runs` (the trainings behind it),
`table_markdown` (its RESULTS.md section), `seed_processes` (seeds in
parallel processes), `compact` and `compact_runs` (compact students,
alone, distilled and int8), `omitted_class`, `less_data` (students on few labels,
with soft targets and unlabelled images: its flags and main),
`less_data_students` (its teacher and student runs), `less_data_subsets`
(labelled subsets, held-out images), `less_data_markdown` (its RESULTS.md
section and goals), `less_data_probe` (how its settings were chosen),
`training` (fit, distil, count
errors), `recipe` (the training settings), `augment` (per-epoch shifted/mirrored
images), `report` (RESULTS.md sections), `cli` (flags, exit codes),
`checks` (argument checks).
"""
