"""Measurement workers, and timing several of them interleaved.

Each artifact is measured in its own process (`export.measure.child`), so that its peak
resident memory is its own and runtimes cannot slow each other down through shared
thread pools. A `MeasurementWorker` is the parent's handle on one such process: it loads
the runtime once, then times windows of one batch size when asked.

`measure_interleaved` keeps every worker of a measurement alive and times them in
rounds, one short window per worker and batch size per round, in a rotating order, and
pools each worker's samples. A shared cloud machine's speed moves in steps that last
seconds (BENCHMARKS.md shows the NumPy floor's p50 jumping between two levels): a runtime timed in one contiguous window would be
measured in whichever state the machine was in, and two runtimes timed one after the
other could differ by 2x for no reason of their own. Interleaved, every runtime sees the
same states, so their ratios (student against teacher, runtime against the NumPy floor)
hold, and each p50 is the p50 over the whole measurement, not over one moment of it.
Only the process being timed runs: the others block on a pipe read.

`export.measure.measure_artifacts` is the entry point: it checks the arguments, builds
the specs and calls `measure_interleaved`.

Example (the NumPy floor of a small dense network, at 1 and at 2 BLAS threads):
    >>> import os, tempfile
    >>> import numpy as np
    >>> from export import measure
    >>> from export.measure.worker import Job
    >>> rng = np.random.default_rng(0)
    >>> layers = [(rng.standard_normal((784, 64), dtype=np.float32), np.zeros(64, np.float32), "relu"),
    ...           (rng.standard_normal((64, 10), dtype=np.float32), np.zeros(10, np.float32), "linear")]
    >>> path = measure.save_dense_layers(layers, os.path.join(tempfile.mkdtemp(), "mlp.npz"))
    >>> one, two = measure.measure_artifacts(
    ...     [Job(path, "numpy", threads=1), Job(path, "numpy", threads=2)],
    ...     batch_sizes=(1, 8), min_time_s=0.05, rounds=3, warmup_s=0.01)
    >>> [w["batch_size"] for w in one["windows"]]  # the batch-size order alternates by round
    [1, 8, 8, 1, 1, 8]
    >>> one["latency"]["8"]["iterations"] == sum(w["calls"] for w in one["windows"] if w["batch_size"] == 8)
    True
    >>> one["windows"][0]["end_ns"] <= two["windows"][0]["start_ns"]  # never both at once
    True
"""

import collections
import json
import math
import os
import select
import subprocess
import sys
import tempfile

# The folder holding the `export` package: the child imports it from there.
PACKAGE_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
CHILD_MODULE = "export.measure.child"

# Warm-up of every window: another process has just had the cores and the caches, so
# the first calls would be slow. The full `warmup_s` runs once per batch size, right
# after loading (`export.measure.child.Session.warm_up`).
REWARM_S = 0.05

Job = collections.namedtuple(
    "Job", ["path", "fmt", "threads", "options", "evaluate"], defaults=(None, True)
)
Job.__doc__ = """One measurement: an artifact `path` (as the runtime loads it), its format
`fmt`, the `threads` the runtime may use, runtime `options`
(`export.runtimes.OPTIONS`), and whether it runs the accuracy pass when labelled data
is given (`evaluate`; False for the same file at another thread count, whose accuracy
one run already gives)."""


def child_environment(fmt, threads):
    """The worker's environment: BLAS threads for the NumPy floor, one for the others."""
    environment = dict(os.environ)
    blas_threads = str(threads) if fmt == "numpy" else "1"
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        environment[name] = blas_threads
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    search_path = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = os.pathsep.join(
        [PACKAGE_ROOT] + ([search_path] if search_path else [])
    )
    environment.setdefault("KERAS_BACKEND", "tensorflow")
    return environment


