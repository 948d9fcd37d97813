"""Inference latency: does export.measure report what the runtime really does?

For the 800-800 student (784-800-800-10 MLP, fp32) exported to every format, this runs,
side by side and repeated (the order rotates every repeat):

1. `export.measure.measure_artifact` (the report's numbers: p50 of per-call
   `perf_counter_ns` samples taken in a subprocess by `export/_runner.py`), and
2. an INDEPENDENT minimal timing of the same raw runtime call, written here without
   any code from `export/`: a fresh subprocess, the runtime set up by hand with the same
   thread settings, (a) a bare loop with `perf_counter` around each call (median), and
   (b) blocks of K calls with one clock pair per block (mean per call, no per-call timing
   code at all),

and prints the report's p50 against (a) and the report's mean against (b), with ratios:
the report's harness adds nothing if the p50 ratio stays within 10%. (Under CPU
contention the mean is dominated by stalls, so (b) is shown for information; the p50 is
what the report states.) Then, with `--sweep`, it searches thread settings (ONNX Runtime
intra-op threads x spinning x execution mode, LiteRT num_threads, NumPy/OpenBLAS threads)
and checks the goal: the fastest fp32 runtime at <= 0.8x the NumPy floor (the floor at its
own best thread count: it is the reference, it is not sandbagged) at batch 1 and 64. The
floor is the report's, `x @ W` with the kernels as stored; the ratio to a tuned floor
(batch 1 on transposed kernels, OpenBLAS' faster GEMV) is printed beside it.

Usage:
  python benchmarks/inference_latency.py                   # 5 repeats, all formats, sweep
  python benchmarks/inference_latency.py --quick           # 1 repeat, short timing
  python benchmarks/inference_latency.py --student s.keras --formats onnx,tflite,numpy
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
flags.DEFINE_string("student", None, ".keras student; default: models.build_mlp_student((800, 800)).")
flags.DEFINE_list("formats", ["numpy", "onnx", "tflite", "savedmodel", "keras"], "Formats to compare.")
flags.DEFINE_list("batch_sizes", ["1", "64"], "Batch sizes.")
flags.DEFINE_integer("repeats", 5, "Repeats (rotating order, alternating pairs); medians reported.")
flags.DEFINE_integer("threads", None, "Threads per runtime (default: all available cores).")
flags.DEFINE_float("seconds", 1.0, "Timing seconds per batch size, per method.")
flags.DEFINE_boolean("sweep", True, "Search thread settings for the floor goal.")
flags.DEFINE_boolean("quick", False, "Smoke test: 1 repeat, 0.3 s timing, small sweep.")
flags.DEFINE_string("json", None, "Also write the results as JSON to this path.")

# The independent timer: no import from export/, its own runtime setup, block timing.
INDEPENDENT = r"""
import json, os, statistics, sys, time
import numpy as np
fmt, path, batch, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
x = np.random.default_rng(123).random((batch, 28, 28, 1), dtype=np.float32)
if fmt == "onnx":
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    call = lambda: session.run(None, feed)
elif fmt == "tflite":
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path, num_threads=threads)
    index = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(x.shape))
    interpreter.allocate_tensors()
    def call():
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return interpreter.get_tensor(out)
elif fmt == "numpy":
    data = np.load(path)
    n = int(data["num_layers"])
    acts = [str(a) for a in data["activations"]]
    ws = [np.ascontiguousarray(data["kernel_%d" % i], np.float32) for i in range(n)]
    bs = [np.ascontiguousarray(data["bias_%d" % i], np.float32) for i in range(n)]
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
else:
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tensor = tf.constant(x)
    if fmt == "savedmodel":
        function = tf.saved_model.load(path).signatures["serving_default"]
        name = list(function.structured_input_signature[1])[0]
        call = lambda: function(**{name: tensor})
    else:
        import keras
        model = keras.saving.load_model(path)
        function = tf.function(lambda t: model(t, training=False))
        call = lambda: function(tensor)
# Warm-up as long as a timing window (thread pools awake, caches and clocks settled),
# like the report's worker, which has run other batch sizes before this one.
start = time.perf_counter()
calls = 0
while calls < 5 or time.perf_counter() - start < max(0.3, seconds):
    call(); calls += 1
per_call = (time.perf_counter() - start) / calls
# (a) one clock read pair per call: the per-call median, as the report states it.
singles = []
start = time.perf_counter()
while time.perf_counter() - start < seconds / 2 or len(singles) < 20:
    t0 = time.perf_counter()
    call()
    singles.append((time.perf_counter() - t0) * 1e3)
