"""The measurement child: one process, one runtime, timed when the parent asks.

`export.measure.worker` starts it as `python -P -m export.measure.child
SPEC.json`. It imports only the standard library, NumPy and the one runtime
under test (`export.runtimes.MODULES`), never TensorFlow for an ONNX Runtime,
LiteRT or NumPy artifact, so that its peak resident memory is that runtime's.

The child:
1. imports its runtime (for a `.keras` file also the modules of
   `spec["imports"]`, which register the user's classes: `--import`) and records the resident-memory high-water mark
   (`baseline_rss_bytes`);
2. loads the artifact, warms each batch size up when the spec says
   `warmup_at_load` (the first call timed as `first_inference`), says it is
   ready, and waits (blocked, using no CPU);
3. times windows when the parent asks (`serve`): per window one batch size,
   its preallocated input, a warm-up, then exactly the raw runtime call with
   `time.perf_counter_ns` around it (`export.measure.timing.time_call`); a call
   shorter than `spec["min_sample_s"]` (default `timing.MIN_SAMPLE_S`) is timed
   in blocks of `calls_per_sample` calls, fixed per batch size at its first
   window. The parent interleaves the windows of several children, so that
   every runtime is timed under the same machine conditions;
4. on `finish`, records the peak resident memory before anything else is
   loaded (the labelled test set, the `onnx` package for counting), computes
   test-set accuracy when labelled data was given and the stored parameter
   count, and writes the result as one JSON object on its (otherwise
   silenced) standard output. `loaded_modules` says whether TensorFlow was
   imported.
"""

import importlib
import json
import os
import platform
import sys
import time

import numpy as np

from export import runtimes
from export.inputs import InputSpec
from export.measure import environment
from export.measure import timing


def accuracy(runtime, x, y, chunk, outputs=None, spec=None):
    """Top-1 accuracy of `runtime.predict` on `(x, y)`, `chunk` examples a call.

    `outputs`, a list, receives the float32 outputs of each chunk when given.
    `x` is a dict by input name when `spec` (an `InputSpec`) has several inputs.
    """
    if spec is not None and not spec.single:
        return _accuracy_by_name(runtime, x, y, chunk, outputs, spec)
    correct = 0
    shape = runtime.input_shape(chunk, x.shape[1:])
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        count = len(part)
        if count < chunk:  # pad so that fixed-shape runtimes keep one allocation
            part = np.concatenate(
                [part, np.zeros((chunk - count, *part.shape[1:]), part.dtype)]
            )
        logits = runtime.predict(np.ascontiguousarray(part.reshape(shape), np.float32))
        logits = np.asarray(logits).reshape(chunk, -1)[:count]
        if outputs is not None:
            outputs.append(np.asarray(logits, np.float32))
        correct += int(np.sum(np.argmax(logits, axis=1) == y[start : start + count]))
    return correct / len(x)


def _accuracy_by_name(runtime, x, y, chunk, outputs, spec):
    correct, total = 0, spec.count(x)
    for start in range(0, total, chunk):
        part = spec.take(x, start, start + chunk)
        logits = np.asarray(runtime.predict(part)).reshape(spec.count(part), -1)
        if outputs is not None:
            outputs.append(np.asarray(logits, np.float32))
        correct += int(np.sum(np.argmax(logits, axis=1) == y[start : start + chunk]))
    return correct / total


def _load_labelled(path, spec):
    """`(x, y)` of the labelled `.npz` the parent wrote (`x` or `x_<input name>`)."""
    with np.load(path, allow_pickle=False) as data:
        if "x" in data:
            return data["x"], data["y"]
        return {name: data[f"x_{name}"] for name in spec.names}, data["y"]


