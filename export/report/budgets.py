"""Release budgets: limits on latency, size, memory and accuracy, checked against a report.

A budget is a YAML or JSON mapping; every key is optional, unknown keys are an error (a
typo must not silently disable a gate):

```yaml
max_p99_ms: {1: 0.5, 64: 4.0}   # per batch size; a single number applies to every batch size
max_p50_ms: 2.0
max_size_mb: 6.0                # artifact bytes on disk / 1e6 (a directory: all its files)
max_gzip_size_mb: 5.0
max_memory_mb: 400              # peak resident memory of the process that ran it
min_accuracy: 0.85              # test-set accuracy, 0..1
max_accuracy_drop: 0.02         # teacher accuracy - student accuracy (same format), 0..1
minimise: p99_ms_batch_1        # objective choosing the release among the variants that
                                # meet every limit (see `OBJECTIVES`; optional)
model: student                  # which model is gated: student (default), teacher or both
formats: [tflite, onnx]         # which formats are gated (default: every measured format)
```

Example:
    >>> budget = parse_budget({"max_size_mb": 1.0})
    >>> result = {"model": "student", "format": "onnx", "size_bytes": 3_000_000,
    ...           "gzip_bytes": 2_500_000, "latency": {}, "peak_rss_bytes": 1,
    ...           "accuracy": None}
    >>> [v["metric"] for v in check_budget(budget, [result])]  # 3.0 MB > 1.0 MB
    ['size_mb']
"""

import json
import math
import os
import re

from kdutils.echo import bounded

LIMIT_KEYS = (
    "max_p99_ms",
    "max_p50_ms",
    "max_size_mb",
    "max_gzip_size_mb",
    "max_memory_mb",
    "min_accuracy",
    "max_accuracy_drop",
)
SCOPE_KEYS = ("model", "formats", "minimise")
# What `minimise` may name: `p50_ms_batch_N` / `p99_ms_batch_N` for a measured batch
# size N, or one of these (sizes in MB = 1e6 bytes; accuracy is minimised as its loss).
OBJECTIVES = ("size_mb", "gzip_size_mb", "memory_mb", "accuracy_loss")
OBJECTIVE_PATTERN = r"(p50|p90|p95|p99)_ms_batch_([1-9][0-9]*)"
PER_BATCH_KEYS = ("max_p99_ms", "max_p50_ms")
MODELS = ("student", "teacher", "both")
# A budget is a dozen lines: a larger file is refused before it is read, and YAML
# anchors and aliases (which let a few hundred bytes expand to gigabytes) before
# any node is built.
MAX_BUDGET_BYTES = 64 * 1024
# Accuracies are ratios of counts: 0.92 - 0.90 must not exceed a 0.02 limit by rounding.
_TOLERANCE = 1e-9


class BudgetError(ValueError):
    """A budget file that cannot be read or does not follow the schema."""


def _number(value, key, low=0.0, high=None):
    # bool is an int in Python and YAML reads `yes`/`on` as True: refused. NaN compares
    # False with everything, so a NaN limit would pass every model: refused, as are
    # the infinities (`.inf`, JSON `Infinity` or `1e999`), which gate nothing.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BudgetError(
            f"`{key}` must be a number. Received: {key}={bounded(value, quote=True)}"
        )
    if not math.isfinite(value):
        raise BudgetError(
            f"`{key}` must be a finite number. Received: {key}={bounded(value)}"
        )
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise BudgetError(f"`{key}` must be {bounds}. Received: {key}={bounded(value)}")
    return float(value)