# (b) blocks of K calls, one clock pair per block: the mean per call with no per-call
# timing code at all (compared with the report's mean).
block = max(1, int(0.005 / per_call))
block_means = []
start = time.perf_counter()
while time.perf_counter() - start < seconds / 2 or len(block_means) < 5:
    t0 = time.perf_counter()
    for _ in range(block):
        call()
    block_means.append((time.perf_counter() - t0) / block * 1e3)
print(json.dumps({"median_ms": statistics.median(singles), "block_mean_ms": statistics.mean(block_means),
                  "calls": len(singles), "blocks": len(block_means), "block": block}))
"""


def _independent(fmt, path, batch, threads, seconds):
    environment = dict(os.environ)
    blas = str(threads) if fmt == "numpy" else "1"
    environment.update(OPENBLAS_NUM_THREADS=blas, OMP_NUM_THREADS=blas, MKL_NUM_THREADS=blas)
    completed = subprocess.run(
        [sys.executable, "-c", INDEPENDENT, fmt, path, str(batch), str(threads), str(seconds)],
        capture_output=True, text=True, env=environment, check=False,
    )
    if completed.returncode:
        raise RuntimeError(f"independent {fmt} timing failed: {completed.stderr.strip().splitlines()[-1]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


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
    paths = {"keras": student_path, "numpy": os.path.join(folder, "student_dense_layers.npz")}
    measure.save_dense_layers(measure.dense_layers(model), paths["numpy"])
    paths["onnx"] = export_onnx(model, os.path.join(folder, "student.onnx")).path
    paths["tflite"] = export_tflite(model, os.path.join(folder, "student.tflite")).path
    paths["savedmodel"] = export_savedmodel(model, os.path.join(folder, "student_savedmodel")).path
    return paths


def _agreement(paths, formats, batch_sizes, threads, repeats, seconds):
    from export import measure

    keys = ("report", "independent", "report_mean", "independent_block_mean")
    rows = {(f, b): {k: [] for k in keys} for f in formats for b in batch_sizes}
    for repeat in range(repeats):
        order = formats[repeat % len(formats):] + formats[: repeat % len(formats)]
        for fmt in order:
            # Alternate which of the pair runs first, so that a drift of the machine's
            # speed during a repeat does not always favour the same side.
            def report():
                return measure.measure_artifact(
                    paths[fmt], fmt, batch_sizes=batch_sizes, threads=threads,
                    min_time_s=seconds, max_time_s=max(3 * seconds, 1.0),
                )

            def independent():
                return {b: _independent(fmt, paths[fmt], b, threads, seconds) for b in batch_sizes}

            if repeat % 2 == 0:
                result, independents = report(), independent()
            else:
                independents = independent()
                result = report()
            for b in batch_sizes:
                rows[(fmt, b)]["report"].append(result["latency"][str(b)]["p50_ms"])
                rows[(fmt, b)]["report_mean"].append(result["latency"][str(b)]["mean_ms"])
                rows[(fmt, b)]["independent"].append(independents[b]["median_ms"])
                rows[(fmt, b)]["independent_block_mean"].append(independents[b]["block_mean_ms"])
            print(f"  repeat {repeat + 1}/{repeats} {fmt}: " + ", ".join(
                f"b{b} p50 report {rows[(fmt, b)]['report'][-1]:.4f} ms / independent "
                f"{rows[(fmt, b)]['independent'][-1]:.4f} ms" for b in batch_sizes), flush=True)
    return {key: {k: statistics.median(v) for k, v in value.items()} for key, value in rows.items()}


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
                configs.append(("onnx", t, {"allow_spinning": spinning, "execution_mode": mode}))
        configs.append(("onnx", t, {"allow_spinning": True, "io_binding": True}))
    return configs


def _sweep(paths, batch_sizes, threads_max, repeats, seconds, quick):
    from export import measure

    configs = _sweep_configs(threads_max, quick)
    samples = {i: {b: [] for b in batch_sizes} for i in range(len(configs))}
    for repeat in range(repeats):
        shift = repeat % len(configs)
        for i in list(range(shift, len(configs))) + list(range(shift)):
            fmt, t, options = configs[i]
            result = measure.measure_artifact(
                paths[fmt], fmt, batch_sizes=batch_sizes, threads=t, options=options,
                min_time_s=seconds, max_time_s=max(3 * seconds, 1.0),
            )
            for b in batch_sizes:
                samples[i][b].append(result["latency"][str(b)]["p50_ms"])
    return [
        (configs[i], {b: statistics.median(v) for b, v in samples[i].items()}) for i in samples
    ]


def main(argv):
    del argv
    from export import measure

    quick = FLAGS.quick
    repeats = 1 if quick else FLAGS.repeats
    seconds = 0.3 if quick else FLAGS.seconds
    threads = FLAGS.threads or measure.available_threads()
    batch_sizes = [int(b) for b in FLAGS.batch_sizes]
    formats = list(FLAGS.formats)
    command = "python benchmarks/inference_latency.py " + shlex.join(sys.argv[1:])
    load_start = os.getloadavg()
    print(f"# inference latency, {platform.processor() or platform.machine()}, "
          f"{measure.available_threads()} cores, {threads} threads per runtime; "
          f"load average at start {load_start[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="kdkeras-latency-") as folder:
        paths = _artifacts(folder, FLAGS.student)
        print("## report harness vs independent timing (median p50 over repeats)", flush=True)
        agreement = _agreement(paths, formats, batch_sizes, threads, repeats, seconds)
        sweep = _sweep(paths, batch_sizes, threads, repeats, seconds, quick) if FLAGS.sweep else []
    print()
    print("| runtime | batch | report p50 ms | independent p50 ms | ratio | within 10% | "
          "report mean ms | independent block mean ms | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    all_within = True
    for (fmt, b), value in agreement.items():
        ratio = value["report"] / value["independent"]
        within = abs(ratio - 1) <= 0.10
        all_within &= within
        mean_ratio = value["report_mean"] / value["independent_block_mean"]
        print(f"| {fmt} | {b} | {value['report']:.4f} | {value['independent']:.4f} | {ratio:.3f} | "
              f"{'yes' if within else 'NO'} | {value['report_mean']:.4f} | "
              f"{value['independent_block_mean']:.4f} | {mean_ratio:.3f} |")
    goal = {}
    if sweep:
        print()
        print("| runtime | threads | options | " + " | ".join(f"p50@{b} ms" for b in batch_sizes) + " |")
        print("|---|---|---|" + "---|" * len(batch_sizes))
        for (fmt, t, options), p50 in sweep:
            opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "–"
            print(f"| {fmt} | {t} | {opts} | " + " | ".join(f"{p50[b]:.4f}" for b in batch_sizes) + " |")
        print()
        print("| batch | NumPy floor p50 (best threads) | fastest fp32 runtime | p50 ms | x floor | goal <= 0.8 "
              "| tuned floor p50 (transposed GEMV) | x tuned floor |")
        print("|---|---|---|---|---|---|---|---|")
        for b in batch_sizes:
            # The goal's floor is the report's: x @ W with the stored kernels. The tuned
            # floor (batch 1 on transposed kernels, GEMV) is shown beside it.
            floor = min((p for p in sweep if p[0][0] == "numpy" and not p[0][2]), key=lambda p: p[1][b])
            tuned = min((p for p in sweep if p[0][0] == "numpy"), key=lambda p: p[1][b])
            best = min((p for p in sweep if p[0][0] != "numpy"), key=lambda p: p[1][b])
            ratio = best[1][b] / floor[1][b]
            goal[b] = {"floor": floor, "best": best, "ratio": ratio,
                       "tuned_floor_ratio": best[1][b] / tuned[1][b]}
            (bf, bt, bo) = best[0]
            opts = ", ".join(f"{k}={v}" for k, v in bo.items())
            print(f"| {b} | {floor[1][b]:.4f} ({floor[0][1]} threads) | {bf}, {bt} threads"
                  f"{', ' + opts if opts else ''} | {best[1][b]:.4f} | {ratio:.2f} | "
                  f"{'yes' if ratio <= 0.8 else 'NO'} | {tuned[1][b]:.4f} ({tuned[0][1]} threads) | "
                  f"{goal[b]['tuned_floor_ratio']:.2f} |")
    load_end = os.getloadavg()
    print()
    print(f"load average start {load_start[0]:.2f} / end {load_end[0]:.2f} "
          f"(above {measure.available_threads()} means other processes competed for the CPU)")
    print(f"agreement within 10% for every runtime: {'yes' if all_within else 'NO'}")
    print(f"reproduce: {command}")
    if FLAGS.json:
        with open(FLAGS.json, "w") as handle:
            json.dump({
                "command": command, "threads": threads, "load_average": [load_start, load_end],
                "agreement": [{"format": f, "batch": b, **v} for (f, b), v in agreement.items()],
                "sweep": [{"format": c[0], "threads": c[1], "options": c[2], "p50_ms": p} for c, p in sweep],
                "goal": {str(b): {"ratio": g["ratio"], "tuned_floor_ratio": g["tuned_floor_ratio"],
                                  "best": g["best"][0][:2],
                                  "best_options": g["best"][0][2], "floor_threads": g["floor"][0][1]}
                         for b, g in goal.items()},
            }, handle, indent=2, default=str)


if __name__ == "__main__":
    app.run(main)
