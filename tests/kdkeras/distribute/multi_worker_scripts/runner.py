"""Helpers for the multi-worker tests: bounded subprocesses on loopback only."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
DISTIL = os.path.join(HERE, "distil.py")


def environment(**extra):
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.update({key: str(value) for key, value in extra.items()})
    return env


def tf_config(ports, index):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def run(args, timeout, env=None):
    """Runs `python args...`; returns the CompletedProcess (text output)."""
    return subprocess.run(
        [sys.executable, *args],
        env=env or environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def launch(script, *script_args, timeout, workers=2, grace=30, env=None):
    """Runs `python -m kdkeras.distribute.launch` on `script` with `script_args`.

    Args:
        script: the worker script's path.
        *script_args: the script's own arguments.
        timeout: the launcher's `--timeout`, in seconds.
        workers: the launcher's `--workers`.
        grace: how many seconds more than `timeout` the launcher itself gets.
        env: the environment (default: `environment()`).

    Returns:
        The CompletedProcess (text output).
    """
    command = ["-m", "kdkeras.distribute.launch", "--workers", str(workers)]
    command += ["--timeout", str(timeout), script, *map(str, script_args)]
    return run(command, timeout + grace, env=env)


def start(args, env=None, log=None):
    """Starts `python args...` in its own process group (killable as one)."""
    return subprocess.Popen(
        [sys.executable, *args],
        env=env or environment(),
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )


def kill(process):
    """SIGKILL a process started by `start` (and its children); reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


def wait_for_file(path, process, timeout):
    """Waits until `path` exists; fails if `process` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        if process.poll() is not None:
            raise AssertionError(
                f"process exited with {process.returncode} before writing {path}"
            )
        time.sleep(0.2)
    raise AssertionError(f"{path} not written within {timeout} s")


def student_weights(out_dir):
    with np.load(os.path.join(out_dir, "student_weights.npz")) as data:
        return [data[f"w{i}"] for i in range(len(data.files))]
