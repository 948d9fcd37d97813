"""An experiment's seeds in separate processes, merged in seed order.

The one mechanism of every seeded experiment: a process runs some seeds and
writes its result as JSON (`write_seed_json`, atomically); the results are
read back (`read_seed_json`) and their per-seed lists concatenated in seed
order (`concatenate_per_seed`) into the result one run over all the seeds
would give.

`run_parallel` does all of it for a results table: it trains (or loads) the
teachers once, then starts one `python -m <module> --worker-json=...` process
per seed, at most `jobs` at a time. An `SeedExperiment` names the module, its
`run` and the rows each seed trains: `TABLE` is `experiments.table`'s.
`experiments.less_data` runs its seed processes apart (`--worker-json`) and
merges their files with `--merge-json` (`experiments.less_data.seeds`).
"""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

from absl import flags

from experiments import cli
from experiments import report
from experiments.table import runs as table_runs
from experiments.table.runs import ROW_ALONE
from experiments.table.runs import ROW_KDKERAS
from experiments.table.runs import ROW_KDKERAS_ENSEMBLE
from experiments.table.runs import ROW_KERAS
from kdutils.staging import write_atomically

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class SeedExperiment:
    """What `run_parallel` needs to know of an experiment.

    Args:
        module: The experiment's `python -m` module (its workers run it).
        run: Callable `(settings, log=..., on_seed=...) -> (rows, info)`.
        student_rows: Names of the rows each seed trains (the others, such
            as the teachers, come from the parent process).
    """

    module: str
    run: object
    student_rows: tuple


TABLE = SeedExperiment(
    "experiments.table",
    table_runs.run,
    (ROW_ALONE, ROW_KDKERAS, ROW_KERAS, ROW_KDKERAS_ENSEMBLE),
)


def worker_command(settings, seed, threads, json_path, module=TABLE.module):
    """The command line of one `--jobs` worker: these settings, one seed."""
    arguments = [sys.executable, "-m", module]
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


