"""Full-integer int8 with the fewest layers kept in float (`--float-fallback=auto`).

When a model's full int8 conversion fails its agreement check, LiteRT can keep
chosen ops in float (`denylisted_nodes`) and quantise the rest. Which ones? The
per-layer quantisation errors of `export.report.layer_errors` (LiteRT's
`QuantizationDebugger`: each quantised op's output against its float value)
rank the layers, worst first (`CalibratedInt8.ranking`: the layers whose range
is so stretched that int8 sends their values to zero, e.g. an attention mask's,
with the layers reading them; then the rest by RMSE in units of the scale);
the search keeps
the shortest prefix of that ranking in float that passes the same checks as
any int8 export (`export.verify.verify_artifact`: top-1 agreement with Keras on
held-out inputs, relative error, accuracy drop with labelled data).

The search (`smallest_passing_prefix`) gallops, then bisects, over the prefix
length: it tries 1, 2, 4, ... layers until one passes, then halves the interval
between the last failing and the first passing length. It assumes that keeping
more of the worst layers in float never hurts (monotone), and needs about
`2 log2(k)` conversions for `k` layers instead of `k` for a greedy one-by-one
search. The ranking is a heuristic (an op's error is measured on its own
quantised inputs, so the damage of a badly quantised tensor can show in the op
that reads it, and the model's output is measured as a copy of its producer),
so the prefix found is then shrunk (`fewest_needed`, delta debugging): chunks
of its layers, least error first, go back to int8 while the model still
passes, halves first, then quarters, down to single layers; a prefix that
needed one low-ranked layer thus shrinks to the few layers that matter in
about `2 n log2(k)` conversions for `n` of them, at most `MAX_PRUNE_TRIES`.
When single layers have all been tried, no layer of the result can be
quantised again alone without failing. The model is calibrated once; each try
re-quantises the calibrated model (`layer_errors.CalibratedInt8.quantize`).

The result records what the fallback costs against the full int8 model: its
size and its batch-1 median latency under the LiteRT interpreter, both models
timed interleaved in one process (figures from a loaded machine move together).
"""

import os
import tempfile
import time

import numpy as np

from export import pipeline
from export import runtimes
from export import verify

FLOAT_FALLBACKS = ("none", "auto")
SEARCH = (
    "galloping then bisection over the prefix length of the layers sorted by "
    "quantisation error (collapsed ranges and their readers first, then "
    "rmse_over_scale, worst first), then chunks of the kept layers (halves "
    "down to single layers, least error first) back to int8 while the model "
    "still passes"
)
LATENCY_RUNS = 30
MAX_PRUNE_TRIES = 64


def check_float_fallback(float_fallback, quantize, int8_io=False):
    """Validates `float_fallback` against the quantisation mode; returns it."""
    if float_fallback not in FLOAT_FALLBACKS:
        shown = repr(float_fallback)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise ValueError(
            f"`--float-fallback` must be one of {'|'.join(FLOAT_FALLBACKS)}. "
            f"Received: --float-fallback={shown}"
        )
    if float_fallback == "auto" and quantize != "int8":
        raise ValueError(
            "`--float-fallback=auto` must come with --quantize=int8. "
            f"Received: --quantize={quantize}"
        )
    if float_fallback == "auto" and int8_io:
        raise ValueError(
            "`--float-fallback=auto` must come with float input and output "
            "(layers kept in float need float tensors around them). "
            "Received: --int8-io"
        )
    return float_fallback


def smallest_passing_prefix(count, passes):
    """The smallest `k` in `1..count` with `passes(k)`: galloping, then bisection.

    Args:
        count: Number of candidate layers.
        passes: `k -> bool`, assumed monotone (False then True as `k` grows).

    Returns:
        `(k, tried)`: `k` (None if `passes(count)` is False) and the dict
        `{k: passed}` of every length tried, in the order tried.

    Example:

    >>> smallest_passing_prefix(100, lambda k: k >= 13)
    (13, {1: False, 2: False, 4: False, 8: False, 16: True, 12: False, 14: True, 13: True})
    """
    tried = {}

    def check(k):
        if k not in tried:
            tried[k] = bool(passes(k))
        return tried[k]

    if count < 1:
        return None, tried
    failing, passing = 0, 1
    while not check(passing):
        if passing == count:
            return None, tried
        failing, passing = passing, min(2 * passing, count)
    while passing - failing > 1:
        middle = (failing + passing) // 2
        if check(middle):
            passing = middle
        else:
            failing = middle
    return passing, tried


