"""How steady is this machine? The two facts export.measure.worker is built on.

1. Step noise: one process times the same NumPy forward pass (the 800-800 student's
   shapes, `x @ W`, batch 64) in back-to-back windows for `--seconds`, and prints each
   window's p50 and how far window p50s spread at several window lengths. On a shared
   cloud VM the speed moves in steps lasting seconds: two timings taken one after the
   other can differ widely though nothing in either changed (BENCHMARKS.md). That is why
   `export.measure.measure_artifacts` interleaves the runtimes it compares.
2. Spinning pools: after a runtime's last call, how much CPU its process still burns
   while it sits idle (its thread pool spinning for the next task), for OpenBLAS (the
   NumPy floor) and ONNX Runtime. That is why a worker settles before it answers
   (`export.measure.timing.settle`).
3. LiteRT's default threads: the student at batch 1 through `Interpreter(model_path)`
   without `num_threads`, and with 1 and with `--threads`, in alternating windows in one
   process. Whoever re-times a report figure must use the thread count it records.

Usage:
  .venv/bin/python -m benchmarks.machine_noise                 # 60 s trace, then the spin tails
  .venv/bin/python -m benchmarks.machine_noise --seconds=20 --threads=1
"""

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_float("seconds", default=60.0, help="Length of the step-noise trace.")
flags.DEFINE_float("window", default=0.25, help="Seconds per window of the trace.")
flags.DEFINE_integer("batch", default=64, help="Batch size of the traced forward pass.")
flags.DEFINE_integer("threads", default=2, help="BLAS / ONNX Runtime threads.")
flags.DEFINE_boolean(
    "spin",
    default=True,
    help="Also measure the spin tails and LiteRT's default threads.",
)

# Runs in a child with the BLAS thread count set before NumPy loads.
TRACE = r"""
import json, sys, time
import numpy as np
batch, seconds, window = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
rng = np.random.default_rng(0)
kernels = [rng.standard_normal(shape, dtype=np.float32) * 0.03 for shape in ((784, 800), (800, 800), (800, 10))]
x = rng.random((batch, 784), dtype=np.float32)
outs = [np.empty((batch, k.shape[1]), np.float32) for k in kernels]
def call():
    h = x
    for k, o in zip(kernels, outs):
        np.matmul(h, k, out=o); np.maximum(o, 0.0, out=o); h = o
start = time.perf_counter()
while time.perf_counter() - start < 1.0:
    call()
p50s = []
begin = time.perf_counter()
while time.perf_counter() - begin < seconds:
    samples, start = [], time.perf_counter()
    while time.perf_counter() - start < window:
        t0 = time.perf_counter(); call(); samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    p50s.append(samples[len(samples) // 2])
print(json.dumps(p50s))
"""

# CPU the process burns in 300 ms of idleness after 0.3 s of calls.
SPIN = r"""
import json, sys, time
import numpy as np
runtime, threads = sys.argv[1], int(sys.argv[2])
x = np.random.default_rng(0).random((64, 784), dtype=np.float32)
if runtime == "openblas":
    w = np.random.default_rng(1).random((784, 800), dtype=np.float32)
    call = lambda: x @ w
else:
    import onnxruntime as ort
    options = ort.SessionOptions(); options.intra_op_num_threads = threads; options.inter_op_num_threads = 1
    session = ort.InferenceSession(sys.argv[3], options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.reshape(64, 28, 28, 1)}
    call = lambda: session.run(None, feed)
start = time.perf_counter()
while time.perf_counter() - start < 0.3:
    call()
cpu = time.process_time()
time.sleep(0.3)
print(json.dumps((time.process_time() - cpu) * 1e3))
"""


def _child(script, *args, threads):
    environment = dict(
        os.environ,
        OPENBLAS_NUM_THREADS=str(threads),
        OMP_NUM_THREADS=str(threads),
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _spread(p50s, per_window):
    groups = [
        statistics.median(p50s[i : i + per_window])
        for i in range(0, len(p50s) - per_window + 1, per_window)
    ]
    return max(groups) / min(groups)


# LiteRT with its default threads against explicit counts, alternating 0.1 s windows.
LITERT_THREADS = r"""
import json, statistics, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
path, threads = sys.argv[1], int(sys.argv[2])
x = np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32)
def make(**kwargs):
    interpreter = Interpreter(model_path=path, **kwargs)
    interpreter.allocate_tensors()
    i, o = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    def call():
        interpreter.set_tensor(i, x); interpreter.invoke(); return interpreter.get_tensor(o)
    return call
calls = {"default": make(), "num_threads=1": make(num_threads=1), f"num_threads={threads}": make(num_threads=threads)}
samples = {name: [] for name in calls}
for _ in range(20):
    for name, call in calls.items():
        start = time.perf_counter()
        while time.perf_counter() - start < 0.1:
            t0 = time.perf_counter(); call(); samples[name].append(time.perf_counter() - t0)
print(json.dumps({name: statistics.median(v) * 1e3 for name, v in samples.items()}))
"""


def _student_exports(folder):
    """The untrained 800-800 student as ONNX and TFLite (the latency is a trained one's)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    import models
    from export.to_onnx import export_onnx
    from export.to_tflite import export_tflite

    keras.utils.set_random_seed(0)
    student = models.build_mlp_student(hidden_units=(800, 800))
    return (
        export_onnx(student, os.path.join(folder, "student.onnx")).path,
        export_tflite(student, os.path.join(folder, "student.tflite")).path,
    )


def main(argv):
    del argv
    print(
        f"# machine noise: NumPy x @ W (784-800-800-10), batch {FLAGS.batch}, {FLAGS.threads} threads, "
        f"{FLAGS.window} s windows for {FLAGS.seconds} s; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    p50s = _child(
        TRACE, FLAGS.batch, FLAGS.seconds, FLAGS.window, threads=FLAGS.threads
    )
    print("window p50s (ms):", " ".join(f"{p:.2f}" for p in p50s))
    ordered = sorted(p50s)
    print(
        f"p10 {ordered[len(ordered) // 10]:.3f}  median {statistics.median(p50s):.3f}  "
        f"p90 {ordered[9 * len(ordered) // 10]:.3f} ms; slowest / fastest window {max(p50s) / min(p50s):.2f}x"
    )
    for per_window in (1, 4, 16):
        if len(p50s) >= 2 * per_window:
            print(
                f"  {per_window * FLAGS.window:g} s windows: slowest / fastest median {_spread(p50s, per_window):.2f}x"
            )
    if FLAGS.spin:
        with tempfile.TemporaryDirectory() as folder:
            onnx_path, tflite_path = _student_exports(folder)
            tails = {
                "openblas": _child(
                    SPIN, "openblas", FLAGS.threads, threads=FLAGS.threads
                )
            }
            tails["onnxruntime"] = _child(
                SPIN, "onnxruntime", FLAGS.threads, onnx_path, threads=1
            )
            litert = _child(LITERT_THREADS, tflite_path, FLAGS.threads, threads=1)
        for runtime, cpu_ms in tails.items():
            print(
                f"spin tail: {runtime}, {FLAGS.threads} threads: {cpu_ms:.0f} ms of CPU in the 300 ms after "
                "its last call, the process otherwise idle"
            )
        print(
            "LiteRT Interpreter, student, batch 1, p50: "
            + ", ".join(f"{name} {p50:.4f} ms" for name, p50 in litert.items())
        )
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    print(
        "reproduce: .venv/bin/python -m benchmarks.machine_noise "
        + shlex.join(sys.argv[1:])
    )


if __name__ == "__main__":
    app.run(main)