class MeasurementWorker:
    """A running `export.measure.child` process holding one loaded runtime.

    Args:
        spec: The measurement spec (`export.measure.measure_artifact` builds it); it is
            written to `spec_path` here.
        spec_path: Where to write the spec for the child.
        timeout_s: Seconds the child may take to load, and to answer any one command.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from export import measure
        >>> folder = tempfile.mkdtemp()
        >>> kernel = np.random.default_rng(0).standard_normal((784, 10), dtype=np.float32)
        >>> path = measure.save_dense_layers([(kernel, None, "linear")], os.path.join(folder, "linear.npz"))
        >>> spec, _ = measure.build_spec(path, "numpy", (1,), 1, folder)
        >>> with MeasurementWorker(spec, os.path.join(folder, "spec.json")) as worker:
        ...     load_s = worker.wait_ready()
        ...     window = worker.time(1, min_time_s=0.05, min_iterations=50, max_time_s=1, warmup_s=0.01)
        ...     result = worker.finish()
        >>> window["calls"] >= 50, result["latency"]["1"]["iterations"] == window["calls"]
        (True, True)
    """

    def __init__(self, spec, spec_path, timeout_s=900):
        self.spec, self.timeout_s = spec, timeout_s
        self.label = f"{spec['format']} {spec['path']}"
        with open(spec_path, "w") as handle:
            json.dump(spec, handle)
        # stderr goes to a file: a chatty runtime cannot fill a pipe and block.
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-m", CHILD_MODULE, spec_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=child_environment(spec["format"], spec["threads"]),
            text=True,
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def last_error(self):
        self.stderr.seek(0)
        lines = [
            line.strip() for line in self.stderr.read().splitlines() if line.strip()
        ]
        code = self.process.poll()
        return lines[-1] if lines else f"exit code {code}"

    def read(self, what):
        ready, _, _ = select.select([self.process.stdout], [], [], self.timeout_s)
        if not ready:
            self.close()
            raise RuntimeError(
                f"measuring {self.label} timed out after {self.timeout_s} s ({what})"
            )
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise RuntimeError(f"measuring {self.label} failed: {self.last_error()}")
        return json.loads(line)

    def request(self, command):
        """Writes one command to the child, without waiting for its answer."""
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.process.wait()
            raise RuntimeError(
                f"measuring {self.label} failed: {self.last_error()}"
            ) from None

    def send(self, command, what):
        self.request(command)
        return self.read(what)

    def wait_ready(self):
        """Blocks until the runtime is loaded; returns the child's load time in seconds."""
        return self.read("loading")["load_s"]

    def time(self, batch_size, min_time_s, min_iterations, max_time_s, warmup_s):
        """Times one window of `batch_size` in the child; returns its record.

        The record (`export.measure.child.Session.time`) holds `calls`, `start_ns`, `end_ns`
        and `settle_s`: the child answers only once its thread pools stopped spinning.
        """
        command = {
            "op": "time",
            "batch_size": int(batch_size),
            "min_time_s": float(min_time_s),
            "min_iterations": int(min_iterations),
            "max_time_s": float(max_time_s),
            "warmup_s": float(warmup_s),
        }
        return self.send(command, f"batch {batch_size}")

    def time_alternatives(self):
        """Times the runtime's alternative calls (`model.predict`) in the child now."""
        return self.send({"op": "alternatives"}, "alternatives")["alternatives"]

    def finish(self):
        """The child's result dict (percentiles over all its windows); it then exits."""
        self.start_finish()
        return self.end_finish()

    def start_finish(self):
        """Asks the child to finish, without waiting (see `end_finish`)."""
        self.request({"op": "finish"})

    def end_finish(self):
        """The result of `start_finish`, once the child wrote it; the child exits."""
        result = self.read("finishing")
        self.process.wait(timeout=self.timeout_s)
        return result

    def close(self):
        """Stops the child if it still runs (it is killed: it holds nothing to save)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.stderr.close()


def windows(rounds, min_time_s, min_iterations, max_time_s):
    """One window's share of a batch size's timing: `(min_time_s, min_iterations, max_time_s)`."""
    return (
        min_time_s / rounds,
        max(1, math.ceil(min_iterations / rounds)),
        max_time_s / rounds,
    )


def measure_interleaved(
    specs, scratch, *, rounds, timeout_s=900, on_step=None, parallel=None
):
    """Measures several specs, their timing windows interleaved round by round.

    Every worker is started and loaded first, and warms each of its batch sizes up
    for the spec's `warmup_s` right after loading (neither is timed, so the workers
    load and warm up in parallel). Then, `rounds` times, each worker times one window
    of each batch size; the worker order rotates every round, and so does the
    batch-size order. A window is `1/rounds` of the spec's `min_time_s`,
    `min_iterations` and `max_time_s`, after a re-warm-up of `REWARM_S` (another
    process has just had the cores and the caches). Then each worker in turn times its
    alternative calls (such as `model.predict`), and last the workers finish, up to
    `parallel` at once (peak memory, accuracy: nothing timed).

    Args:
        specs: Measurement specs (`export.measure` builds them).
        scratch: A folder for the spec files.
        rounds: Windows per worker and batch size (>= 1).
        timeout_s: Seconds a worker may take to load, or to answer one command.
        on_step: Optional `callable(label)` told of each phase (a progress bar).
        parallel: Workers finishing at once (their accuracy passes; nothing timed);
            default: the available cores.

    Returns:
        One entry per spec, in order: the result dict, or the `RuntimeError` that ended
        that worker (the other workers go on).
    """
    if parallel is None:
        from export.measure import environment

        parallel = environment.available_threads()
    parallel = max(1, int(parallel))
    outcomes = [None] * len(specs)
    workers = {}
    try:
        for index, spec in enumerate(specs):
            path = os.path.join(scratch, f"spec_{index}.json")
            # Each child warms its batch sizes up while the others load (untimed).
            spec = dict(spec, warmup_at_load=True)
            workers[index] = MeasurementWorker(spec, path, timeout_s=timeout_s)
        if on_step:
            on_step(f"loading {len(specs)} runtimes")
        for index in list(workers):
            try:
                workers[index].wait_ready()
            except RuntimeError as error:
                outcomes[index] = error
                workers.pop(index).close()
        for round_index in range(rounds):
            if on_step:
                on_step(f"timing round {round_index + 1}/{rounds}")
            order = sorted(workers)
            shift = round_index % max(len(order), 1)
            for index in order[shift:] + order[:shift]:
                spec = specs[index]
                sizes = list(spec["batch_sizes"])
                if round_index % 2:
                    sizes.reverse()
                min_time, min_iterations, max_time = windows(
                    rounds,
                    spec["min_time_s"],
                    spec["min_iterations"],
                    spec["max_time_s"],
                )
                warmup = min(spec["warmup_s"], REWARM_S)
                try:
                    for batch_size in sizes:
                        workers[index].time(
                            batch_size, min_time, min_iterations, max_time, warmup
                        )
                except RuntimeError as error:
                    outcomes[index] = error
                    workers.pop(index).close()
        # The alternative calls are timings: one worker at a time. The rest of a
        # finish (peak memory, accuracy pass, parameters) is not timed: up to
        # `parallel` workers finish at once.
        for index in sorted(workers):
            try:
                workers[index].time_alternatives()
            except RuntimeError as error:
                outcomes[index] = error
                workers.pop(index).close()
        pending, running = sorted(workers), {}
        while pending or running:
            while pending and len(running) < parallel:
                index = pending.pop(0)
                if on_step:
                    spec = specs[index]
                    threads = spec["threads"]
                    on_step(
                        f"finishing {os.path.basename(spec['path'])} "
                        f"({threads} thread{'s' * (threads != 1)})"
                    )
                try:
                    workers[index].start_finish()
                except RuntimeError as error:
                    outcomes[index] = error
                    continue
                running[workers[index].process.stdout] = index
            ready, _, _ = select.select(list(running), [], [], timeout_s)
            if not ready:
                for index in running.values():
                    outcomes[index] = RuntimeError(
                        f"measuring {workers[index].label} timed out after "
                        f"{timeout_s} s (finishing)"
                    )
                running = {}
            for stream in ready:
                index = running.pop(stream)
                try:
                    outcomes[index] = workers[index].end_finish()
                except RuntimeError as error:
                    outcomes[index] = error
    finally:
        for worker in workers.values():
            worker.close()
    return outcomes