class Session:
    """One loaded runtime, timed in windows on request, then summarised.

    A window times one batch size: a warm-up (excluded), then the raw call with
    `perf_counter_ns` around it, or around blocks of `calls_per_sample` calls when
    one call is shorter than `spec["min_sample_s"]` (`time_call`). Samples of every window of a batch size
    are pooled; `finish` turns them into the percentiles, so a batch size timed in five
    windows spread over a minute reports the p50 of all its calls. The input of each
    batch size is drawn once from `spec["seed"]` and reused by every window.

    Args:
        spec: The measurement spec (see `export.measure.measure_artifact`).
    """

    def __init__(self, spec):
        self.spec = spec
        self.threads = int(spec["threads"])
        load_start = time.perf_counter()
        fmt = spec["format"]
        for module in runtimes.MODULES[fmt]:
            importlib.import_module(module)
        if fmt == "keras" and spec.get("imports"):
            # The user's modules registering the classes the `.keras` file
            # names (`--import`); other runtimes load no Keras classes.
            from export.loading import import_modules

            for root in reversed(spec.get("import_path") or ()):
                if root not in sys.path:
                    sys.path.insert(0, root)
            import_modules(spec["imports"])
        # Runtime imported, nothing loaded.
        self.baseline_rss = environment.peak_rss_bytes()
        init_start = time.perf_counter()
        self.runtime = runtimes.load(
            spec["path"], fmt, self.threads, spec.get("options") or {}
        )
        self.load_s = time.perf_counter() - load_start
        self.import_s = init_start - load_start
        self.init_s = time.perf_counter() - init_start
        self.first_inference = None
        self.label = self.runtime.label
        self.rng = np.random.default_rng(spec.get("seed", 0))
        self.inputs, self.samples, self.windows = {}, {}, []
        self.min_sample_s = float(spec.get("min_sample_s", timing.MIN_SAMPLE_S))
        self.calls_per_sample = {}
        self.load_warmup = {}
        self.alternatives = None
        self.input_spec = (
            InputSpec.from_json(spec["inputs"]) if spec.get("inputs") else None
        )

    def input_for(self, batch_size):
        """The batch of `batch_size` random inputs, drawn once and reused.

        With the model's input spec (`spec["inputs"]`) and several inputs, a dict
        drawn from it (integers in their range); else floats in the runtime's shape.
        """
        if self.input_spec is not None and not self.input_spec.single:
            if batch_size not in self.inputs:
                self.inputs[batch_size] = {
                    name: np.ascontiguousarray(value)
                    for name, value in self.input_spec.as_dict(
                        self.input_spec.random(
                            batch_size, self.rng, self.spec.get("input_length")
                        )
                    ).items()
                }
            return self.inputs[batch_size]
        if batch_size not in self.inputs:
            shape = self.runtime.input_shape(batch_size, self.spec.get("example_shape"))
            self.inputs[batch_size] = np.ascontiguousarray(
                self.rng.random(shape, dtype=np.float32)
            )
        return self.inputs[batch_size]

    def first_call(self, batch_size, call, args):
        """Times the very first call after loading, once (counted as a warm-up call).

        Lazy allocation, kernel selection, tracing: what a service's first request pays.
        """
        if self.first_inference is not None:
            return
        first_start = time.perf_counter_ns()
        call(*args)
        self.first_inference = {
            "batch_size": batch_size,
            "ms": (time.perf_counter_ns() - first_start) / 1e6,
        }

    def warm_up(self, warmup_s):
        """Warms every batch size of the spec up, untimed, right after loading.

        The parent starts every worker at once; warming up while the others load
        costs no time of its own, and each batch size's first timed window then needs
        only a short re-warm-up (`export.measure.worker.REWARM_S`) like the later
        ones. The first call is timed as `first_inference`, under the same conditions
        as `load_s` (the other workers loading too). Returns the warm-up calls per
        batch size.
        """
        for batch_size in self.spec["batch_sizes"]:
            batch_size = int(batch_size)
            self.label, call, args = self.runtime.timed(self.input_for(batch_size))
            self.first_call(batch_size, call, args)
            self.load_warmup[batch_size] = 1 + timing.warm_up(call, args, warmup_s)
        return dict(self.load_warmup)

    def time(self, batch_size, min_time_s, min_iterations, max_time_s, warmup_s):
        """Times one window of `batch_size`, then waits until this process is idle.

        Returns:
            The window's record: `batch_size`, `calls` (timed calls),
            `calls_per_sample` (calls per timed sample), `warmup_iterations`,
            `start_ns`/`end_ns` (`time.perf_counter_ns`, the system's monotonic clock on
            Linux: comparable between processes; warm-up included, settling not) and
            `settle_s`.
        """
        batch_size = int(batch_size)
        start = time.perf_counter_ns()
        # The runtime prepares the call for this shape each window (LiteRT resizes and
        # re-allocates, ONNX Runtime re-binds): other batch sizes may have run between.
        self.label, call, args = self.runtime.timed(self.input_for(batch_size))
        self.first_call(batch_size, call, args)
        if batch_size not in self.calls_per_sample:
            # One block size per batch size, so that its pooled samples are alike.
            self.calls_per_sample[batch_size] = timing.calls_per_sample(
                call, args, self.min_sample_s
            )
        k = self.calls_per_sample[batch_size]
        taken, warmup = timing.time_call(
            call, args, min_iterations, min_time_s, max_time_s, warmup_s, k
        )
        end = time.perf_counter_ns()
        self.samples.setdefault(batch_size, []).extend(taken)
        window = {
            "batch_size": batch_size,
            "calls": len(taken) * k,
            "calls_per_sample": k,
            "warmup_iterations": warmup,
            "start_ns": start,
            "end_ns": end,
            "settle_s": timing.settle(),
            # This round's p50: the spread of the rounds' p50s is recorded.
            "p50_ms": float(np.median(taken)) / 1e6,
        }
        self.windows.append(window)
        return window

    def time_alternatives(self):
        """Times the runtime's alternative calls (e.g. `model.predict`) once.

        Alternatives are slow calls shown for honesty: each batch size is bounded
        to 1 s so that they do not dominate the measurement time. The parent asks
        for them one worker at a time (they are timings); `finish` reuses them.
        Returns `{label: {batch_size: summary}}`.
        """
        if self.alternatives is not None:
            return self.alternatives
        spec = self.spec
        self.alternatives = {}
        for batch_size in self.samples:
            for alt_label, alt_call, alt_args, alt_kwargs in getattr(
                self.runtime, "alternatives", lambda x: []
            )(self.input_for(batch_size)):
                bound = (lambda c, k: lambda *a: c(*a, **k))(alt_call, alt_kwargs)
                alt_max = min(spec["max_time_s"], 1.0)
                alt_k = timing.calls_per_sample(bound, alt_args, self.min_sample_s)
                alt_taken, alt_warmup = timing.time_call(
                    bound,
                    alt_args,
                    spec["min_iterations"],
                    min(spec["min_time_s"], alt_max),
                    alt_max,
                    spec["warmup_s"],
                    alt_k,
                )
                alt_summary = timing.latency_summary(alt_taken, batch_size, alt_k)
                alt_summary["warmup_iterations"] = alt_warmup
                self.alternatives.setdefault(alt_label, {})[str(batch_size)] = (
                    alt_summary
                )
        return self.alternatives

    def finish(self):
        """Alternatives, peak memory, accuracy and parameters; returns the result dict.

        Nothing here is timed but the alternatives (`time_alternatives`, unless
        asked for before), so the parent may finish several workers at once.
        """
        spec = self.spec
        latency, samples = {}, {}
        for batch_size, taken in self.samples.items():
            summary = timing.latency_summary(
                taken, batch_size, self.calls_per_sample[batch_size]
            )
            summary["warmup_iterations"] = self.load_warmup.get(batch_size, 0) + sum(
                w["warmup_iterations"]
                for w in self.windows
                if w["batch_size"] == batch_size
            )
            rounds = [
                w["p50_ms"] for w in self.windows if w["batch_size"] == batch_size
            ]
            # How far the p50 moved between the interleaved rounds (the machine's
            # speed steps): a later timing is checked against this interval.
            summary["round_p50_ms"] = rounds
            summary["p50_spread_ms"] = [min(rounds), max(rounds)] if rounds else None
            latency[str(batch_size)] = summary
            samples[str(batch_size)] = [round(t / 1e6, 5) for t in taken]
        alternatives = self.time_alternatives()
        peak = environment.peak_rss_bytes()
        runtime = self.runtime
        result = {
            "format": spec["format"],
            "path": spec["path"],
            "pid": os.getpid(),
            "runtime": runtime.version,
            "timed_call": self.label,
            "threads": self.threads,
            "runtime_settings": runtime.settings,
            "load_s": self.load_s,
            "import_s": self.import_s,
            "init_s": self.init_s,
            "first_inference_ms": (self.first_inference or {}).get("ms"),
            "first_inference_batch_size": (self.first_inference or {}).get(
                "batch_size"
            ),
            "baseline_rss_bytes": int(self.baseline_rss),
            "peak_rss_bytes": int(peak),
            "latency": latency,
            "alternatives": alternatives,
            "samples_ms": samples,
            "windows": self.windows,
            "python": platform.python_version(),
            "loaded_modules": loaded_modules(),
        }
        if spec.get("data_path"):
            x_data, y_data = _load_labelled(spec["data_path"], self.input_spec)
            outputs = [] if spec.get("outputs_path") else None
            result["accuracy"] = accuracy(
                runtime,
                x_data,
                y_data,
                int(spec.get("eval_batch_size", 500)),
                outputs,
                self.input_spec,
            )
            if outputs is not None:
                np.save(
                    spec["outputs_path"], np.concatenate(outputs), allow_pickle=False
                )
            result["accuracy_examples"] = int(len(y_data))
        else:
            result["accuracy"] = None
            result["accuracy_examples"] = 0
        result["parameters"] = runtime.parameters()
        return result


