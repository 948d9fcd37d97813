"""Which variant to ship: the Pareto front, the budget's winner, the release folder.

`pareto_front` marks the points no other point beats on every objective;
`choose_release` picks, among the gated variants that meet every limit of a
budget (`export.report.budgets`), the one with the lowest `minimise`
objective, and says how far every other variant came; `write_release` copies
the winner and its sidecar into a release folder, atomically, with a
`release.json` that records only what the copied file bears out (its SHA-256
is checked against the one measured).

Example:
    >>> points = [{"a": 1.0, "b": 3.0}, {"a": 2.0, "b": 2.0}, {"a": 3.0, "b": 3.0}]
    >>> pareto_front(points, ("a", "b"))
    [True, True, False]
"""

import json
import math
import os
import shutil

from export import sidecar as sidecar_lib
from export import staging
from export.report import budgets
from kdutils.digests import file_digest
from kdutils.echo import bounded

DEFAULT_OBJECTIVE = "p99_ms_batch_1"


def dominates(first, second, keys):
    """Whether `first` is no worse than `second` on every key and better on one."""
    no_worse = all(first[k] <= second[k] for k in keys)
    return no_worse and any(first[k] < second[k] for k in keys)


def pareto_front(points, keys):
    """Which points are on the Pareto front (every key minimised).

    Args:
        points: Dicts holding a number for each key; a point with a missing or
            non-finite value is never on the front.
        keys: The objectives (minimised; pass `-accuracy` for accuracy).

    Returns:
        A list of booleans, one per point.
    """

    def usable(point):
        return all(point.get(k) is not None and math.isfinite(point[k]) for k in keys)

    valid = [usable(p) for p in points]
    return [
        valid[i]
        and not any(
            valid[j] and dominates(points[j], points[i], keys)
            for j in range(len(points))
            if j != i
        )
        for i in range(len(points))
    ]


def variant_label(entry):
    """`model variant`, e.g. `student tflite_int8`."""
    return f"{entry['model']} {entry.get('variant', entry['format'])}"


def reference_accuracy(results):
    """The teacher's accuracy (its Keras or first float runtime), else None."""
    teachers = [
        r
        for r in results
        if budgets.role(r) == "teacher"
        and not r.get("error")
        and r.get("accuracy") is not None
        and r["format"] != "numpy"
    ]
    keras = [r for r in teachers if r["format"] == "keras"]
    chosen = (keras or teachers or [None])[0]
    return None if chosen is None else chosen["accuracy"]


def choose_release(budget, results):
    """The variant to ship under `budget`, and how far every candidate came.

    Candidates are the gated entries (`budget["model"]`, `budget["formats"]`),
    the NumPy floor excepted. A candidate qualifies when it was measured and
    meets every limit (`budgets.check_budget`); the winner has the lowest
    objective (`budget["minimise"]`, default `DEFAULT_OBJECTIVE`), ties broken
    by size on disk, then by name.

    Args:
        budget: From `export.report.budgets.parse_budget`.
        results: Report result entries.

    Returns:
        A dict: `objective`, `winner` (the winning candidate's record or None),
        `candidates` (every candidate: `label`, `model`, `variant`, `value`,
        `meets`, `violations`, in ranking order: qualifying ones first).
    """
    objective = budget.get("minimise") or DEFAULT_OBJECTIVE
    models = ("student", "teacher") if budget["model"] == "both" else (budget["model"],)
    gated = budget.get("formats")
    reference = reference_accuracy(results)
    candidates = []
    for entry in results:
        if budgets.role(entry) not in models or entry["format"] == "numpy":
            continue
        if gated and not (entry["format"] in gated or entry.get("variant") in gated):
            continue
        others = [t for t in teachers_of(results) if t is not entry]
        violations = budgets.check_budget(budget, [entry] + others)
        variant = entry.get("variant", entry["format"])
        own = [
            v
            for v in violations
            if v["model"] == entry["model"] and v["variant"] == variant
        ]
        value = (
            None
            if entry.get("error")
            else budgets.objective_value(objective, entry, reference)
        )
        candidates.append(
            {
                "label": variant_label(entry),
                "model": entry["model"],
                "variant": entry.get("variant", entry["format"]),
                "format": entry["format"],
                "value": value,
                "size_bytes": entry.get("size_bytes"),
                "meets": not own and value is not None,
                "violations": [v["message"] for v in own],
            }
        )
    candidates.sort(
        key=lambda c: (
            not c["meets"],
            math.inf if c["value"] is None else c["value"],
            math.inf if c["size_bytes"] is None else c["size_bytes"],
            c["label"],
        )
    )
    winner = candidates[0] if candidates and candidates[0]["meets"] else None
    return {"objective": objective, "winner": winner, "candidates": candidates}


