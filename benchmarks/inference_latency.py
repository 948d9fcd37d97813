"""Inference latency: does export.measure report what the runtime really does?

For the 800-800 student (784-800-800-10 MLP, fp32) exported to every format, this runs,
in one process run, for every format and batch size:

1. the report's measurement worker (`export.measure.worker.MeasurementWorker` running
   `export.measure.child`: p50 of per-call `perf_counter_ns` samples, in blocks of
   `calls_per_sample` calls for calls under 50 µs, summarised by the report's own
   code), and
2. an INDEPENDENT timer of the same raw runtime call (`benchmarks.independent_timer`,
   no code from `export/`): its own subprocess, the runtime set up by hand with the
   same thread settings, timing blocks of the same `calls_per_sample` calls with one
   clock pair per block,

in alternating short windows (`--rounds` of them; which side goes first alternates),
and prints the report's p50 and mean against the independent ones, with ratios: the
report's harness adds nothing if the p50 ratio stays within 10%. The windows are
interleaved because this cloud machine's speed moves in steps that last seconds (see
BENCHMARKS.md): two timings taken one after the other measure two different machines.
(Under CPU contention the mean is dominated by stalls, so it is for information; the
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
  .venv/bin/python -m benchmarks.inference_latency --student s.keras --import my_package.layers
      # a student of your own registered classes: --import names the module(s) registering them
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
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import independent_timer  # noqa: E402
from benchmarks.independent_timer import IndependentTimer  # noqa: E402
from kdutils import imports  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "student",
    default=None,
    help=".keras student; default: models.build_mlp_student((800, 800)).",
)
if imports.FLAG_NAME not in FLAGS:  # Shared with export's tools.
    flags.DEFINE_string(imports.FLAG_NAME, None, imports.FLAG_HELP)
flags.DEFINE_list(
    "formats",
    default=["numpy", "onnx", "tflite", "savedmodel", "keras"],
    help="Formats to compare.",
)
flags.DEFINE_list("batch-sizes", default=["1", "64"], help="Batch sizes.")
flags.DEFINE_integer(
    "rounds",
    default=20,
    help="Interleaved windows per format, batch size and side.",
)
flags.DEFINE_integer(
    "threads",
    default=None,
    help="Threads per runtime (default: all available cores).",
)
flags.DEFINE_float(
    "seconds",
    default=4.0,
    help="Timing seconds per batch size and side, over all rounds.",
)
flags.DEFINE_boolean(
    "sweep", default=True, help="Search thread settings for the floor goal."
)
flags.DEFINE_boolean(
    "quick", default=False, help="Smoke test: 2 rounds, 0.6 s timing, small sweep."
)
flags.DEFINE_string(
    "json", default=None, help="Also write the results as JSON to this path."
)
flags.DEFINE_string(
    "release",
    default=None,
    help="A --release-dir of export.report: check the released file's recorded p50 "
    "(release.json) against an independent timing of that file, with the recorded "
    "threads, block size and warm-up per batch size, and the report's worker "
    "against the same timer in alternating windows.",
)


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


def _pooled_p50(windows):
    """p50 of all samples of `windows` (lists of ms), as the report pools its rounds."""
    return statistics.median([t for window in windows for t in window])


def _window_median(windows):
    """Median over windows of each window's p50: robust to a window in a slow step."""
    return statistics.median(statistics.median(window) for window in windows)