def fewest_needed(chosen, passes, max_tries=MAX_PRUNE_TRIES):
    """Shrinks a passing set of float layers by delta debugging.

    Args:
        chosen: Layer names kept in float (worst first) with which the model
            passes.
        passes: `names -> bool`: whether the model passes with `names` in
            float.
        max_tries: Most calls of `passes`.

    Returns:
        A sublist of `chosen` with which the model passes: chunks of it, least
        error (last) first, went back to int8 while it still passed, in halves,
        then quarters, down to single layers. When single layers were all
        tried (`max_tries` allowing), none can go back alone.

    Example:

    >>> fewest_needed(list("abcdefgh"), lambda names: {"b", "g"} <= set(names))
    ['b', 'g']
    """
    chosen, parts, tries = list(chosen), 2, 0
    while len(chosen) > 1 and tries < max_tries:
        size = -(-len(chosen) // parts)
        chunks = [chosen[i : i + size] for i in range(0, len(chosen), size)]
        for chunk in reversed(chunks):
            rest = [name for name in chosen if name not in chunk]
            if not rest or tries >= max_tries:
                continue
            tries += 1
            if passes(rest):
                chosen, parts = rest, max(parts - 1, 2)
                break
        else:
            if size == 1:
                break
            parts = min(len(chosen), 2 * parts)
    return chosen


def median_latency_ms(paths, example, runs=LATENCY_RUNS):
    """Batch-1 median latency (ms) of `.tflite` files, timed interleaved.

    Args:
        paths: `.tflite` files.
        example: One input example (batch of 1): an array, or a dict of
            arrays by input name.
        runs: Timed runs per file (after one warm-up run each).

    Returns:
        A list of medians, in the order of `paths`.
    """
    models = [runtimes.TFLiteRuntime(os.fspath(path)) for path in paths]
    for model in models:
        model.predict(example)
    times = [[] for _ in models]
    for _ in range(runs):
        for model, samples in zip(models, times, strict=True):
            start = time.perf_counter()
            model.predict(example)
            samples.append(time.perf_counter() - start)
    return [float(np.median(samples)) * 1e3 for samples in times]


def search(
    model,
    calibration_inputs,
    labelled=None,
    seed=0,
    min_agreement=None,
    accept=None,
):
    """Finds the fewest layers to keep in float for int8 to pass its checks.

    Args:
        model: The Keras model.
        calibration_inputs: float32 representative inputs (all calibrate).
        labelled: Optional validated `(x, y)`: accuracy, and the held-out inputs
            of the agreement check.
        seed: Seed of the random parity inputs.
        min_agreement: Override of the int8 top-1 agreement threshold.
        accept: Optional `report -> bool`, a further condition on the passing
            verification report (e.g. a budget's accuracy limits).

    Returns:
        `(flatbuffer, record)`: the `.tflite` bytes and a JSON-serialisable
        record for the sidecar (`float_layers`, `quantised_layers`, `search`,
        `tries`, `full_int8` and fallback `size_bytes` / `latency_ms_p50`,
        `size_cost_bytes`, `latency_ratio`). With nothing to keep in float
        (full int8 passes), `float_layers` is empty.

    Raises:
        export.verify.ParityError: int8 fails even with every quantised layer
            in float.
    """
    from export.report import layer_errors

    threshold = (
        verify.MIN_TOP1_AGREEMENT["int8"] if min_agreement is None else min_agreement
    )
    calibrated = layer_errors.CalibratedInt8(model, calibration_inputs)
    ranking, _ = calibrated.ranking()
    tries, files = [], {}
    with tempfile.TemporaryDirectory(prefix="kdkeras-fallback-") as scratch:

        def attempt(float_layers, step):
            """Converts and checks with `float_layers` in float; records the try."""
            path = os.path.join(scratch, f"try_{len(tries)}.tflite")
            with open(path, "wb") as handle:
                handle.write(calibrated.quantize(float_layers))
            entry = {"step": step, "float_layers": len(float_layers), "passed": False}
            try:
                report = verify.verify_artifact(
                    model,
                    path,
                    "tflite",
                    quantize="int8",
                    labelled=labelled,
                    seed=seed,
                    min_agreement=0.0,  # Judged below, with the figure recorded.
                    calibration_inputs=calibration_inputs,
                )
            except verify.ParityError as error:
                entry["reason"] = str(error).splitlines()[0]
            else:
                entry["top1_agreement"] = report["top1_agreement"]
                if report["top1_agreement"] < threshold:
                    entry["reason"] = (
                        f"top-1 agreement {report['top1_agreement']:.4f} < {threshold}"
                    )
                elif accept is not None and not accept(report):
                    entry["reason"] = "verified, but outside the caller's limits"
                else:
                    entry["passed"] = True
            tries.append(entry)
            files[tuple(float_layers)] = path
            return entry["passed"]

        chosen = []
        if not attempt([], "full int8"):
            length, _ = smallest_passing_prefix(
                len(ranking), lambda k: attempt(ranking[:k], "prefix")
            )
            if length is None:
                raise verify.ParityError(
                    f"tflite quantize=int8 fails even with all {len(ranking)} "
                    f"quantised layers kept in float: {tries[-1].get('reason')}"
                )
            chosen = fewest_needed(
                ranking[:length], lambda names: attempt(names, "prune")
            )
        with open(files[tuple(chosen)], "rb") as handle:
            flatbuffer = handle.read()
        example = (
            {name: a[:1] for name, a in calibration_inputs.items()}
            if isinstance(calibration_inputs, dict)
            else np.ascontiguousarray(calibration_inputs[:1], np.float32)
        )
        full_ms, fallback_ms = median_latency_ms(
            [files[()], files[tuple(chosen)]], example
        )
        full_size = os.path.getsize(files[()])
    record = {
        "mode": "auto",
        "search": SEARCH,
        "float_layers": chosen,
        "quantised_layers": len(ranking),
        "tries": tries,
        "full_int8": {
            "passed": tries[0]["passed"],
            "reason": tries[0].get("reason"),
            "top1_agreement": tries[0].get("top1_agreement"),
            "size_bytes": full_size,
            "latency_ms_p50": full_ms,
        },
        "size_bytes": len(flatbuffer),
        "latency_ms_p50": fallback_ms,
        "size_cost_bytes": len(flatbuffer) - full_size,
        "latency_ratio": fallback_ms / full_ms if full_ms > 0 else None,
        "latency_setting": (
            f"batch 1, LiteRT interpreter (default delegate), median of "
            f"{LATENCY_RUNS} runs, full int8 and fallback interleaved"
        ),
    }
    return flatbuffer, record


def describe(record):
    """One line: the layers kept in float and what they cost."""
    count = len(record["float_layers"])
    if not count:
        return "float fallback: none needed (full int8 passes)"
    full = record["full_int8"]
    ratio = record["latency_ratio"]
    return (
        f"float fallback: {count} of {record['quantised_layers']} quantised layers "
        f"kept in float ({record['size_cost_bytes'] / 1024:+.1f} KiB, batch-1 "
        f"latency x{ratio:.2f} vs full int8"
        + (
            f", whose top-1 agreement was {full['top1_agreement']:.4f}"
            if full.get("top1_agreement") is not None
            else ""
        )
        + ")"
    )


def export_with_fallback(
    model,
    output_path,
    calibration_inputs,
    options=None,
    overwrite=False,
    labelled_data=None,
    seed=0,
    min_agreement=None,
    source=None,
    calibration_inputs_for_check=None,
    accept=None,
):
    """Exports int8 TFLite with the fewest layers in float (`search`), verified.

    The artifact goes through `export.pipeline.export_artifact` like every
    export (staged, verified, sidecar); its tensor types are checked as int8
    with at most the kept layers in float.

    Args:
        model: The Keras model.
        output_path: Destination `.tflite`.
        calibration_inputs: float32 representative inputs.
        options: Sidecar options; `float_fallback` is set to the search record.
        overwrite: Replace an existing `output_path`.
        labelled_data: Optional `.npz` path or `(x, y)`: accuracy and the
            held-out inputs of the agreement check.
        seed: Seed of the random parity inputs.
        min_agreement: Override of the int8 top-1 agreement threshold.
        source: Description of the model for the sidecar.
        calibration_inputs_for_check: The representative data whose scale the
            held-out inputs follow when no labelled data is given (default
            `calibration_inputs`).
        accept: Optional further condition on a passing report (see `search`).

    Returns:
        An `export.pipeline.ExportResult` whose summary names the layers kept
        in float and their cost.

    Raises:
        export.verify.ParityError: int8 fails even with every layer in float.
    """
    from export import to_tflite

    pipeline.check_destination(output_path, overwrite)
    labelled = None
    if labelled_data is not None:
        labelled = pipeline.load_labelled_data(labelled_data, model)
    check_inputs = (
        calibration_inputs
        if calibration_inputs_for_check is None
        else calibration_inputs_for_check
    )
    flatbuffer, record = search(
        model,
        calibration_inputs,
        labelled=labelled,
        seed=seed,
        min_agreement=min_agreement,
        accept=accept,
    )

    def write(path):
        with open(path, "wb") as handle:
            handle.write(flatbuffer)
        types = to_tflite.check_tensor_types(path, "int8", float_allowed=True)
        runtime = runtimes.TFLiteRuntime(path)
        return {
            "input_dtype": runtime.input_dtype,
            "output_dtype": runtime.output_dtype,
            "tensor_types": types,
            "tool": "tf.lite.experimental.QuantizationDebugger (denylisted_nodes)",
        }

    options = dict(options or {}, quantize="int8", float_fallback=record)
    result = pipeline.export_artifact(
        model,
        output_path,
        "tflite",
        write,
        quantize="int8",
        options=options,
        overwrite=overwrite,
        labelled_data=labelled,
        seed=seed,
        min_agreement=min_agreement,
        source=source,
        calibration_inputs=check_inputs,
    )
    result.summary += "; " + describe(record)
    return result