def teachers_of(results):
    """The teacher's float entries: the references of `max_accuracy_drop`."""
    return [
        r
        for r in results
        if budgets.role(r) == "teacher" and r.get("quantize", "none") == "none"
    ]


def check_release_dir(path, output_dir=None):
    """Refuses a `--release-dir` the release step could not fill, before any work.

    It must be a new or empty real folder (not a symbolic link, which the
    atomic rename would replace rather than fill), in an existing folder, and
    apart from `--output-dir` (neither inside the other: the report's files
    would make it non-empty, or the release would land among them).

    Args:
        path: The `--release-dir` value.
        output_dir: The `--output-dir` value, if any.

    Raises:
        ValueError: one line naming `--release-dir`.
    """
    shown = bounded(os.fspath(path))
    if os.path.islink(path):
        target = bounded(os.readlink(path))
        state = "" if os.path.exists(path) else ", which does not exist"
        raise ValueError(
            "`--release-dir` must be a new or empty folder, not a symbolic link. "
            f"Received: --release-dir={shown} (a link to {target}{state})"
        )
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise ValueError(
            "`--release-dir` must be a new or empty folder. "
            f"Received: --release-dir={shown} (exists and is not empty)"
        )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(
            "`--release-dir` must be in an existing folder. "
            f"Received: --release-dir={shown} ({bounded(parent)} does not exist)"
        )
    if output_dir is not None:
        release, report = os.path.realpath(path), os.path.realpath(output_dir)
        if release == report or _inside(release, report) or _inside(report, release):
            raise ValueError(
                "`--release-dir` must be a folder apart from --output-dir (neither "
                f"inside the other). Received: --release-dir={shown}, "
                f"--output-dir={bounded(os.fspath(output_dir))}"
            )


def _inside(path, folder):
    """Whether `path` is strictly inside `folder` (both real, absolute paths)."""
    return os.path.commonpath([path, folder]) == folder and path != folder


def check_sidecar(path, artifact_path, size_bytes, entry):
    """Refuses a sidecar that does not describe the released artifact.

    It must be the file written at export, unchanged (its SHA-256 against the
    one the report recorded, `entry["export"]["sidecar_sha256"]`), name the
    artifact, give its size, hold the parity measured at export, claim the
    format and quantisation mode of the report's entry, and be borne out by
    the artifact itself (`export.sidecar.artifact_discrepancies`: the file's
    digest, its quantisation mode and tensor types read back from it).

    Args:
        path: The sidecar (its copy in the release being built).
        artifact_path: The artifact (its copy beside it).
        size_bytes: The artifact's size.
        entry: The report's result entry of the artifact.

    Raises:
        RuntimeError: the sidecar is unreadable or does not describe the
            artifact (one line).
    """
    artifact_name = os.path.basename(os.path.normpath(artifact_path))
    recorded = entry.get("export") or {}
    content = sidecar_lib.read_json(
        path,
        lambda reason: RuntimeError(
            f"the sidecar of {artifact_name} is unreadable "
            f"({bounded(reason)}); nothing released"
        ),
    )
    if not isinstance(content, dict):
        content = {}
    stale = []
    if recorded.get("sidecar_sha256") and (
        file_digest(path) != recorded["sidecar_sha256"]
    ):
        stale.append("edited since the export (SHA-256 differs)")
    if content.get("artifact") != artifact_name:
        stale.append(
            f"artifact {bounded(content.get('artifact'), 40, quote=True)} "
            f"!= {artifact_name!r}"
        )
    if content.get("size_bytes") != size_bytes:
        stale.append(
            f"size_bytes {bounded(content.get('size_bytes'), 40)} != {size_bytes}"
        )
    if "parity" in recorded and _canonical(content.get("parity")) != _canonical(
        recorded["parity"]
    ):
        stale.append("parity differs from the one measured")
    options = content.get("options") if isinstance(content.get("options"), dict) else {}
    if content.get("format") != entry.get("format"):
        stale.append(
            f"format {bounded(content.get('format'), 40, quote=True)} != "
            f"{entry.get('format')!r}"
        )
    if options.get("quantize", "none") != entry.get("quantize", "none"):
        stale.append(
            f"quantize {bounded(options.get('quantize'), 40, quote=True)} != "
            f"{entry.get('quantize', 'none')!r}"
        )
    if not stale:
        stale += sidecar_lib.artifact_discrepancies(content, artifact_path)
    if stale:
        raise RuntimeError(
            f"the sidecar of {artifact_name} does not describe it "
            f"({'; '.join(stale[:4])}); nothing released"
        )