def parse_budget(content, source="budget"):
    """Validates a budget mapping; returns it normalised.

    Args:
        content: The parsed YAML/JSON object.
        source: Name used in error messages.

    Returns:
        A dict with the limits given; per-batch limits become `{batch_size: ms}` dicts
        (`"*"` for every batch size); `model` defaults to `"student"`, `formats` to None.

    Raises:
        BudgetError: one line naming the key and what was expected.
    """
    if not isinstance(content, dict):
        raise BudgetError(
            f"`{source}` must be a mapping of limits (e.g. max_p99_ms: 5). "
            f"Received: a {type(content).__name__}"
        )
    unknown = sorted(
        bounded(k, limit=40) for k in content if k not in LIMIT_KEYS + SCOPE_KEYS
    )
    if unknown:
        raise BudgetError(
            f"`{source}` keys must be among {', '.join(LIMIT_KEYS + SCOPE_KEYS)}. "
            f"Received: unknown key(s) {bounded(', '.join(unknown))}"
        )
    budget = {"model": "student", "formats": None}
    for key, value in content.items():
        if key in PER_BATCH_KEYS:
            if isinstance(value, dict):
                if not value:  # An empty mapping would gate nothing.
                    raise BudgetError(
                        f"`{key}` must be a number or a non-empty mapping of batch "
                        f"sizes to numbers. Received: {key}={bounded(value)}"
                    )
                limits = {}
                for batch, limit in value.items():
                    try:
                        batch_size = int(batch)
                    except (TypeError, ValueError):
                        batch_size = 0
                    if batch_size < 1 or str(batch_size) != str(batch).strip():
                        raise BudgetError(
                            f"`{key}` keys must be positive batch sizes. "
                            f"Received: {bounded(batch, quote=True)}"
                        )
                    limits[batch_size] = _number(limit, f"{key}[{batch_size}]")
                budget[key] = limits
            else:
                budget[key] = {"*": _number(value, key)}
        elif key in ("min_accuracy", "max_accuracy_drop"):
            budget[key] = _number(value, key, 0.0, 1.0)
        elif key in LIMIT_KEYS:
            budget[key] = _number(value, key)
        elif key == "minimise":
            budget[key] = parse_objective(value)
        elif key == "model":
            if value not in MODELS:
                raise BudgetError(
                    f"`model` must be one of {', '.join(MODELS)}. "
                    f"Received: model={bounded(value, quote=True)}"
                )
            budget[key] = value
        elif key == "formats":
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) for v in value)
            ):
                raise BudgetError(
                    "`formats` must be a non-empty list of format names. "
                    f"Received: formats={bounded(value, quote=True)}"
                )
            budget[key] = list(value)
    if not any(key in budget for key in LIMIT_KEYS):
        raise BudgetError(
            f"`{source}` must set a limit, some of {', '.join(LIMIT_KEYS)}. "
            "Received: it sets no limit"
        )
    return budget


def parse_objective(value):
    """Validates a `minimise` objective; returns it (a string)."""
    if not isinstance(value, str) or not (
        value in OBJECTIVES or re.fullmatch(OBJECTIVE_PATTERN, value)
    ):
        raise BudgetError(
            f"`minimise` must be one of {', '.join(OBJECTIVES)} or "
            "p50_ms_batch_N / p99_ms_batch_N. "
            f"Received: minimise={bounded(value, quote=True)}"
        )
    return value


def objective_batch_size(objective):
    """The batch size a latency objective names, else None."""
    match = re.fullmatch(OBJECTIVE_PATTERN, objective or "")
    return int(match.group(2)) if match else None


def objective_value(objective, entry, reference_accuracy=None):
    """The value of `objective` for a report entry (None when not measured).

    Args:
        objective: From `parse_objective`.
        entry: A report result entry.
        reference_accuracy: The teacher's accuracy, for `accuracy_loss` (else 1.0).
    """
    match = re.fullmatch(OBJECTIVE_PATTERN, objective)
    if match:
        stats = (entry.get("latency") or {}).get(match.group(2))
        value = stats.get(f"{match.group(1)}_ms") if stats else None
    elif objective == "accuracy_loss":
        accuracy = entry.get("accuracy")
        reference = 1.0 if reference_accuracy is None else reference_accuracy
        value = None if accuracy is None else reference - accuracy
    else:
        field = {
            "size_mb": "size_bytes",
            "gzip_size_mb": "gzip_bytes",
            "memory_mb": "peak_rss_bytes",
        }[objective]
        value = None if entry.get(field) is None else _mb(entry[field])
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _mapping_without_repeats(pairs):
    """A dict of `pairs`; a key given twice (the last would silently win) is refused."""
    mapping = {}
    for key, value in pairs:
        if key in mapping:
            raise BudgetError(
                "`--budget` must give each key once. "
                f"Received: {bounded(key, quote=True)} twice"
            )
        mapping[key] = value
    return mapping


