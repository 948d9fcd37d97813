"""Why an int8 TFLite variant lost accuracy: per-layer quantisation error, and a fix.

`layer_quantization_errors` runs LiteRT's quantisation debugger
(`tf.lite.experimental.QuantizationDebugger`) on the same calibration inputs
the int8 variant was calibrated on: every quantised op's output is compared
with its float value, and each layer gets the RMSE of that difference divided
by its quantisation scale (`rmse_over_scale`: about 0.29 for a layer whose
only error is rounding, larger when the range is poorly covered), as in the
TensorFlow guide to the debugger, and the fraction of its nonzero values that
int8 rounds to zero (`zero_collapsed`: a range stretched by a mask's -1e9 or
an outlier sends every ordinary value to the zero point, an error that looks
like rounding in units of so coarse a scale). Layers are ranked worst first:
those that collapse at least `COLLAPSE_LIMIT` of their values, then the rest
by `rmse_over_scale`. The debugger's interpreter keeps every tensor
(`CalibratedInt8._preserve_all_tensors`), so each op is compared on its own
values.

`export_selective_int8` converts again with the worst layers kept in float
(`denylisted_nodes`) and writes the result through the same verified path as
every exporter (`export.pipeline.export_artifact`, top-1 agreement with Keras
on the held-out inputs), so that it can be measured with the other variants.

Example:

```python
errors = layer_quantization_errors(model, calibration_inputs)
worst = [row["layer"] for row in errors[:2]]
export_selective_int8(model, "student_int8_selective.tflite", calibration_inputs,
                      worst, labelled_data=(x_test, y_test))
```
"""

import contextlib
import csv
import io
import math
import warnings

import numpy as np

from export import loading
from export import pipeline
from export import runtimes
from export import to_savedmodel

MAX_DEBUG_SAMPLES = 200


@contextlib.contextmanager
def debugger_warnings_silenced():
    """The debugger runs `tf.lite.Interpreter`, which warns it is deprecated."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        warnings.filterwarnings(
            "ignore", message=".*experimental_preserve_all_tensors.*debugging"
        )
        yield


def rmse_over_scale(float_values, quantized_values, scale, zero_point):
    """RMSE between float and dequantised values, in units of the scale.

    Computed in float64; an error that is not finite (NaN or inf in the float
    values, an overflow, a scale of zero or not finite) is `math.inf`: the
    layer ranks as worst, and no NumPy warning is printed.
    """
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        return math.inf
    float_values = np.asarray(float_values, np.float64)
    dequantized = (np.asarray(quantized_values, np.float64) - zero_point) * scale
    with np.errstate(all="ignore"):
        error = np.sqrt(np.mean((float_values - dequantized) ** 2)) / scale
    return _finite_or_inf(error)


def zero_collapsed(float_values, quantized_values, scale, zero_point):
    """Fraction of the tensor's nonzero float values that int8 rounds to zero.

    A range stretched by a few huge values (an attention mask's -1e9 or
    float32's lowest, an outlier) gives a scale so coarse that the ordinary
    values all land on the zero point: the information is gone although the
    error, in units of that scale, looks like rounding (`rmse_over_scale` near
    0). About 1% for a tensor whose range its values fill.
    """
    del scale  # The zero point is the level of 0.0.
    float_values = np.asarray(float_values)
    nonzero = float_values != 0
    count = int(np.count_nonzero(nonzero))
    if not count:
        return 0.0
    lost = nonzero & (np.asarray(quantized_values) == zero_point)
    return np.count_nonzero(lost) / count


def _finite_or_inf(value):
    """`value` as a float, or `math.inf` when it is NaN or infinite."""
    value = float(value)
    return value if math.isfinite(value) else math.inf


def _difference_metric(function):
    """A debugger layer metric of the float-minus-quantised differences.

    The debugger's defaults compute in float32 and average the per-sample
    values with `np.nanmean`, which warns on NaN, inf and overflow (a layer
    whose float values are not finite, or whose errors overflow float32);
    here the value is computed in float64 and is `math.inf` when not finite.
    """

    def metric(diffs):
        diffs = np.asarray(diffs, np.float64)
        if diffs.size == 0 or not np.all(np.isfinite(diffs)):
            return math.inf
        with np.errstate(all="ignore"):
            return _finite_or_inf(function(diffs))

    return metric


# The debugger's default layer metrics, by the same names, non-finite-safe.
LAYER_DEBUG_METRICS = {
    "num_elements": lambda diffs: float(np.size(diffs)),
    "stddev": _difference_metric(np.std),
    "mean_error": _difference_metric(np.mean),
    "max_abs_error": _difference_metric(lambda d: np.max(np.abs(d))),
    "mean_squared_error": _difference_metric(lambda d: np.mean(d**2)),
}


# Metrics of each op's float and quantised output values, read together.
DIRECT_COMPARE_METRICS = {
    "rmse_over_scale": rmse_over_scale,
    "zero_collapsed": zero_collapsed,
}
# A layer whose nonzero values int8 sends to zero this often (averaged over
# the samples) ranks, with the layers reading it, before every layer that
# keeps its values apart. Above the heavy tail of a LayerNormalization's
# squared differences (0.25-0.45 of them round to zero), below a mask's
# stretched range (all of them).
COLLAPSE_LIMIT = 0.5
# How many times `CalibratedInt8.ranking` measures again with the collapsed
# layers found so far in float.
MAX_COLLAPSE_ROUNDS = 4


def _calibration(inputs, limit=None):
    """Calibration inputs: float32 rows, or a dict of them (integer inputs kept)."""
    if isinstance(inputs, dict):
        return {name: np.ascontiguousarray(a[:limit]) for name, a in inputs.items()}
    return np.ascontiguousarray(inputs[:limit], np.float32)


def _count(inputs):
    """How many examples `_calibration`'s inputs hold."""
    return len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs)


