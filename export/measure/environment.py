"""The machine a measurement ran on: cores, memory high-water mark, versions.

Imports only the standard library, so the measurement child can use it
before it imports its runtime.
"""

import os
import platform
import resource
import sys


def available_threads():
    """CPU cores this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def peak_rss_bytes():
    """This process's resident-memory high-water mark, in bytes.

    Linux: `VmHWM` from /proc/self/status. `getrusage(RUSAGE_SELF).ru_maxrss`
    is not used there because the kernel carries it over `execve` from the
    forked copy of the parent, so a child started by a process holding
    TensorFlow would report the parent's memory. Elsewhere: `ru_maxrss`.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss) * (1 if sys.platform == "darwin" else 1024)


def cpu_name():
    """The CPU model name (`/proc/cpuinfo`), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(threads):
    """The machine and software a report's figures were measured with.

    Args:
        threads: Threads each runtime was given.

    Returns:
        A JSON-serialisable dict: `cpu`, `cores_available`,
        `threads_per_runtime`, `platform`, `python`, `versions` (of the
        converters and runtimes, `export.sidecar.versions`), `load_average`.
    """
    from export import sidecar

    return {
        "cpu": cpu_name(),
        "cores_available": available_threads(),
        "threads_per_runtime": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": sidecar.versions(),
        "load_average_start": list(os.getloadavg()),
    }