def _load_yaml_without_repeats(text):
    """`yaml.safe_load`, refusing a mapping that repeats a key."""
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise BudgetError(
                    "`--budget` must not use YAML anchors or aliases (&name, "
                    f"*name). Received: one at line {event.start_mark.line + 1}"
                )
            return super().compose_node(parent, index)

    def construct_mapping(loader, node, deep=False):
        loader.flatten_mapping(node)
        pairs = [
            (
                loader.construct_object(key, deep=deep),
                loader.construct_object(value, deep=deep),
            )
            for key, value in node.value
        ]
        return _mapping_without_repeats(pairs)

    Loader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping
    )
    return yaml.load(text, Loader=Loader)  # noqa: S506  (a SafeLoader subclass)


def load_budget(path):
    """Reads and validates a `.yaml`/`.yml`/`.json` budget file (see module docstring).

    Raises:
        BudgetError: missing file, unparsable content or a schema error (one line).
    """
    shown = bounded(os.fspath(path))
    if not os.path.isfile(path):
        raise BudgetError(
            f"`--budget` must be an existing .yaml or .json file. Received: --budget={shown}"
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BUDGET_BYTES + 1)
        if len(data) > MAX_BUDGET_BYTES:
            raise BudgetError(
                f"`--budget` must be a file of at most {MAX_BUDGET_BYTES} bytes. "
                f"Received: --budget={shown} ({os.path.getsize(path)} bytes)"
            )
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BudgetError(
            f"`--budget` must be a readable UTF-8 .yaml or .json file. "
            f"Received: --budget={shown} ({bounded(str(error))})"
        ) from None
    extension = os.path.splitext(path)[1].lower()
    try:
        if extension == ".json":
            content = json.loads(text, object_pairs_hook=_mapping_without_repeats)
        elif extension in (".yaml", ".yml"):
            content = _load_yaml_without_repeats(text)
        else:
            raise BudgetError(
                f"`--budget` must end in .yaml, .yml or .json. Received: --budget={shown}"
            )
    except BudgetError:
        raise
    except Exception as error:  # yaml.YAMLError, json.JSONDecodeError
        raise BudgetError(
            f"`--budget` must be valid {extension[1:].upper()}. Received: --budget={shown}, "
            f"which is not valid {extension[1:].upper()}: {bounded(str(error), limit=200)}"
        ) from None
    return parse_budget(content, source=f"--budget={shown}")


def check_requested(budget, formats, batch_sizes, variants=()):
    """Errors (BudgetError) when the budget gates formats / batch sizes not measured.

    Args:
        budget: From `parse_budget`.
        formats: The formats measured.
        batch_sizes: The batch sizes measured.
        variants: Names of the quantised variants measured (e.g. `tflite_int8`);
            the budget's `formats` may name them too.
    """
    if budget.get("formats"):
        known = list(formats) + list(variants)
        missing = [f for f in budget["formats"] if f not in known]
        if missing:
            raise BudgetError(
                "`formats` of the budget must be measured (in --formats "
                f"{','.join(known)}). Received: formats {bounded(', '.join(missing))} "
                "are not measured"
            )
    for key in PER_BATCH_KEYS:
        for batch in budget.get(key, {}):
            if batch != "*" and batch not in batch_sizes:
                raise BudgetError(
                    f"`{key}` of the budget must name measured batch sizes (--batch-sizes "
                    f"{','.join(str(b) for b in batch_sizes)}). Received: batch size {batch}, "
                    "which is not in --batch-sizes"
                )
    batch = objective_batch_size(budget.get("minimise"))
    if batch is not None and batch not in batch_sizes:
        raise BudgetError(
            "`minimise` of the budget must name a measured batch size (--batch-sizes "
            f"{','.join(str(b) for b in batch_sizes)}). Received: "
            f"minimise={budget['minimise']}"
        )


def _mb(value):
    return value / 1e6


