"""Inference latency: does export.measure report what the runtime really does?

For the 800-800 student (784-800-800-10 MLP, fp32) exported to every format, this runs,
in one process run, for every format and batch size:

1. the report's measurement worker (`export.measure.worker.MeasurementWorker` running
   `export.measure.child`: p50 of per-call `perf_counter_ns` samples, summarised by the
   report's own code), and
2. an INDEPENDENT minimal timer of the same raw runtime call, written here without any
   code from `export/`: its own subprocess, the runtime set up by hand with the same
   thread settings, (a) a bare loop with `perf_counter` around each call (median), and
   (b) blocks of K calls with one clock pair per block (mean per call, no per-call timing
   code at all),

in alternating short windows (`--rounds` of them; which side goes first alternates),
and prints the report's p50 against (a) and the report's mean against (b), with ratios:
the report's harness adds nothing if the p50 ratio stays within 10%. The windows are
interleaved because this cloud machine's speed moves in steps that last seconds (see
BENCHMARKS.md): two timings taken one after the other measure two different machines.
(Under CPU contention the mean is dominated by stalls, so (b) is for information; the
p50 is what the report states.) Then, with `--sweep`, it measures thread settings (ONNX
Runtime intra-op threads x spinning x execution mode x io_binding, LiteRT num_threads,
NumPy/OpenBLAS threads), all interleaved in one `export.measure.measure_artifacts` run,
and checks the goal: the fastest fp32 runtime at <= 0.8x the NumPy floor (the floor at
its own best thread count: it is the reference, it is not sandbagged) at batch 1 and 64.
The floor is the report's, `x @ W` with the kernels as stored; the ratio to a tuned
floor (batch 1 on transposed kernels, OpenBLAS' faster GEMV) is printed beside it.

Usage:
  .venv/bin/python -m benchmarks.inference_latency                   # 20 rounds, all formats, sweep
  .venv/bin/python -m benchmarks.inference_latency --quick           # 2 rounds, short timing
  .venv/bin/python -m benchmarks.inference_latency --student s.keras --formats onnx,tflite,numpy
  .venv/bin/python -m benchmarks.inference_latency --release release/ --rounds 20 --seconds 4
      # the released variant (export.report --release-dir): its recorded p50 against an
      # independent timing of the file, and the report's worker against the same timer
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "student", None, ".keras student; default: models.build_mlp_student((800, 800))."
)
flags.DEFINE_list(
    "formats", ["numpy", "onnx", "tflite", "savedmodel", "keras"], "Formats to compare."
)
flags.DEFINE_list("batch_sizes", ["1", "64"], "Batch sizes.")
flags.DEFINE_integer(
    "rounds", 20, "Interleaved windows per format, batch size and side."
)
flags.DEFINE_integer(
    "threads", None, "Threads per runtime (default: all available cores)."
)
flags.DEFINE_float(
    "seconds", 4.0, "Timing seconds per batch size and side, over all rounds."
)
flags.DEFINE_boolean("sweep", True, "Search thread settings for the floor goal.")
flags.DEFINE_boolean("quick", False, "Smoke test: 2 rounds, 0.6 s timing, small sweep.")
flags.DEFINE_string("json", None, "Also write the results as JSON to this path.")
flags.DEFINE_string(
    "release",
    None,
    "A --release-dir of export.report: check the released file's recorded p50 "
    "(release.json) against an independent timing of that file, and the report's "
    "worker against the same timer in alternating windows.",
)

# The independent timer: no import from export/, its own runtime setup. It loads once,
# then times a window each time the parent writes "BATCH SECONDS WARMUP" on its stdin,
# and answers one JSON line: (a) per-call samples, a bare loop with one perf_counter
# pair around each call, and (b) blocks of K calls with one clock pair per block.
INDEPENDENT = r"""
import json, os, sys, time
import numpy as np
fmt, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(123)
inputs = {}
def example_shape():
    if fmt == "tflite":
        return [int(d) for d in interpreter.get_input_details()[0]["shape"][1:]]
    if fmt == "onnx":
        dims = session.get_inputs()[0].shape[1:]
        if all(isinstance(d, int) for d in dims):
            return list(dims)
    return [28, 28, 1]
