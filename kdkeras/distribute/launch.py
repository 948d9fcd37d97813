"""Development launcher: run a training script as N local workers.

Each worker is a separate process on 127.0.0.1 with its own `TF_CONFIG`, so a
script that builds its strategy with
`kdkeras.distribute.strategy_from_environment()` runs under
`MultiWorkerMirroredStrategy` exactly as it would on N machines.

    python -m kdkeras.distribute.launch --workers 2 train.py --epochs 3

Output lines are prefixed with `[worker i]`. The first worker to exit
non-zero stops the others and its exit code is returned; `--timeout` bounds
the whole run (exit code 124). Only loopback addresses are used.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

LOOPBACK = "127.0.0.1"
TIMEOUT_EXIT_CODE = 124
_KILL_GRACE_SECONDS = 3.0


class LaunchError(Exception):
    """A bad launcher argument or environment; reported in one line."""


def free_ports(count, port_base=None):
    """Returns `count` loopback TCP ports that are free right now.

    Args:
        count: number of ports.
        port_base: if given, use `port_base .. port_base + count - 1` and fail
            if one of them is taken; else let the OS pick free ports.

    Raises:
        LaunchError: a port in the requested range is in use or invalid.
    """
    if port_base is not None:
        if not 1024 <= port_base <= 65535 - count + 1:
            raise LaunchError(
                f"`--port-base` must be in [1024, {65535 - count + 1}] for "
                f"{count} workers. Received: --port-base={port_base}"
            )
        ports = list(range(port_base, port_base + count))
        for port in ports:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind((LOOPBACK, port))
                except OSError:
                    raise LaunchError(
                        f"--port-base: port {port} on {LOOPBACK} is in use; "
                        "pick another base or omit --port-base."
                    ) from None
        return ports
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.bind((LOOPBACK, 0))
            sockets.append(probe)
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def tf_configs(ports):
    """The `TF_CONFIG` JSON string of each worker of a loopback cluster."""
    cluster = {"worker": [f"{LOOPBACK}:{port}" for port in ports]}
    return [
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        for i in range(len(ports))
    ]


def launch(command, workers, port_base=None, timeout=None, output=None):
    """Runs `command` as `workers` local processes and waits for them.

    Args:
        command: argv list, e.g. `[sys.executable, "train.py", "--epochs",
            "3"]`.
        workers: number of worker processes (>= 1).
        port_base: first loopback port, or None for free ports.
        timeout: seconds before every worker is killed; None waits forever.
        output: text stream for the prefixed output (default stdout).

    Returns:
        0 if every worker exited 0; else the exit code of the first worker
        to fail (128 + signal number if it was killed by a signal), or 124
        on timeout.
    """
    output = output or sys.stdout
    ports = free_ports(workers, port_base)
    lock = threading.Lock()
    processes, readers = [], []
    for index, config in enumerate(tf_configs(ports)):
        environment = dict(os.environ, TF_CONFIG=config, PYTHONUNBUFFERED="1")
        process = subprocess.Popen(
            command,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # so a kill reaches the worker's children
        )
        processes.append(process)
        reader = threading.Thread(
            target=_stream,
            args=(process.stdout, f"[worker {index}] ", output, lock),
            daemon=True,
        )
        reader.start()
        readers.append(reader)

    deadline = None if timeout is None else time.monotonic() + timeout
    exit_code, message = 0, None
    try:
        while True:
            codes = [process.poll() for process in processes]
            failed = [
                (index, code)
                for index, code in enumerate(codes)
                if code not in (None, 0)
            ]
            if failed:
                index, code = failed[0]
                exit_code = 128 - code if code < 0 else code
                message = f"worker {index} exited with code {exit_code}"
                break
            if all(code == 0 for code in codes):
                break
            if deadline is not None and time.monotonic() > deadline:
                exit_code = TIMEOUT_EXIT_CODE
                message = f"timed out after {timeout:g} s"
                break
            time.sleep(0.05)
    finally:
        _stop(processes)
        for reader in readers:
            reader.join(timeout=5)
    if message:
        with lock:
            output.flush()
        _error(f"{message}; stopped the other workers.")
    return exit_code


def _stream(pipe, prefix, output, lock):
    for raw in iter(pipe.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        with lock:
            output.write(f"{prefix}{line}\n")
            output.flush()
    pipe.close()


def _stop(processes):
    """SIGTERM every live worker's process group, SIGKILL after a grace."""
    live = [process for process in processes if process.poll() is None]
    for process in live:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + _KILL_GRACE_SECONDS
    for process in live:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for process in live:
        if process.poll() is None:
            # TensorFlow blocked in a collective ignores SIGTERM.
            _signal_group(process, signal.SIGKILL)
            process.wait()


def _signal_group(process, signum):
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def _error(message):
    sys.stderr.write(f"kdkeras.distribute.launch: error: {message}\n")
    sys.stderr.flush()


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        _error(f"{message} (see --help)")
        sys.exit(2)


def _parse(argv):
    parser = _Parser(
        prog="python -m kdkeras.distribute.launch",
        description="Run a training script as N local workers with TF_CONFIG.",
    )
    parser.add_argument(
        "--workers", type=int, required=True, help="number of workers (>= 1)"
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=None,
        help="first loopback port (default: free ports picked by the OS)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="kill every worker and exit 124 after this many seconds",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show tracebacks of errors"
    )
    parser.add_argument("script", help="the training script (a .py file)")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, help="its arguments")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"`--workers` must be >= 1. Received: --workers={args.workers}")
    if args.timeout is not None and args.timeout <= 0:
        parser.error(f"`--timeout` must be > 0. Received: --timeout={args.timeout:g}")
    if not os.path.isfile(args.script):
        parser.error(f"`script` must be a file. Received: script={args.script!r}")
    return args


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt  # stops the workers on the way out


def main(argv=None):
    """Command-line entry point; returns the exit code."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return launch(
            [sys.executable, args.script, *args.script_args],
            workers=args.workers,
            port_base=args.port_base,
            timeout=args.timeout,
        )
    except LaunchError as error:
        if args.verbose:
            raise
        _error(str(error))
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