def _canonical(value):
    """JSON text of `value` (NaN equals NaN; key order ignored)."""
    return json.dumps(value, sort_keys=True, default=float)


def write_release(report, release_dir):
    """Copies the winner and its sidecar into `release_dir`, with `release.json`.

    The folder is built beside `release_dir` and renamed into place, so a failure
    leaves nothing. The copy's SHA-256 must equal the digest taken when the artifact
    was measured (`entry["sha256"]`).

    Args:
        report: A report whose `release` has a winner.
        release_dir: The folder to create (new, or empty).

    Returns:
        The path of `release.json`.
    """
    release = report["release"]
    winner = release["winner"]
    entry = next(
        r
        for r in report["results"]
        if r["model"] == winner["model"]
        and r.get("variant", r["format"]) == winner["variant"]
    )
    check_release_dir(release_dir)
    staged = staging.temporary_sibling(release_dir)
    os.makedirs(staged)
    try:
        name = os.path.basename(os.path.normpath(entry["artifact"]))
        copied = os.path.join(staged, name)
        if os.path.isdir(entry["artifact"]):
            shutil.copytree(entry["artifact"], copied)
        else:
            shutil.copy2(entry["artifact"], copied)
        digest = file_digest(copied)
        if entry.get("sha256") and digest != entry["sha256"]:
            raise RuntimeError(
                f"{entry['artifact']} changed after it was measured (SHA-256 "
                f"{digest[:12]}… != {entry['sha256'][:12]}…); nothing released"
            )
        size_bytes = staging.artifact_size_bytes(copied)
        sidecar = (entry.get("export") or {}).get("sidecar_path")
        if sidecar:
            copied_sidecar = os.path.join(staged, os.path.basename(sidecar))
            try:
                shutil.copy2(sidecar, copied_sidecar)
            except OSError as error:
                raise RuntimeError(
                    f"the sidecar {sidecar} of {name} cannot be copied "
                    f"({' '.join(str(error).split())}); nothing released"
                ) from None
            check_sidecar(copied_sidecar, copied, size_bytes, entry)
        beaten = [c for c in release["candidates"] if c is not winner]
        latency = {
            b: {
                k: stats[k]
                for k in (
                    "p50_ms",
                    "p50_spread_ms",
                    "round_p50_ms",
                    "p99_ms",
                    "validity",
                    "calls_per_sample",
                    "samples",
                    "threads",
                )
                if k in stats
            }
            for b, stats in entry["latency"].items()
        }
        record = {
            "artifact": name,
            "sha256": digest,
            "size_bytes": size_bytes,
            "sidecar": os.path.basename(sidecar) if sidecar else None,
            "model": entry["model"],
            "variant": winner["variant"],
            "format": entry["format"],
            "quantize": entry.get("quantize", "none"),
            "lineage": entry.get("lineage"),
            "objective": release["objective"],
            "objective_value": winner["value"],
            "why": (
                f"meets every limit of the budget and has the lowest "
                f"{release['objective']} ({winner['value']:.6g}) of the "
                f"{sum(c['meets'] for c in release['candidates'])} variant(s) that do, "
                f"among {len(release['candidates'])} measured"
            ),
            "limits": report["budget"]["limits"] if report.get("budget") else None,
            "measured": {
                "accuracy": entry.get("accuracy"),
                "accuracy_examples": entry.get("accuracy_examples"),
                "latency": latency,
                "threads": entry.get("threads"),
                "parity": entry.get("parity"),
            },
            "timing": (report.get("settings") or {}).get("timing"),
            "beaten": beaten,
            "report_created_utc": report["created_utc"],
            "command": report.get("command"),
        }
        path = os.path.join(staged, "release.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=2, default=float)
            handle.write("\n")
        if os.path.isdir(release_dir):
            os.rmdir(release_dir)  # checked empty above
        os.replace(staged, release_dir)
    except BaseException:
        staging.remove_path(staged)
        raise
    return os.path.join(release_dir, "release.json")
