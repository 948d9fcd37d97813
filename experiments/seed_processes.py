"""The results table's seeds in parallel, one process per seed.

`run_parallel` trains (or loads) the teachers once, then starts one
`python -m experiments.table --worker-json=...` process per seed, at most
`jobs` at a time, and merges the rows they write as JSON in seed order.
"""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

from experiments import cli
from experiments import report
from experiments import table_runs
from experiments.table_runs import ROW_ALONE
from experiments.table_runs import ROW_KDKERAS
from experiments.table_runs import ROW_KDKERAS_ENSEMBLE
from experiments.table_runs import ROW_KERAS
from experiments.table_runs import ROW_NAMES

STUDENT_ROWS = (ROW_ALONE, ROW_KDKERAS, ROW_KERAS, ROW_KDKERAS_ENSEMBLE)


def worker_command(settings, seed, threads, json_path):
    """The command line of one `--jobs` worker: these settings, one seed."""
    arguments = [sys.executable, "-m", "experiments.table"]
    for name, value in settings.items():
        if name == "jobs":
            continue
        if name == "seeds":
            value = [seed]
        if value is None:
            continue
        flag = cli.flag_name(name)
        if isinstance(value, bool):
            arguments.append(f"--{flag}" if value else f"--no{flag}")
        elif isinstance(value, list):
            arguments.append(f"--{flag}={','.join(map(str, value))}")
        else:
            arguments.append(f"--{flag}={value}")
    return arguments + [f"--threads={threads}", f"--worker-json={json_path}"]


def run_parallel(settings, jobs, log=print, on_seed=None):
    """`table_runs.run` with up to `jobs` seeds at once, one process each.

    The teachers are trained (or loaded) here first and cached in
    `settings["cache_dir"]` (a temporary folder when empty), so every worker
    loads the same teachers. Each worker runs `run` for one seed with
    `cpu_count // jobs` TensorFlow threads and writes its rows as JSON
    (`write_worker_json`).

    Args:
        settings: Dict of the flag values, as for `table_runs.run`.
        jobs: Int, the most seeds trained at once.
        log: Callable receiving progress messages.
        on_seed: Optional callable `(rows, info)` called after each seed.

    Returns:
        `(rows, info)` as `table_runs.run` returns them, all seeds merged.
    """
    with tempfile.TemporaryDirectory(prefix="kdkeras-table-") as scratch:
        settings = dict(settings, cache_dir=settings["cache_dir"] or scratch)
        rows, info = table_runs.run(dict(settings, seeds=[]), log=log)
        by_name = {row.name: row for row in rows}
        threads = max(1, (os.cpu_count() or 1) // jobs)
        pending = list(settings["seeds"])
        running, results = {}, {}
        while pending or running:
            while pending and len(running) < jobs:
                seed = pending.pop(0)
                json_path = os.path.join(scratch, f"seed{seed}.json")
                command = worker_command(settings, seed, threads, json_path)
                log(f"seed {seed}: started in its own process ({threads} threads)")
                # stderr to a file, not a pipe: a full pipe would block the worker.
                with open(json_path + ".log", "w") as stderr:
                    process = subprocess.Popen(
                        command, stdout=subprocess.DEVNULL, stderr=stderr
                    )
                running[seed] = (process, json_path)
            time.sleep(1.0)
            for seed, (process, json_path) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[seed]
                if process.returncode != 0:
                    with open(json_path + ".log", encoding="utf-8") as stream:
                        errors = stream.read().strip().splitlines()
                    for other, _ in running.values():
                        other.kill()
                    raise RuntimeError(
                        f"the worker for seed {seed} failed: "
                        f"{errors[-1] if errors else process.returncode}"
                    )
                with open(json_path, encoding="utf-8") as stream:
                    results[seed] = json.load(stream)
                for name, values in results[seed]["rows"].items():
                    log(
                        f"seed {seed}: {name}: {values['errors'][0]} errors, "
                        f"{values['seconds'][0]:.0f} s"
                    )
                if on_seed is not None:
                    on_seed(*merge_seeds(by_name, info, settings, results))
        rows, info = merge_seeds(by_name, info, settings, results)
        return rows, dict(info, parallel=(jobs, threads))


def merge_seeds(by_name, info, settings, results):
    """Rows and info with the finished workers' seeds, in seed order."""
    rows = {name: dataclasses.replace(row) for name, row in by_name.items()}
    done = [seed for seed in settings["seeds"] if seed in results]
    for name in STUDENT_ROWS:
        rows[name].errors, rows[name].seconds = [], []
        for seed in done:
            values = results[seed]["rows"][name]
            rows[name].errors += values["errors"]
            rows[name].seconds += values["seconds"]
    merged = dict(info, seeds=done, all_seeds=settings["seeds"])
    if done:
        merged["single_cache_seconds"] = results[done[0]]["single_cache_seconds"]
        merged["cache_seconds"] = results[done[0]]["cache_seconds"]
    return [rows[name] for name in ROW_NAMES], merged


def write_worker_json(path, rows, info):
    """Writes one worker's student rows and cache times as JSON at `path`."""
    payload = {
        "rows": {
            row.name: {"errors": row.errors, "seconds": row.seconds}
            for row in rows
            if row.name in STUDENT_ROWS
        },
        "single_cache_seconds": info["single_cache_seconds"],
        "cache_seconds": info["cache_seconds"],
    }
    report.write_atomically(path, json.dumps(payload))