def prepare(batch):
    if batch not in inputs:
        inputs[batch] = rng.random((batch, *example_shape()), dtype=np.float32)
    x = inputs[batch]
    if fmt == "onnx":
        feed = {session.get_inputs()[0].name: x}
        return lambda: session.run(None, feed)
    if fmt == "tflite":
        detail = interpreter.get_input_details()[0]
        index = detail["index"]
        out = interpreter.get_output_details()[0]["index"]
        interpreter.resize_tensor_input(index, list(x.shape))
        interpreter.allocate_tensors()
        if np.issubdtype(detail["dtype"], np.integer):  # int8 input: quantise once
            scale, zero = detail["quantization"]
            info = np.iinfo(detail["dtype"])
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(detail["dtype"])
        def call():
            interpreter.set_tensor(index, x)
            interpreter.invoke()
            return interpreter.get_tensor(out)
        return call
    if fmt == "numpy":
        flat = np.ascontiguousarray(x.reshape(batch, -1))
        # x @ W with the kernels as stored, like the report's floor (its default).
        outs = [np.empty((batch, w.shape[1]), np.float32) for w in ws]
        def call():
            h = flat
            for w, b, a, o in zip(ws, bs, acts, outs):
                np.matmul(h, w, out=o)
                o += b
                if a == "relu":
                    np.maximum(o, 0, out=o)
                h = o
            return h
        return call
    tensor = tf.constant(x)
    if fmt == "savedmodel":
        return lambda: function(**{name: tensor})
    return lambda: function(tensor)
if fmt == "onnx":
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
elif fmt == "tflite":
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path, num_threads=threads)
elif fmt == "numpy":
    data = np.load(path)
    n = int(data["num_layers"])
    acts = [str(a) for a in data["activations"]]
    ws = [np.ascontiguousarray(data["kernel_%d" % i], np.float32) for i in range(n)]
    bs = [np.ascontiguousarray(data["bias_%d" % i], np.float32) for i in range(n)]
else:
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if fmt == "savedmodel":
        function = tf.saved_model.load(path).signatures["serving_default"]
        name = list(function.structured_input_signature[1])[0]
    else:
        import keras
        model = keras.saving.load_model(path)
        function = tf.function(lambda t: model(t, training=False))
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    batch, seconds, warmup = int(line.split()[0]), float(line.split()[1]), float(line.split()[2])
    call = prepare(batch)
    start = time.perf_counter()
    calls = 0
    while calls < 3 or time.perf_counter() - start < warmup:
        call(); calls += 1
    per_call = (time.perf_counter() - start) / calls
    singles = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds / 2 or len(singles) < 10:
        t0 = time.perf_counter()
        call()
        singles.append((time.perf_counter() - t0) * 1e3)
    block = max(1, int(0.005 / per_call))
    block_means = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds / 2 or len(block_means) < 2:
        t0 = time.perf_counter()
        for _ in range(block):
            call()
        block_means.append((time.perf_counter() - t0) / block * 1e3)
    # Answer once this process is idle (thread pools spin after their last task), so that
    # the report's worker, timed next, has the cores to itself.
    quiet = time.perf_counter()
    while time.perf_counter() - quiet < 0.5:
        cpu = time.process_time()
        time.sleep(0.01)
        if time.process_time() - cpu < 0.001:
            break
    print(json.dumps({"singles_ms": singles, "block_means_ms": block_means, "block": block}), flush=True)