class _Samples:
    """A representative dataset of one-example batches; `limit` caps the samples.

    Several inputs are yielded as one dict per example, by signature input
    name (what the converter reads), or, once `order` is set, as a list in
    that order (what LiteRT's `QuantizationDebugger` reads: it pairs the list
    with its interpreter's inputs by position).
    """

    def __init__(self, inputs, order=None):
        self.inputs = inputs
        self.limit = _count(inputs)
        self.order = order

    def __call__(self):
        for i in range(min(self.limit, _count(self.inputs))):
            if not isinstance(self.inputs, dict):
                yield [self.inputs[i : i + 1]]
                continue
            sample = {name: a[i : i + 1] for name, a in self.inputs.items()}
            yield sample if self.order is None else [sample[n] for n in self.order]


def _interpreter_input_order(flatbuffer):
    """The signature input names of a `.tflite` model, in its interpreter's order."""
    import tensorflow as tf

    with debugger_warnings_silenced():
        interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    runner = interpreter.get_signature_runner(
        loading.signature_key(interpreter.get_signature_list())
    )
    name_of = {d["index"]: name for name, d in runner.get_input_details().items()}
    return [name_of[d["index"]] for d in interpreter.get_input_details()]


class CalibratedInt8:
    """One int8 calibration of a model, quantised again with any layers in float.

    The model is calibrated once on `inputs` (as `export.to_tflite` does, from
    its scratch SavedModel) by LiteRT's `QuantizationDebugger`; `layer_errors`
    measures every quantised op against its float value, and `quantize` returns
    the int8 flatbuffer with the given layers kept in float (`denylisted_nodes`),
    re-quantising the calibrated model without calibrating again.

    Args:
        model: The Keras model.
        inputs: float32 calibration inputs (all of them calibrate).
    """

    def __init__(self, model, inputs):
        import tensorflow as tf

        self.inputs = _calibration(inputs)
        self.dataset = _Samples(self.inputs)
        # The debugger's own copy: several inputs as a list in its order.
        self.debug_dataset = _Samples(self.inputs)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            to_savedmodel.scratch_savedmodel(model), signature_keys=["serving_default"]
        )
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = self.dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        with debugger_warnings_silenced():
            self.debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=self.debug_dataset,
                debug_options=self._options(()),
            )
        self._float_layers, self._measurable = (), True
        if isinstance(self.inputs, dict):
            self.debug_dataset.order = _interpreter_input_order(
                self.debugger.quant_model
            )

    @staticmethod
    def _options(float_layers):
        import tensorflow as tf

        return tf.lite.experimental.QuantizationDebugOptions(
            layer_debug_metrics=LAYER_DEBUG_METRICS,
            layer_direct_compare_metrics=DIRECT_COMPARE_METRICS,
            denylisted_nodes=list(float_layers),
        )

    def _use(self, float_layers):
        """Re-quantises the calibrated model with `float_layers` in float.

        Returns:
            Whether some op is still quantised (and so has errors to measure).
        """
        float_layers = tuple(float_layers)
        if float_layers == self._float_layers:
            return self._measurable
        options = self._options(float_layers)
        with debugger_warnings_silenced():
            try:
                self.debugger.options = options
                self._measurable = True
            except ValueError:
                # With every quantised op in float, the debug model has nothing
                # to verify and the setter refuses to rebuild its statistics,
                # after having taken the options (all the quantisation needs).
                if self.debugger.options is not options:
                    raise
                self._measurable = False
        self._float_layers = float_layers
        return self._measurable

    def layer_errors(self, samples=MAX_DEBUG_SAMPLES, float_layers=()):
        """Per-layer errors on the first `samples` inputs, worst first.

        Args:
            samples: How many of the calibration inputs to run.
            float_layers: Layers (tensor names) kept in float meanwhile: the
                others are measured with these computed in float.

        Returns:
            The rows of `layer_quantization_errors` (none when every layer is
            in float).
        """
        if not self._use(float_layers):
            return []
        self.debug_dataset.limit = samples
        self._preserve_all_tensors()
        try:
            # Every metric is computed non-finite-safe (`LAYER_DEBUG_METRICS`,
            # `DIRECT_COMPARE_METRICS`): nothing left for NumPy to warn about.
            with debugger_warnings_silenced(), np.errstate(all="ignore"):
                self.debugger.run()
        finally:
            self.debug_dataset.limit = _count(self.inputs)
        dump = io.StringIO()
        self.debugger.layer_statistics_dump(dump)
        return _rows(dump.getvalue())

    def ranking(self, samples=MAX_DEBUG_SAMPLES, max_rounds=MAX_COLLAPSE_ROUNDS):
        """Every quantised layer, the one to keep in float first.

        A collapsed layer hides the next: the op reading a collapsed tensor is
        compared with a float value computed from the collapsed input, so its
        own collapse (e.g. the select after an attention mask's multiply, on
        the same stretched range) shows only once its input is in float. The
        layers that collapse (`COLLAPSE_LIMIT`) are therefore measured again
        with those found so far in float, until no new one collapses (at most
        `max_rounds` times); then come the quantised layers reading them
        (`_collapsed_readers`), then the others, by `rmse_over_scale`.

        Returns:
            `(names, rows)`: tensor names, worst first, and the rows of the
            first measurement (every layer quantised).
        """
        rows = self.layer_errors(samples)
        readers = _readers(self.debugger)
        found = []
        measured = rows
        for _ in range(max_rounds + 1):
            new = [
                row["layer"]
                for row in measured
                if row["zero_collapsed"] >= COLLAPSE_LIMIT and row["layer"] not in found
            ]
            if not new:
                break
            found += new
            measured = self.layer_errors(samples, float_layers=found)
        found += _collapsed_readers(found, readers, rows)
        names = list(dict.fromkeys(found + [row["layer"] for row in rows]))
        return names, rows

    def _preserve_all_tensors(self):
        """Gives the debugger an interpreter that keeps every tensor's value.

        The float reference of each op (`rmse_over_scale`) and the
        NumericVerify differences are intermediate tensors, read after the
        whole model ran. LiteRT's debugger builds its interpreter with
        `experimental_preserve_all_tensors` only when it is given a model file,
        not a converter (`_init_from_converter`, also on every `options`
        change): the arena then reuses those tensors' memory, and the values
        read are another op's (garbage, up to 1e44, and inf). The same model,
        interpreted with every tensor preserved and the builtin kernels only
        (a delegate such as XNNPACK would leave the tensors inside its
        partitions unwritten), gives each op's own values.
        """
        import tensorflow as tf

        with debugger_warnings_silenced():
            self.debugger._quant_interpreter = tf.lite.Interpreter(
                model_content=self.debugger.quant_model,
                experimental_op_resolver_type=(
                    tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                ),
                experimental_preserve_all_tensors=True,
            )

    def quantize(self, float_layers=()):
        """The int8 `.tflite` bytes with `float_layers` (tensor names) in float."""
        self._use(float_layers)
        with debugger_warnings_silenced():
            return self.debugger.get_nondebug_quantized_model()