def _agreement(paths, formats, batch_sizes, threads, rounds, seconds):
    """The report's worker and the independent timer, timed in alternating windows.

    For every format both processes are loaded first; then, `rounds` times, for every
    format (rotating order) and batch size, the report's worker times one window and the
    independent timer one (`benchmarks.independent_timer`), with the block size the
    worker chose for that batch size (`calls_per_sample`), so that both time the same
    quantity. The worker goes first in round 1 (it fixes the block size), then the
    order alternates. The machine's speed moves in steps lasting seconds, so windows
    interleaved this finely see the same states, and what is left of a difference is
    the harness's. The report's side is summarised by the report's own code
    (`Session.finish`): its p50 is the report's figure.
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
        report_workers, independents, blocks = {}, {}, {}
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
                independents[fmt] = IndependentTimer(
                    fmt, paths[fmt], threads, *_user_modules()
                )
            for fmt in formats:
                report_workers[fmt].wait_ready()
                independents[fmt].wait_ready()
            for round_index in range(rounds):
                shift = round_index % len(formats)
                warmup = (
                    measure.DEFAULT_WARMUP_S
                    if round_index == 0
                    else worker_lib.REWARM_S
                )
                for fmt in formats[shift:] + formats[:shift]:
                    for batch in batch_sizes:
                        report_first = round_index == 0 or (
                            (round_index + batch_sizes.index(batch)) % 2 == 0
                        )
                        for side in ("report", "independent")[
                            :: 1 if report_first else -1
                        ]:
                            if side == "report":
                                record = report_workers[fmt].time(
                                    batch, window, 1, 3 * window, warmup
                                )
                                blocks[(fmt, batch)] = record["calls_per_sample"]
                            else:
                                independents[fmt].time(
                                    batch, blocks[(fmt, batch)], window, warmup
                                )
                print(f"  round {round_index + 1}/{rounds} done", flush=True)
            rows = {}
            for fmt in formats:
                result = report_workers[fmt].finish()
                for batch in batch_sizes:
                    stats = result["latency"][str(batch)]
                    timed = independents[fmt].samples[batch]
                    rows[(fmt, batch)] = {
                        "report": stats["p50_ms"],
                        "report_mean": stats["mean_ms"],
                        "report_calls": stats["iterations"],
                        "report_calls_per_sample": stats.get("calls_per_sample", 1),
                        "independent": _pooled_p50(timed),
                        "independent_window_median": _window_median(timed),
                        "independent_mean": statistics.mean(
                            t for window in timed for t in window
                        ),
                        "independent_calls_per_sample": blocks[(fmt, batch)],
                        "independent_windows": len(timed),
                    }
            return rows
        finally:
            for handle in list(report_workers.values()) + list(independents.values()):
                handle.close()


def _release_check(release_dir, rounds, seconds):
    """The released file's recorded p50 against an independent timing of that file.

    Reads `release.json` in `release_dir` (`independent_timer.release_settings`): per
    batch size the recorded p50, calls per sample and thread count, and the report's
    warm-up. The file is then timed, in a separate process that imports nothing from
    `export/`, exactly so: same batch, threads, block size and warm-up, in `rounds`
    short windows of `seconds / rounds` each, spread over the run (a pause of one
    window between rounds), so that one slow step of the machine moves one window,
    not the figure. The report's own worker times the file in alternating windows too
    (its p50 now, against the same timer: the harness's share of a difference).

    Returns:
        `(record, rows)`: one row per batch size with `recorded`, `independent` (p50
        of all block samples, pooled as the report pools its rounds),
        `independent_window_median`, `report` (the worker's p50 now), `threads` and
        `calls_per_sample`.
    """
    from export import measure
    from export import verify_release
    from export.measure import worker as worker_lib

    # Whatever is timed is the released file: a plain name inside the folder,
    # with the size and SHA-256 release.json records (ReleaseError otherwise).
    try:
        record = verify_release.verify_release(release_dir)
    except verify_release.ReleaseUsageError as error:
        raise app.UsageError(f"`--release`: {error}") from None
    fmt = record["format"]
    if fmt not in ("tflite", "onnx", "savedmodel", "keras"):
        raise app.UsageError(
            "`--release` must hold a tflite, onnx, savedmodel or keras release. "
            f"Received: format={fmt!r}"
        )
    path = record["artifact_path"]
    settings = independent_timer.release_settings(record)
    warmup_s, rewarm_s = independent_timer.release_timing(record)
    window = seconds / rounds
    thread_counts = sorted({s["threads"] for s in settings.values()})
    with tempfile.TemporaryDirectory(prefix="kdkeras-release-") as scratch:
        timers, workers = {}, {}
        try:
            for count in thread_counts:
                sizes = [b for b, s in settings.items() if s["threads"] == count]
                spec, _ = measure.build_spec(
                    path,
                    fmt,
                    sizes,
                    count,
                    scratch,
                    timing={
                        "min_time_s": seconds,
                        "min_iterations": 1,
                        "max_time_s": 3 * seconds,
                        "warmup_s": warmup_s,
                    },
                    name=f"release_{count}",
                )
                workers[count] = worker_lib.MeasurementWorker(
                    spec, os.path.join(scratch, f"release_{count}.json")
                )
                timers[count] = IndependentTimer(fmt, path, count, **_user_modules())
            for count in thread_counts:
                workers[count].wait_ready()
                timers[count].wait_ready()
            for round_index in range(rounds):
                warmup = warmup_s if round_index == 0 else rewarm_s
                for position, (batch, setting) in enumerate(settings.items()):
                    count = setting["threads"]
                    sides = [
                        (
                            timers[count].time,
                            (batch, setting["calls_per_sample"], window, warmup),
                        ),
                        (workers[count].time, (batch, window, 1, 3 * window, warmup)),
                    ]
                    if (round_index + position) % 2:
                        sides.reverse()
                    for side, arguments in sides:
                        side(*arguments)
                time.sleep(window)
                print(f"  round {round_index + 1}/{rounds} done", flush=True)
            results = {count: workers[count].finish() for count in thread_counts}
        finally:
            for handle in list(timers.values()) + list(workers.values()):
                handle.close()
    rows = {}
    for batch, setting in settings.items():
        count = setting["threads"]
        timed = timers[count].samples[batch]
        stats = results[count]["latency"][str(batch)]
        rows[batch] = {
            "recorded": setting["p50_ms"],
            "threads": count,
            "calls_per_sample": setting["calls_per_sample"],
            "independent": _pooled_p50(timed),
            "independent_window_median": _window_median(timed),
            "independent_windows": len(timed),
            "report": stats["p50_ms"],
            "report_calls_per_sample": stats.get("calls_per_sample", 1),
            "recorded_spread": setting.get("p50_spread_ms"),
        }
    return record, rows


def _print_release(record, rows, release_dir):
    """Prints the release check's table; returns whether the record holds.

    It holds when every batch size's independent p50 falls inside the spread
    of the report's per-round p50s (`p50_spread_ms` in release.json), or,
    for a release recorded without spreads, is within 10% of the recorded p50.
    """
    print()
    print(
        f"released: {record['artifact']} ({record['format']}, "
        f"{record.get('quantize', 'none')}) from {release_dir}"
    )
    print(
        "| batch | threads | calls/sample | recorded p50 ms (release.json) "
        "| independent p50 ms now (pooled) | independent median of window p50s "
        "| recorded / independent | report worker p50 ms now | worker / independent "
        "| recorded spread of round p50s ms | independent inside it |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    holds = True
    for batch, row in rows.items():
        recorded_ratio = row["recorded"] / row["independent"]
        worker_ratio = row["report"] / row["independent"]
        spread = row.get("recorded_spread")
        inside = independent_timer.inside_spread(row["independent"], spread)
        holds &= abs(recorded_ratio - 1) <= 0.10 if inside is None else inside
        shown = "not recorded" if spread is None else f"{spread[0]:.5f}–{spread[1]:.5f}"
        verdict = "n/a" if inside is None else ("yes" if inside else "NO")
        print(
            f"| {batch} | {row['threads']} | {row['calls_per_sample']} | "
            f"{row['recorded']:.5f} | {row['independent']:.5f} | "
            f"{row['independent_window_median']:.5f} | {recorded_ratio:.3f} | "
            f"{row['report']:.5f} | {worker_ratio:.3f} | {shown} | {verdict} |"
        )
    return holds


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


def _user_modules():
    """The `IndependentTimer` keywords importing `--import`'s modules (or none)."""
    if not imports.imported_modules():
        return {}
    return {
        "imports": imports.imported_modules(),
        "import_path": imports.imported_module_roots(),
    }


def main(argv):
    del argv
    try:
        modules = imports.parse_module_names(FLAGS["import"].value)
    except ValueError as error:
        sys.stderr.write(f"benchmarks.inference_latency: error: {error}\n")
        sys.exit(2)
    try:
        imports.import_modules(modules)  # Before any .keras file is loaded.
    except ValueError as error:
        sys.stderr.write(f"benchmarks.inference_latency: error: {error}\n")
        sys.exit(2)
    from export import measure

    quick = FLAGS.quick
    rounds = 2 if quick else FLAGS.rounds
    seconds = 0.6 if quick else FLAGS.seconds
    threads = FLAGS.threads or measure.available_threads()
    batch_sizes = [int(b) for b in FLAGS["batch-sizes"].value]
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
        from export.verify_release import ReleaseError

        try:
            record, rows = _release_check(FLAGS.release, rounds, seconds)
        except ReleaseError as error:
            sys.stderr.write(
                f"benchmarks.inference_latency: error: `--release` is not the "
                f"release it records: {error}\n"
            )
            return 1
        within = _print_release(record, rows, FLAGS.release)
        load_end = os.getloadavg()
        print()
        print(
            f"load average start {load_start[0]:.2f} / end {load_end[0]:.2f} "
            f"(above {measure.available_threads()} means other processes competed for the CPU)"
        )
        print(
            "independent p50 inside the recorded spread of round p50s (within 10% "
            f"of the recorded p50 where no spread is recorded): {'yes' if within else 'NO'}"
        )
        print(f"reproduce: {command}")
        if FLAGS.json:
            with open(FLAGS.json, "w") as handle:
                json.dump(
                    {
                        "command": command,
                        "release": record["artifact"],
                        "load_average": [load_start, load_end],
                        "rows": [{"batch": b, **v} for b, v in rows.items()],
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
        "report mean ms | independent mean ms | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    all_within = True
    for (fmt, b), value in agreement.items():
        ratio = value["report"] / value["independent"]
        within = abs(ratio - 1) <= 0.10
        all_within &= within
        mean_ratio = value["report_mean"] / value["independent_mean"]
        print(
            f"| {fmt} | {b} | {value['report']:.4f} | {value['independent']:.4f} | {ratio:.3f} | "
            f"{'yes' if within else 'NO'} | {value['report_mean']:.4f} | "
            f"{value['independent_mean']:.4f} | {mean_ratio:.3f} |"
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
