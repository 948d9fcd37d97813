"""Stand-ins for `export.report.confirm.confirm_release`, and a report run using one.

`python -c` with `report_with_stand_in(name)` runs `python -m export.report` with the
confirmation replaced by the stand-in `name`, so that a test decides what the
confirmation finds without depending on how fast anything runs.
"""

import math


def slow(entry, timing, rounds=20, **keywords):
    """A confirmation whose every figure is 1000 ms (any latency limit breaks)."""
    return {
        "rounds": rounds,
        "window_s": 0.01,
        "sha256": None,
        "latency": {
            batch: {
                "p50_ms": 1000.0,
                "p99_ms": 1000.0,
                "samples": rounds,
                "calls_per_sample": 1,
                "threads": int(stats.get("threads") or entry["threads"]),
                "windows": rounds,
            }
            for batch, stats in entry["latency"].items()
        },
    }


def not_a_number(entry, timing, rounds=20, **keywords):
    """A confirmation whose p99 is NaN (never a pass)."""
    confirmation = slow(entry, timing, rounds)
    for stats in confirmation["latency"].values():
        stats["p50_ms"] = stats["p99_ms"] = math.nan
    return confirmation


def broken(entry, timing, rounds=20, **keywords):
    """A confirmation whose worker died."""
    raise RuntimeError(
        f"measuring {entry['format']} {entry['artifact']} failed: Segmentation fault"
    )


def report_with_stand_in(name):
    """The `python -c` program: `python -m export.report` with stand-in `name`."""
    return (
        "import sys\n"
        "from export.report import command, confirm\n"
        "from tests.export import confirm_stand_ins\n"
        f"confirm.confirm_release = confirm_stand_ins.{name}\n"
        "command.main(['export.report'] + sys.argv[1:])\n"
    )