"""


class _Independent:
    """The independent timer's process (the INDEPENDENT script above)."""

    def __init__(self, fmt, path, threads):
        environment = dict(os.environ)
        blas = str(threads) if fmt == "numpy" else "1"
        environment.update(
            OPENBLAS_NUM_THREADS=blas, OMP_NUM_THREADS=blas, MKL_NUM_THREADS=blas
        )
        self.fmt = fmt
        self.process = subprocess.Popen(
            [sys.executable, "-c", INDEPENDENT, fmt, path, str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=environment,
            text=True,
        )
        self.singles, self.block_means = {}, {}

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(
                f"independent {self.fmt} timer exited with code {self.process.wait()}"
            )
        return json.loads(line)

    def wait_ready(self):
        self._read()

    def time(self, batch, seconds, warmup):
        self.process.stdin.write(f"{batch} {seconds} {warmup}\n")
        self.process.stdin.flush()
        answer = self._read()
        self.singles.setdefault(batch, []).extend(answer["singles_ms"])
        self.block_means.setdefault(batch, []).extend(answer["block_means_ms"])

    def close(self):
        self.process.kill()
        self.process.wait()


def _artifacts(folder, student_path):
    import keras

    from export import measure
    from export.to_onnx import export_onnx
    from export.to_savedmodel import export_savedmodel
    from export.to_tflite import export_tflite

    if student_path:
        model = keras.saving.load_model(student_path, safe_mode=True)
    else:
        import models

        keras.utils.set_random_seed(0)
        model = models.build_mlp_student(hidden_units=(800, 800))
        student_path = os.path.join(folder, "student.keras")
        model.save(student_path)
    paths = {
        "keras": student_path,
        "numpy": os.path.join(folder, "student_dense_layers.npz"),
    }
    measure.save_dense_layers(measure.dense_layers(model), paths["numpy"])
    paths["onnx"] = export_onnx(model, os.path.join(folder, "student.onnx")).path
    paths["tflite"] = export_tflite(model, os.path.join(folder, "student.tflite")).path
    paths["savedmodel"] = export_savedmodel(
        model, os.path.join(folder, "student_savedmodel")
    ).path
    return paths


def _agreement(paths, formats, batch_sizes, threads, rounds, seconds):
    """The report's worker and the independent timer, timed in alternating windows.

    For every format both processes are loaded first; then, `rounds` times, for every
    format (rotating order) and batch size, the report's worker times one window and the
    independent timer one, which of the two goes first alternating. The machine's speed
    moves in steps lasting seconds, so windows interleaved this finely see the same
    states, and what is left of a difference is the harness's. The report's side is
    summarised by the report's own code (`Session.finish`): its p50 is the report's figure.
    """
    from export import measure
    from export.measure import worker as worker_lib

    window = seconds / rounds
    timing = {
        "min_time_s": seconds,
        "min_iterations": 1,
        "max_time_s": max(3 * seconds, 1.0),
        "warmup_s": measure.DEFAULT_WARMUP_S,
    }
    with tempfile.TemporaryDirectory(prefix="kdkeras-agreement-") as scratch:
        report_workers, independents = {}, {}
        try:
            for fmt in formats:
                spec, _ = measure.build_spec(
                    paths[fmt],
                    fmt,
                    batch_sizes,
                    threads,
                    scratch,
                    timing=timing,
                    name=fmt,
                )
                report_workers[fmt] = worker_lib.MeasurementWorker(
                    spec, os.path.join(scratch, fmt + ".json")
                )
                independents[fmt] = _Independent(fmt, paths[fmt], threads)
            for fmt in formats:
                report_workers[fmt].wait_ready()
                independents[fmt].wait_ready()
            for round_index in range(rounds):
                shift = round_index % len(formats)
                for fmt in formats[shift:] + formats[:shift]:
                    for batch in batch_sizes:
                        warmup = (
                            measure.DEFAULT_WARMUP_S
                            if round_index == 0
                            else worker_lib.REWARM_S
                        )
                        sides = [
                            (
                                report_workers[fmt].time,
                                (batch, window, 1, 3 * window, warmup),
                            ),
                            (independents[fmt].time, (batch, window, warmup)),
                        ]
                        if (round_index + batch_sizes.index(batch)) % 2:
                            sides.reverse()
                        for side, args in sides:
                            side(*args)
                print(f"  round {round_index + 1}/{rounds} done", flush=True)
            rows = {}
            for fmt in formats:
                result = report_workers[fmt].finish()
                for batch in batch_sizes:
                    singles = independents[fmt].singles[batch]
                    rows[(fmt, batch)] = {
                        "report": result["latency"][str(batch)]["p50_ms"],
                        "report_mean": result["latency"][str(batch)]["mean_ms"],
                        "report_calls": result["latency"][str(batch)]["iterations"],
                        "report_calls_per_sample": result["latency"][str(batch)].get(
                            "calls_per_sample", 1
                        ),
                        "independent_block_median": statistics.median(
                            independents[fmt].block_means[batch]
                        ),
                        "independent": statistics.median(singles),
                        "independent_block_mean": statistics.mean(
                            independents[fmt].block_means[batch]
                        ),
                        "independent_calls": len(singles),
                    }
            return rows
        finally:
            for handle in list(report_workers.values()) + list(independents.values()):
                handle.close()


def _release_check(release_dir, rounds, seconds):
    """The released file, timed by the report's worker and the independent timer.

    Reads `release.json` in `release_dir`: the artifact, its format, its threads (the
    lineage's, else the measured entry's) and the p50 the report recorded per batch
    size. The file is then timed by the report's worker and by the independent timer in
    alternating windows (`_agreement`). Returns one row per batch size with the recorded
    p50, the worker's p50 now and the independent p50 (median of single calls) now.
    """
    record_path = os.path.join(release_dir, "release.json")
    if not os.path.isfile(record_path):
        raise app.UsageError(
            f"`--release` must be a folder holding release.json. Received: --release={release_dir}"
        )
    with open(record_path, encoding="utf-8") as handle:
        record = json.load(handle)
    fmt = record["format"]
    if fmt not in ("tflite", "onnx", "savedmodel"):
        raise app.UsageError(
            f"release format {fmt!r} is not timed by the independent timer"
        )
    path = os.path.join(release_dir, record["artifact"])
    threads = int(
        (record.get("lineage") or {}).get("threads") or record["measured"]["threads"]
    )
    recorded = {
        int(b): stats["p50_ms"] for b, stats in record["measured"]["latency"].items()
    }
    batch_sizes = sorted(recorded)
    rows = _agreement({fmt: path}, [fmt], batch_sizes, threads, rounds, seconds)
    for (_, batch), row in rows.items():
        row["recorded"] = recorded[batch]
    return record, threads, rows


def _print_release(record, threads, rows, release_dir):
    print()
    print(
        f"released: {record['artifact']} ({record['format']}, "
        f"{record.get('quantize', 'none')}, {threads} threads) from {release_dir}"
    )
    print(
        "| batch | recorded p50 ms (release.json) | report worker p50 ms now | calls/sample "
        "| independent p50 ms now | recorded / independent | worker / independent "
        "| independent 5 ms-block median ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    within = True
    for (_, batch), row in rows.items():
        recorded_ratio = row["recorded"] / row["independent"]
        worker_ratio = row["report"] / row["independent"]
        within &= abs(recorded_ratio - 1) <= 0.10
        print(
            f"| {batch} | {row['recorded']:.5f} | {row['report']:.5f} | "
            f"{row['report_calls_per_sample']} | {row['independent']:.5f} | "
            f"{recorded_ratio:.3f} | {worker_ratio:.3f} | "
            f"{row['independent_block_median']:.5f} |"
        )
    return within


def _sweep_configs(threads_max, quick):
    thread_counts = sorted({1, threads_max})
    configs = []
    for t in thread_counts:
        configs.append(("numpy", t, {}))
        configs.append(("numpy", t, {"transposed_gemv": True}))
        configs.append(("tflite", t, {}))
        for spinning in (True, False):
            modes = ("sequential",) if quick else ("sequential", "parallel")
            for mode in modes:
                configs.append(
                    ("onnx", t, {"allow_spinning": spinning, "execution_mode": mode})
                )
        configs.append(("onnx", t, {"allow_spinning": True, "io_binding": True}))
    return configs


def _sweep(paths, batch_sizes, threads_max, rounds, seconds, quick):
    """Every configuration measured by the report's code, all interleaved in one run."""
    from export import measure

    configs = _sweep_configs(threads_max, quick)
    jobs = [(paths[fmt], fmt, t, options) for fmt, t, options in configs]
    results = measure.measure_artifacts(
        jobs,
        batch_sizes,
        min_time_s=seconds,
        max_time_s=max(3 * seconds, 1.0),
        rounds=rounds,
        on_step=lambda label: print(f"  sweep: {label}", flush=True),
    )
    for (fmt, t, options), result in zip(configs, results, strict=True):
        if isinstance(result, Exception):
            raise RuntimeError(f"sweep {fmt} {t} threads {options}: {result}")
    return [
        (config, {b: result["latency"][str(b)]["p50_ms"] for b in batch_sizes})
        for config, result in zip(configs, results, strict=True)
    ]


def main(argv):
    del argv
    from export import measure

    quick = FLAGS.quick
    rounds = 2 if quick else FLAGS.rounds
    seconds = 0.6 if quick else FLAGS.seconds
    threads = FLAGS.threads or measure.available_threads()
    batch_sizes = [int(b) for b in FLAGS.batch_sizes]
    formats = list(FLAGS.formats)
    command = ".venv/bin/python -m benchmarks.inference_latency " + shlex.join(
        sys.argv[1:]
    )
    load_start = os.getloadavg()
    if FLAGS.release:
        print(
            f"# released variant vs independent timing ({rounds} interleaved rounds); "
            f"load average at start {load_start[0]:.2f}",
            flush=True,
        )
        record, release_threads, rows = _release_check(FLAGS.release, rounds, seconds)
        within = _print_release(record, release_threads, rows, FLAGS.release)
        load_end = os.getloadavg()
        print()
        print(
            f"load average start {load_start[0]:.2f} / end {load_end[0]:.2f} "
            f"(above {measure.available_threads()} means other processes competed for the CPU)"
        )
        print(
            f"recorded p50 within 10% of the independent timing: {'yes' if within else 'NO'}"
        )
        print(f"reproduce: {command}")
        if FLAGS.json:
            with open(FLAGS.json, "w") as handle:
                json.dump(
                    {
                        "command": command,
                        "release": record["artifact"],
                        "threads": release_threads,
                        "load_average": [load_start, load_end],
                        "rows": [{"batch": b, **v} for (_, b), v in rows.items()],
                    },
                    handle,
                    indent=2,
                    default=str,
                )
        return 0 if within else 1
    print(
        f"# inference latency, {platform.processor() or platform.machine()}, "
        f"{measure.available_threads()} cores, {threads} threads per runtime; "
        f"load average at start {load_start[0]:.2f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="kdkeras-latency-") as folder:
        paths = _artifacts(folder, FLAGS.student)
        print(
            f"## report harness vs independent timing ({rounds} interleaved rounds)",
            flush=True,
        )
        agreement = _agreement(paths, formats, batch_sizes, threads, rounds, seconds)
        sweep = (
            _sweep(paths, batch_sizes, threads, rounds, seconds, quick)
            if FLAGS.sweep
            else []
        )
    print()
    print(
        "| runtime | batch | report p50 ms | independent p50 ms | ratio | within 10% | "
        "report mean ms | independent block mean ms | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    all_within = True
    for (fmt, b), value in agreement.items():
        ratio = value["report"] / value["independent"]
        within = abs(ratio - 1) <= 0.10
        all_within &= within
        mean_ratio = value["report_mean"] / value["independent_block_mean"]
        print(
            f"| {fmt} | {b} | {value['report']:.4f} | {value['independent']:.4f} | {ratio:.3f} | "
            f"{'yes' if within else 'NO'} | {value['report_mean']:.4f} | "
            f"{value['independent_block_mean']:.4f} | {mean_ratio:.3f} |"
        )
    goal = {}
    if sweep:
        print()
        print(
            "| runtime | threads | options | "
            + " | ".join(f"p50@{b} ms" for b in batch_sizes)
            + " |"
        )
        print("|---|---|---|" + "---|" * len(batch_sizes))
        for (fmt, t, options), p50 in sweep:
            opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "–"
            print(
                f"| {fmt} | {t} | {opts} | "
                + " | ".join(f"{p50[b]:.4f}" for b in batch_sizes)
                + " |"
            )
        print()
        print(
            "| batch | NumPy floor p50 (best threads) | fastest fp32 runtime | p50 ms | x floor | goal <= 0.8 "
            "| tuned floor p50 (transposed GEMV) | x tuned floor |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for b in batch_sizes:
            # The goal's floor is the report's: x @ W with the stored kernels. The tuned
            # floor (batch 1 on transposed kernels, GEMV) is shown beside it.
            floor = min(
                (p for p in sweep if p[0][0] == "numpy" and not p[0][2]),
                key=lambda p: p[1][b],
            )
            tuned = min((p for p in sweep if p[0][0] == "numpy"), key=lambda p: p[1][b])
            best = min((p for p in sweep if p[0][0] != "numpy"), key=lambda p: p[1][b])
            ratio = best[1][b] / floor[1][b]
            goal[b] = {
                "floor": floor,
                "best": best,
                "ratio": ratio,
                "tuned_floor_ratio": best[1][b] / tuned[1][b],
            }
            (bf, bt, bo) = best[0]
            opts = ", ".join(f"{k}={v}" for k, v in bo.items())
            print(
                f"| {b} | {floor[1][b]:.4f} ({floor[0][1]} threads) | {bf}, {bt} threads"
                f"{', ' + opts if opts else ''} | {best[1][b]:.4f} | {ratio:.2f} | "
                f"{'yes' if ratio <= 0.8 else 'NO'} | {tuned[1][b]:.4f} ({tuned[0][1]} threads) | "
                f"{goal[b]['tuned_floor_ratio']:.2f} |"
            )
    load_end = os.getloadavg()
    print()
    print(
        f"load average start {load_start[0]:.2f} / end {load_end[0]:.2f} "
        f"(above {measure.available_threads()} means other processes competed for the CPU)"
    )
    print(f"agreement within 10% for every runtime: {'yes' if all_within else 'NO'}")
    print(f"reproduce: {command}")
    if FLAGS.json:
        with open(FLAGS.json, "w") as handle:
            json.dump(
                {
                    "command": command,
                    "threads": threads,
                    "load_average": [load_start, load_end],
                    "agreement": [
                        {"format": f, "batch": b, **v}
                        for (f, b), v in agreement.items()
                    ],
                    "sweep": [
                        {"format": c[0], "threads": c[1], "options": c[2], "p50_ms": p}
                        for c, p in sweep
                    ],
                    "goal": {
                        str(b): {
                            "ratio": g["ratio"],
                            "tuned_floor_ratio": g["tuned_floor_ratio"],
                            "best": g["best"][0][:2],
                            "best_options": g["best"][0][2],
                            "floor_threads": g["floor"][0][1],
                        }
                        for b, g in goal.items()
                    },
                },
                handle,
                indent=2,
                default=str,
            )


if __name__ == "__main__":
    app.run(main)
