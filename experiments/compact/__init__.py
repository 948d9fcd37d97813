"""Compact students distilled from the CNN teacher, several seeds.

cli   the flags and `main` (`python -m experiments.compact`)
runs  one run per student, method and seed
"""
