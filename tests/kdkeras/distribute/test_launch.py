"""Tests of kdkeras/distribute/launch.py: N local workers with TF_CONFIG on loopback."""

import io
import json
import os
import socket
import sys
import textwrap
import time

import pytest

from kdkeras.distribute import launch
from tests.kdkeras.distribute.multi_worker_scripts import runner


def _script(tmp_path, body):
    path = tmp_path / "worker.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_free_ports_are_loopback_and_bindable():
    ports = launch.free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def test_port_base_in_use_is_an_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        if port > 65000:
            pytest.skip("ephemeral port too high for a base")
        with pytest.raises(launch.LaunchError, match=f"port {port} .* in use"):
            launch.free_ports(2, port_base=port)
    with pytest.raises(launch.LaunchError, match="--port-base"):
        launch.free_ports(2, port_base=80)


def test_tf_configs():
    configs = [json.loads(c) for c in launch.tf_configs([3001, 3002])]
    for index, config in enumerate(configs):
        assert config == {
            "cluster": {"worker": ["127.0.0.1:3001", "127.0.0.1:3002"]},
            "task": {"type": "worker", "index": index},
        }


def test_each_worker_gets_its_tf_config_and_prefixed_output(tmp_path):
    script = _script(
        tmp_path,
        """
        import json, os
        config = json.loads(os.environ["TF_CONFIG"])
        print("index", config["task"]["index"], "of", len(config["cluster"]["worker"]))
    """,
    )
    output = io.StringIO()
    code = launch.launch([sys.executable, script], workers=3, timeout=60, output=output)
    assert code == 0
    lines = sorted(output.getvalue().splitlines())
    assert lines == [f"[worker {i}] index {i} of 3" for i in range(3)]


def test_first_failure_is_propagated_and_others_are_stopped(tmp_path, capsys):
    script = _script(
        tmp_path,
        """
        import json, os, sys, time
        index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
        if index == 1:
            sys.exit(3)
        time.sleep(300)
    """,
    )
    started = time.monotonic()
    code = launch.launch(
        [sys.executable, script], workers=2, timeout=200, output=io.StringIO()
    )
    assert code == 3
    assert time.monotonic() - started < 60
    assert "worker 1 exited with code 3" in capsys.readouterr().err


def test_killed_worker_reports_signal_exit_code(tmp_path):
    script = _script(
        tmp_path,
        """
        import json, os, signal, time
        if json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(300)
    """,
    )
    code = launch.launch(
        [sys.executable, script], workers=2, timeout=200, output=io.StringIO()
    )
    assert code == 128 + 9


def test_timeout_kills_everything(tmp_path, capsys):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    script = _script(
        tmp_path,
        f"""
        import os, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # like a blocked TF
        open(os.path.join({str(pid_dir)!r}, str(os.getpid())), "w").close()
        time.sleep(300)
    """,
    )
    started = time.monotonic()
    code = launch.launch(
        [sys.executable, script], workers=2, timeout=3, output=io.StringIO()
    )
    assert code == launch.TIMEOUT_EXIT_CODE
    assert time.monotonic() - started < 30
    assert "timed out after 3 s" in capsys.readouterr().err
    for name in os.listdir(pid_dir):
        with pytest.raises(ProcessLookupError):
            os.kill(int(name), 0)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--workers", "0", "x.py"], "`--workers` must be >= 1. Received: --workers=0"),
        (["--workers", "2", "missing.py"], "`script` must be a file"),
        (["--workers", "2", "--timeout", "-1", __file__], "`--timeout` must be > 0"),
        (["--workers", "two", __file__], "invalid int value"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        launch.main(arguments)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


@pytest.mark.slow  # test_multi_worker runs the CLI end to end by default
def test_command_line_passes_script_arguments(tmp_path):
    script = _script(
        tmp_path,
        """
        import sys
        print("args", sys.argv[1:])
    """,
    )
    result = runner.launch(script, "--epochs", "3", "-v", timeout=120, grace=60)
    assert result.returncode == 0, result.stderr[-1000:]
    assert result.stdout.count("args ['--epochs', '3', '-v']") == 2