def run_parallel(settings, jobs, log=print, on_seed=None, experiment=TABLE):
    """`experiment.run` with up to `jobs` seeds at once, one process each.

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
        experiment: The `SeedExperiment` to run (default: the results table).

    Returns:
        `(rows, info)` as `experiment.run` returns them, all seeds merged.
    """
    with tempfile.TemporaryDirectory(prefix="kdkeras-table-") as scratch:
        settings = dict(settings, cache_dir=settings["cache_dir"] or scratch)
        rows, info = experiment.run(dict(settings, seeds=[]), log=log)
        by_name = {row.name: row for row in rows}
        threads = max(1, (os.cpu_count() or 1) // jobs)
        pending = list(settings["seeds"])
        running, results = {}, {}
        while pending or running:
            while pending and len(running) < jobs:
                seed = pending.pop(0)
                json_path = os.path.join(scratch, f"seed{seed}.json")
                command = worker_command(
                    settings, seed, threads, json_path, experiment.module
                )
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
                results[seed] = read_seed_json(json_path)
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
    """Rows and info with the finished workers' seeds, in seed order.

    The rows a worker wrote (its JSON's `"rows"`) take their per-seed
    values (`table_runs.PER_SEED_FIELDS`) and their int8 file size from the
    workers; the others keep the parent's.
    """
    rows = {name: dataclasses.replace(row) for name, row in by_name.items()}
    done = [seed for seed in settings["seeds"] if seed in results]
    per_seed = concatenate_per_seed(
        [results[seed]["rows"] for seed in done], table_runs.PER_SEED_FIELDS
    )
    for name, values in per_seed.items():
        for field, value in values.items():
            setattr(rows[name], field, value)
        for seed in done:
            size = results[seed]["rows"][name].get("int8_bytes")
            if size is not None:
                # One figure per row (the in-process run keeps its last seed's).
                rows[name].int8_bytes = size
    merged = dict(info, seeds=done, all_seeds=settings["seeds"])
    if done:
        merged["single_cache_seconds"] = results[done[0]]["single_cache_seconds"]
        merged["cache_seconds"] = results[done[0]]["cache_seconds"]
    return list(rows.values()), merged


def write_worker_json(path, rows, info, experiment=TABLE):
    """Writes one worker's student rows and cache times as JSON at `path`."""
    payload = {
        "rows": {
            row.name: {
                **{field: getattr(row, field) for field in table_runs.PER_SEED_FIELDS},
                "int8_bytes": row.int8_bytes,
            }
            for row in rows
            if row.name in experiment.student_rows
        },
        "single_cache_seconds": info["single_cache_seconds"],
        "cache_seconds": info["cache_seconds"],
    }
    write_seed_json(path, payload)


def write_seed_json(path, payload):
    """Writes one seed process's result, a JSON-able dict, at `path`.

    Atomically: a process stopped while writing leaves no partial file.
    """
    write_atomically(path, json.dumps(payload, indent=1) + "\n")


def read_seed_json(path):
    """The dict `write_seed_json` wrote at `path`."""
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def concatenate_per_seed(results, fields):
    """Each row's per-seed lists over the seed processes' `results`, in order.

    Args:
        results: The processes' rows in seed order, each a dict of row key
            to a dict holding one list per field.
        fields: The names of the per-seed lists.

    Returns:
        A dict of every row key a result holds to a dict of its `fields`
        (those a result's row holds), each the concatenation of the
        results' lists.

    Example:

    >>> first = {"alone": {"errors": [91], "seconds": [5.0]}}
    >>> second = {"alone": {"errors": [93], "seconds": [6.0]}}
    >>> concatenate_per_seed([first, second], ("errors", "seconds"))
    {'alone': {'errors': [91, 93], 'seconds': [5.0, 6.0]}}
    """
    merged = {}
    for result in results:
        for key, row in result.items():
            into = merged.setdefault(key, {})
            for field in fields:
                if field in row:
                    into[field] = into.get(field, []) + list(row[field])
    return merged


def define_flags():
    """Defines `--jobs`, `--threads` and `--worker-json` (`run_and_write`)."""
    flags.DEFINE_integer(
        "jobs",
        1,
        "Seeds trained at once, each in its own process with CPUs/jobs "
        "TensorFlow threads (the teachers are trained or loaded first).",
    )
    flags.DEFINE_integer(
        "threads", 0, "TensorFlow intra-/inter-op threads (0: TF's default)."
    )
    flags.DEFINE_string(
        "worker-json",
        "",
        "Internal (used by --jobs): write this process's rows as JSON here "
        "instead of the markdown file.",
    )


def read_settings(names, quick_values, at_least_one):
    """A seeded table's settings: flags, with `--quick` filling unset ones.

    Args:
        names: Setting names (underscored), `seeds` among them.
        quick_values: As for `cli.settings_from_flags`.
        at_least_one: Names of the int settings that must be >= 1 (`jobs`
            is checked too).

    Returns:
        The settings, `seeds` as a list of ints and `jobs` added.

    Raises:
        ValueError: a bad setting, in one line.
    """
    settings = cli.settings_from_flags(names, quick_values)
    try:
        settings["seeds"] = [int(seed) for seed in settings["seeds"]]
    except ValueError:
        raise ValueError(
            "`--seeds` must be a comma-separated list of ints. "
            f"Received: {','.join(settings['seeds'])}"
        ) from None
    if not settings["seeds"]:
        raise ValueError("`--seeds` must name at least one seed.")
    settings["jobs"] = FLAGS.jobs
    cli.check_at_least_one(settings, (*at_least_one, "jobs"))
    return settings


def run_and_write(settings, experiment, section, render_markdown):
    """Runs `experiment` and writes its RESULTS.md section after each seed.

    A `--worker-json` process runs its one seed and writes its rows as JSON
    instead; with `--jobs` above 1, seeds run in their own processes
    (`run_parallel`).

    Args:
        settings: Dict of the flag values (`read_settings`).
        experiment: A `SeedExperiment`.
        section: The RESULTS.md section written (`report.update_section`).
        render_markdown: Callable `(rows, info, command) -> markdown`.

    Returns:
        The path written.
    """
    if FLAGS.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    log = cli.progress_log(FLAGS.verbose)
    worker_json = FLAGS["worker-json"].value
    if worker_json:
        rows, info = experiment.run(settings, log=log)
        write_worker_json(worker_json, rows, info, experiment)
        return worker_json
    command = cli.reproduce_command(experiment.module)
    output = FLAGS.output

    def write(rows, info):
        markdown = render_markdown(rows, info, command)
        report.update_section(output, section, markdown)

    if settings["jobs"] > 1 and len(settings["seeds"]) > 1:
        rows, info = run_parallel(
            settings, settings["jobs"], log=log, on_seed=write, experiment=experiment
        )
    else:
        rows, info = experiment.run(settings, log=log, on_seed=write)
    write(rows, info)
    return output