def _collapsed_readers(collapsed, readers, rows):
    """The quantised layers that read a collapsed tensor, in the order found.

    A quantised op reading a collapsed tensor requantises it on the same
    stretched range (its input collapses, though its output may look sound:
    the softmax after a masked select). A reader whose own output keeps that
    range (a scale at least half its input's) passes it on to its readers.
    """
    scale = {row["layer"]: row["scale"] for row in rows}
    found, frontier = [], list(collapsed)
    while frontier:
        name = frontier.pop(0)
        for reader in readers.get(name, ()):
            if reader not in scale or reader in collapsed or reader in found:
                continue
            found.append(reader)
            if scale[reader] >= 0.5 * scale.get(name, math.inf):
                frontier.append(reader)
    return found


def _readers(debugger):
    """`{layer: the layers whose quantised ops read its output}`, by tensor name.

    Read from the debug model, where each quantised op's output is compared by
    a NumericVerify op (which names the layer) with its float counterpart's;
    the float side (Dequantize and what reads it) is not a reader, and a
    Quantize op (a change of scale) is looked through.
    """
    interpreter = debugger._quant_interpreter
    ops = [op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]
    layer_of = {}
    for op in ops:
        if op["op_name"] == "NumericVerify":
            output = interpreter._get_tensor_details(op["outputs"][0], subgraph_index=0)
            layer_of[op["inputs"][0]] = debugger._get_operand_name_and_index(
                output["name"]
            )[0]
    read_by = {}
    for op in ops:
        if op["op_name"] in ("NumericVerify", "DEQUANTIZE"):
            continue
        for index in op["inputs"]:
            read_by.setdefault(index, []).append(op)

    def readers(index, seen):
        for op in read_by.get(index, ()):
            for output in op["outputs"]:
                if output in seen:
                    continue
                seen.add(output)
                if op["op_name"] == "QUANTIZE":
                    yield from readers(output, seen)
                elif output in layer_of:
                    yield layer_of[output]

    return {layer: list(readers(index, set())) for index, layer in layer_of.items()}


