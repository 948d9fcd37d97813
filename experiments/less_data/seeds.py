"""The less-data experiment's seeds as separate processes, merged.

`python -m experiments.less_data --seeds=1 --worker-json=seed1.json` writes
its result as JSON (`write_result`) instead of the RESULTS.md section;
`python -m experiments.less_data --merge-json=seed0.json,seed1.json,...`
reads such results (`read_result`), checks that they share every setting
but the seeds, and merges them in the order given (`merge_results`) into
the result one run over all their seeds would give. The files and the
merge are `experiments.seed_processes`'; this module adds what is the
less-data result's own (its recipes, its rows, its settings).
"""

import dataclasses
import shlex

from experiments import seed_processes

#: The settings that may differ between the results merged.
PER_PROCESS = ("seeds", "worker_json", "merge_json")
#: A student row's per-seed lists (the teacher's row, first, is trained once).
PER_SEED = ("accuracy", "agreement", "seconds")


def command_of_all_seeds(command):
    """A worker's `command` without its `--seeds` and `--worker-json` flags.

    Example:

    >>> command_of_all_seeds("python -m m --seeds=1 --worker-json=a.json --x")
    'python -m m --x'
    """
    words = shlex.split(command)
    kept = [
        word
        for word in words
        if not word.startswith(tuple(f"--{name}=" for name in ("seeds", "worker-json")))
    ]
    return shlex.join(kept)


def write_result(path, result, command):
    """Writes a `less_data.run` result and its command as JSON at `path`."""
    data = {
        key: value
        for key, value in result.items()
        if key not in ("subsets", "recipe", "teacher_recipe")
    }
    data["recipe"] = dataclasses.asdict(result["recipe"])
    data["teacher_recipe"] = dataclasses.asdict(result["teacher_recipe"])
    data["command"] = command
    seed_processes.write_seed_json(path, data)


def read_result(path):
    """The result and command `write_result` wrote at `path`."""
    from experiments.recipe import Recipe

    data = seed_processes.read_seed_json(path)
    data["recipe"] = Recipe(**data["recipe"])
    data["teacher_recipe"] = Recipe(**data["teacher_recipe"])
    return data, data.pop("command")


def merge_results(results):
    """One result over the seeds of `results`, in their order.

    Args:
        results: A list of `less_data.run` results of the same settings but
            for their seeds (each complete).

    Returns:
        A result as `less_data.run` returns, its rows' lists concatenated
        (the teacher's row is the first result's).

    Example:

    >>> def result(seed, accuracy):
    ...     return {"settings": {"seeds": [seed], "steps": 5},
    ...             "seeds_done": [seed], "teacher_cached": True,
    ...             "rows": [{"accuracy": [0.9], "seconds": []},
    ...                      {"accuracy": [accuracy], "seconds": [1.0]}]}
    >>> merged = merge_results([result(0, 0.5), result(1, 0.7)])
    >>> merged["seeds_done"], merged["rows"][1]["accuracy"]
    ([0, 1], [0.5, 0.7])
    >>> merge_results([result(0, 0.5), {**result(1, 0.7),
    ...     "settings": {"seeds": [1], "steps": 6}}])
    Traceback (most recent call last):
    ...
    ValueError: `results` must share every setting but the seeds. Received: ...
    """
    if not results:
        raise ValueError("`results` must hold at least one result.")
    first = results[0]
    merged = {
        **first,
        "settings": dict(first["settings"]),
        "seeds_done": [],
        "rows": [{**row} for row in first["rows"]],
    }
    for result in results:
        for name, value in result["settings"].items():
            if name not in PER_PROCESS and value != first["settings"].get(name):
                raise ValueError(
                    "`results` must share every setting but the seeds. "
                    f"Received: {name}={first['settings'].get(name)} and "
                    f"{name}={value}"
                )
        if result["seeds_done"] != result["settings"]["seeds"]:
            raise ValueError(
                "`results` must be complete runs. Received: seeds "
                f"{result['seeds_done']} of {result['settings']['seeds']}"
            )
        if [(row.get("fraction"), row.get("how")) for row in result["rows"]] != [
            (row.get("fraction"), row.get("how")) for row in first["rows"]
        ]:
            raise ValueError("`results` must have the same rows in the same order.")
        merged["seeds_done"] += result["seeds_done"]
        merged["teacher_cached"] = merged["teacher_cached"] and result["teacher_cached"]
    students = seed_processes.concatenate_per_seed(
        [dict(enumerate(result["rows"][1:], 1)) for result in results], PER_SEED
    )
    for index, values in students.items():
        merged["rows"][index].update(values)
    merged["settings"]["seeds"] = list(merged["seeds_done"])
    return merged