def loaded_modules():
    """Which deep-learning frameworks this process has imported."""
    names = ("tensorflow", "keras", "onnxruntime", "ai_edge_litert", "torch")
    return sorted(name for name in names if name in sys.modules)


def serve(spec, commands, replies):
    """Loads the runtime, then times windows as the parent asks (see `export.measure.worker`).

    Protocol, one JSON object per line: this process writes `{"ready": true}` once the
    runtime is loaded; then for each `{"op": "time", "batch_size", "min_time_s",
    "min_iterations", "max_time_s", "warmup_s"}` it times one window and writes the
    window's record (`Session.time`); `{"op": "alternatives"}` times the alternative
    calls (`Session.time_alternatives`); `{"op": "finish"}` makes it write the result
    dict and return. While it waits for a command it blocks on `commands`, using no CPU, so
    that the process being timed has the cores to itself.
    """

    def reply(message):
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    session = Session(spec)
    if spec.get("warmup_at_load"):
        session.warm_up(spec["warmup_s"])
    reply({"ready": True, "load_s": session.load_s})
    for line in commands:
        if not line.strip():
            continue
        command = json.loads(line)
        if command["op"] == "time":
            window = session.time(
                command["batch_size"],
                command["min_time_s"],
                command["min_iterations"],
                command["max_time_s"],
                command["warmup_s"],
            )
            reply(window)
        elif command["op"] == "alternatives":
            reply({"alternatives": session.time_alternatives()})
        elif command["op"] == "finish":
            reply(session.finish())
            return
        else:
            raise ValueError(f"unknown op {command['op']!r}")
    raise RuntimeError("the parent closed the command stream before finish")


def main(argv):
    """Runs `serve` on the spec file `argv[1]`, commands on stdin."""
    if len(argv) != 2 or not os.path.isfile(argv[1]):
        sys.stderr.write(
            "usage: python -m export.measure.child SPEC.json  (then commands on stdin)\n"
        )
        return 2
    # Keep the real stdout for the JSON lines; everything else (runtime logs, Keras
    # progress) goes to stderr.
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    with open(argv[1]) as handle:
        spec = json.load(handle)
    serve(spec, sys.stdin, json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