def layer_quantization_errors(model, inputs):
    """Per-layer quantisation error of `model`'s int8 conversion, worst first.

    Args:
        model: The Keras model.
        inputs: float32 calibration inputs (at most `MAX_DEBUG_SAMPLES` are used).

    Returns:
        A list of `{"layer": output tensor name, "op", "rmse_over_scale",
        "max_abs_error", "mean_squared_error", "zero_collapsed", "scale"}`,
        worst first: layers collapsing at least `COLLAPSE_LIMIT` of their
        values (most first), then by `rmse_over_scale`, largest first.
    """
    return CalibratedInt8(model, _calibration(inputs, MAX_DEBUG_SAMPLES)).layer_errors()


def _rows(dump):
    """The debugger's CSV layer statistics as dicts, worst `rmse_over_scale` first.

    A statistic that is missing, NaN or infinite reads as `math.inf`: a layer
    whose error could not be measured as a finite number ranks as worst (the
    first a float fallback keeps in float).
    """
    rows = []
    for record in csv.DictReader(io.StringIO(dump)):
        rows.append(
            {
                "layer": record["tensor_name"],
                "op": record["op_name"],
                "rmse_over_scale": _statistic(record, "rmse_over_scale"),
                "zero_collapsed": _statistic(record, "zero_collapsed"),
                "max_abs_error": _statistic(record, "max_abs_error"),
                "mean_squared_error": _statistic(record, "mean_squared_error"),
                "scale": float(record.get("scale") or math.nan),
            }
        )
    rows.sort(key=_worst_first)
    return rows


def _worst_first(row):
    """Sort key: collapsed layers (most first), then by `rmse_over_scale`."""
    collapsed = row["zero_collapsed"]
    if collapsed >= COLLAPSE_LIMIT:
        return (0, -collapsed, -row["rmse_over_scale"])
    return (1, 0.0, -row["rmse_over_scale"])


def _statistic(record, name):
    """A statistic of the debugger's CSV row as a float; `math.inf` if not finite."""
    try:
        return _finite_or_inf(record.get(name) or math.nan)
    except ValueError:
        return math.inf


def export_selective_int8(
    model, output_path, inputs, float_layers, labelled_data=None, overwrite=True
):
    """Exports int8 TFLite with `float_layers` kept in float, verified like the others.

    Args:
        model: The Keras model.
        output_path: Destination `.tflite`.
        inputs: float32 calibration inputs (the int8 variant's).
        float_layers: Tensor names (from `layer_quantization_errors`) left in float.
        labelled_data: Optional `(x, y)` held-out data: accuracy and the real inputs of
            the top-1 agreement check.
        overwrite: Replace an existing `output_path`.

    Returns:
        An `export.pipeline.ExportResult`.
    """
    pipeline.check_destination(output_path, overwrite)
    calibrated = CalibratedInt8(model, inputs)
    flatbuffer = calibrated.quantize(float_layers)

    def write(path):
        with open(path, "wb") as handle:
            handle.write(flatbuffer)
        runtime = runtimes.TFLiteRuntime(path)
        return {
            "input_dtype": runtime.input_dtype,
            "output_dtype": runtime.output_dtype,
        }

    return pipeline.export_artifact(
        model,
        output_path,
        "tflite",
        write,
        quantize="int8",
        options={
            "quantize": "int8",
            "selective": True,
            "float_layers": list(float_layers),
            "calibration_samples": int(_count(calibrated.inputs)),
            "tool": "tf.lite.experimental.QuantizationDebugger (denylisted_nodes)",
        },
        overwrite=overwrite,
        labelled_data=labelled_data,
    )