def check_budget(budget, results):
    """The budget's violations for a list of report results.

    Args:
        budget: From `load_budget` / `parse_budget`.
        results: Report result entries: dicts with `model`, `format`, `latency`,
            `size_bytes`, `gzip_bytes`, `peak_rss_bytes`, `accuracy` (and `error` when a
            measurement failed). The NumPy floor (`format == "numpy"`) is never gated.

    Returns:
        A list of dicts `{model, format, metric, value, limit, message}`; empty if met.
    """
    models = ("student", "teacher") if budget["model"] == "both" else (budget["model"],)
    gated_formats = budget.get("formats")
    teacher = {
        r["format"]: r
        for r in results
        if role(r) == "teacher"
        and not r.get("error")
        and r.get("quantize", "none") == "none"
    }
    violations = []

    def violate(entry, metric, value, limit, unit, text):
        violations.append(
            {
                "model": entry["model"],
                "format": entry["format"],
                "variant": entry.get("variant", entry["format"]),
                "metric": metric,
                "value": value,
                "limit": limit,
                "message": f"{entry['model']} {entry.get('variant', entry['format'])}: {text} "
                f"({_format(value)}{unit} vs limit {_format(limit)}{unit})",
            }
        )

    for entry in results:
        if role(entry) not in models or entry["format"] == "numpy":
            continue
        if gated_formats and not (
            entry["format"] in gated_formats or entry.get("variant") in gated_formats
        ):
            continue
        if entry.get("error"):
            violations.append(
                {
                    "model": entry["model"],
                    "format": entry["format"],
                    "variant": entry.get("variant", entry["format"]),
                    "metric": "measured",
                    "value": None,
                    "limit": None,
                    "message": f"{entry['model']} {entry.get('variant', entry['format'])}: "
                    f"not measured ({entry['error']})",
                }
            )
            continue
        for key in PER_BATCH_KEYS:
            percentile = key.split("_")[1]  # p99 / p50
            for batch, stats in entry["latency"].items():
                limits = budget.get(key, {})
                limit = limits.get(int(batch), limits.get("*"))
                value = stats[f"{percentile}_ms"]
                # `not value <= limit`: a NaN figure is a violation, never a pass.
                if limit is not None and not value <= limit:
                    violate(
                        entry,
                        f"{percentile}_ms@{batch}",
                        value,
                        limit,
                        " ms",
                        f"{percentile} latency at batch {batch} too high",
                    )
        for key, field, what in (
            ("max_size_mb", "size_bytes", "size"),
            ("max_gzip_size_mb", "gzip_bytes", "gzip size"),
            ("max_memory_mb", "peak_rss_bytes", "peak memory"),
        ):
            if key in budget and entry.get(field) is None:
                violate(
                    entry, key[4:], None, budget[key], " MB", f"{what} not measured"
                )
            elif key in budget:
                value = _mb(entry[field])
                if not value <= budget[key]:
                    violate(
                        entry, key[4:], value, budget[key], " MB", f"{what} too large"
                    )
        accuracy = entry.get("accuracy")
        if "min_accuracy" in budget:
            if accuracy is None:
                violate(
                    entry,
                    "accuracy",
                    None,
                    budget["min_accuracy"],
                    "",
                    "accuracy not measured",
                )
            elif not accuracy >= budget["min_accuracy"] - _TOLERANCE:
                violate(
                    entry,
                    "accuracy",
                    accuracy,
                    budget["min_accuracy"],
                    "",
                    "accuracy too low",
                )
        if "max_accuracy_drop" in budget and role(entry) == "student":
            reference = teacher.get(entry["format"]) or teacher.get("keras")
            if (
                accuracy is None
                or reference is None
                or reference.get("accuracy") is None
            ):
                violate(
                    entry,
                    "accuracy_drop",
                    None,
                    budget["max_accuracy_drop"],
                    "",
                    "accuracy drop against the teacher not measurable",
                )
            else:
                drop = reference["accuracy"] - accuracy
                if not drop <= budget["max_accuracy_drop"] + _TOLERANCE:
                    violate(
                        entry,
                        "accuracy_drop",
                        drop,
                        budget["max_accuracy_drop"],
                        "",
                        f"accuracy drop against the teacher ({reference['format']}) too large",
                    )
    return violations


def role(entry):
    """`"teacher"` or `"student"`: what a result entry is (several students may be named)."""
    return entry.get("role", entry["model"])


def _format(value):
    if value is None:
        return "n/a"
    return f"{value:.4g}"


def describe(budget):
    """Budget limits as `(name, limit)` strings for the report."""
    rows = []
    for key in LIMIT_KEYS:
        if key not in budget:
            continue
        value = budget[key]
        if isinstance(value, dict):
            value = ", ".join(
                f"{'every batch' if b == '*' else f'batch {b}'}: {v:g}"
                for b, v in value.items()
            )
        else:
            value = f"{value:g}"
        rows.append((key, value))
    if budget.get("minimise"):
        rows.append(("minimise", budget["minimise"]))
    rows.append(("model", budget["model"]))
    rows.append(
        (
            "formats",
            ", ".join(budget["formats"]) if budget.get("formats") else "all measured",
        )
    )
    return rows
