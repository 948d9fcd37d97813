"""Pick a `tf.distribute` strategy from the environment and shard input for it.

The same training script runs on one device, on several local GPUs and on
several machines; only the environment changes:

* `TF_CONFIG` naming more than one worker -> `MultiWorkerMirroredStrategy`
  (TensorFlow's own collective all-reduce engine),
* more than one local GPU -> `MirroredStrategy`,
* otherwise the default (single device) strategy.

Example:

```python
strategy = kdkeras.distribute.strategy_from_environment()
with strategy.scope():
    distiller = kdkeras.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam")
distiller.fit(x, y, batch_size=256)  # 256 = GLOBAL batch, split over replicas
```
"""

import json
import os
import socket
import sys
import time

import tensorflow as tf

TF_CONFIG = "TF_CONFIG"
DEFAULT_TIMEOUT_SECONDS = 60.0
_COORDINATED_JOBS = ("chief", "worker")


def parse_tf_config(value=None):
    """Parses and validates a `TF_CONFIG` value.

    Args:
        value: JSON string; defaults to the `TF_CONFIG` environment variable.

    Returns:
        `None` when `TF_CONFIG` is unset or empty, else a dict with keys
        `cluster` (job name -> list of `"host:port"`), `task_type` and
        `task_index`.

    Raises:
        ValueError: one line naming `TF_CONFIG` and what was expected.
    """
    if value is None:
        value = os.environ.get(TF_CONFIG, "")
    if not value.strip():
        return None
    try:
        config = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error.msg} at character "
            f"{error.pos}); expected e.g. "
            '{"cluster": {"worker": ["host:port", ...]}, '
            '"task": {"type": "worker", "index": 0}}.'
        ) from None
    if not isinstance(config, dict):
        raise ValueError(
            f"TF_CONFIG must be a JSON object. Received: a JSON {type(config).__name__}"
        )
    cluster = config.get("cluster")
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(
            "TF_CONFIG has no `cluster`; expected a mapping of job name to a "
            'list of "host:port" addresses, e.g. {"worker": ["h0:2222", '
            '"h1:2222"]}.'
        )
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(
                f"TF_CONFIG cluster job {job!r} must be a non-empty list of "
                f'"host:port" addresses; received {addresses!r}.'
            )
        for address in addresses:
            _split_address(address, job)
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError(
            "TF_CONFIG has no valid `task`; expected "
            '{"type": <job name>, "index": <int>}, received '
            f"{task!r}."
        )
    task_type, task_index = task["type"], task["index"]
    if task_type not in cluster:
        raise ValueError(
            f"TF_CONFIG task type {task_type!r} is not a job in the cluster "
            f"{sorted(cluster)}."
        )
    if (
        not isinstance(task_index, int)
        or isinstance(task_index, bool)
        or not 0 <= task_index < len(cluster[task_type])
    ):
        raise ValueError(
            f"TF_CONFIG task index {task_index!r} is out of range for job "
            f"{task_type!r} with {len(cluster[task_type])} task(s); expected "
            f"an int in [0, {len(cluster[task_type]) - 1}]."
        )
    unknown = set(cluster) - set(_COORDINATED_JOBS) - {"evaluator"}
    if unknown:
        raise ValueError(
            f"TF_CONFIG cluster has job(s) {sorted(unknown)}; "
            "MultiWorkerMirroredStrategy expects only 'chief' and 'worker'."
        )
    return {"cluster": cluster, "task_type": task_type, "task_index": task_index}


def _split_address(address, job):
    host, sep, port = str(address).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"TF_CONFIG cluster job {job!r} has address {address!r}; expected "
            '"host:port" with a port in 1..65535.'
        )
    return host.strip("[]"), int(port)


def num_workers(tf_config):
    """Number of training tasks (`chief` + `worker`) in a parsed `TF_CONFIG`."""
    if tf_config is None:
        return 1
    cluster = tf_config["cluster"]
    return sum(len(cluster.get(job, ())) for job in _COORDINATED_JOBS)


def is_chief(tf_config=None):
    """Whether this process is the chief (the one task that writes files).

    The chief is task `chief:0` if the cluster has a `chief` job, else
    `worker:0`; a process without `TF_CONFIG` is its own chief.

    Args:
        tf_config: a dict from `parse_tf_config`; defaults to the environment.
    """
    if tf_config is None:
        tf_config = parse_tf_config()
        if tf_config is None:
            return True
    task_type, task_index = tf_config["task_type"], tf_config["task_index"]
    if "chief" in tf_config["cluster"]:
        return task_type == "chief"
    return task_type == "worker" and task_index == 0


def _leader_address(tf_config):
    cluster = tf_config["cluster"]
    job = "chief" if "chief" in cluster else "worker"
    return cluster[job][0]


def wait_for_chief(tf_config, timeout_seconds=DEFAULT_TIMEOUT_SECONDS):
    """Waits until the chief's port accepts TCP connections.

    A worker whose chief never comes up would otherwise block inside
    TensorFlow's cluster start-up with no message.

    Args:
        tf_config: a dict from `parse_tf_config`.
        timeout_seconds: give up after this many seconds.

    Raises:
        TimeoutError: one line naming the chief address from `TF_CONFIG`.
    """
    address = _leader_address(tf_config)
    host, port = _split_address(address, "chief")
    deadline = time.monotonic() + timeout_seconds
    while True:
        remaining = deadline - time.monotonic()
        try:
            with socket.create_connection(
                (host, port), timeout=max(0.1, min(1.0, remaining))
            ):
                return
        except OSError:
            if remaining <= 0:
                raise TimeoutError(
                    f"Could not reach the chief at {address} (from TF_CONFIG) "
                    f"within {timeout_seconds:g} s; is the chief running and "
                    "the address right?"
                ) from None
            time.sleep(min(0.2, max(0.0, remaining)))


def strategy_from_environment(
    timeout_seconds=DEFAULT_TIMEOUT_SECONDS,
    heartbeat_timeout_seconds=30.0,
):
    """Builds the strategy that fits the environment.

    Args:
        timeout_seconds: how long the workers of a multi-worker cluster wait
            for each other at start-up before failing (seconds).
        heartbeat_timeout_seconds: after start-up, a worker that stops
            answering for this long makes the others fail instead of
            waiting forever (seconds).

    Returns:
        `tf.distribute.MultiWorkerMirroredStrategy` if `TF_CONFIG` names more
        than one worker, `tf.distribute.MirroredStrategy` if there is more
        than one local GPU, else `tf.distribute.get_strategy()` (default).

    Raises:
        ValueError: `TF_CONFIG` is malformed (one line, names `TF_CONFIG`).
        TimeoutError: the chief could not be reached within `timeout_seconds`.

    Example:

    ```python
    strategy = strategy_from_environment(timeout_seconds=120)
    with strategy.scope():
        model = build_model()
    ```
    """
    if not timeout_seconds or timeout_seconds <= 0:
        raise ValueError(
            "`timeout_seconds` must be > 0. "
            f"Received: timeout_seconds={timeout_seconds!r}"
        )
    tf_config = parse_tf_config()
    if num_workers(tf_config) > 1:
        if tf_config["task_type"] == "evaluator":
            return tf.distribute.get_strategy()
        if not is_chief(tf_config):
            wait_for_chief(tf_config, timeout_seconds)
        _configure_coordination_service(
            tf_config, timeout_seconds, heartbeat_timeout_seconds
        )
        # TensorFlow blocks until every worker has joined; a watchdog turns
        # a missing worker into a one-line error and a non-zero exit.
        watchdog = _Watchdog(
            timeout_seconds,
            f"Timed out after {timeout_seconds:g} s waiting for the "
            f"{num_workers(tf_config)} tasks in TF_CONFIG to join (this is "
            f"{tf_config['task_type']} {tf_config['task_index']}); are all "
            "workers running and the addresses right?",
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        watchdog.disarm()
        return strategy
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


_WATCHDOG_CODE = """
import os, select, signal, sys
parent, timeout, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
ready, _, _ = select.select([sys.stdin], [], [], timeout)
if not ready:
    sys.stderr.write("Error: " + message + "\\n")
    sys.stderr.flush()
    try:
        os.kill(parent, signal.SIGKILL)
    except ProcessLookupError:
        pass
"""


class _Watchdog:
    """Kills this process with a one-line message unless disarmed in time.

    TensorFlow blocks inside C++ (holding the GIL, deaf to SIGTERM) until
    every worker has joined, so neither a Python thread nor a signal handler
    can run; a tiny helper process waits on a pipe instead. Used only before
    training starts, so a kill never leaves anything half written.
    """

    def __init__(self, timeout_seconds, message):
        import subprocess

        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WATCHDOG_CODE,
                str(os.getpid()),
                str(timeout_seconds),
                message,
            ],
            stdin=subprocess.PIPE,
        )

    def disarm(self):
        self._process.stdin.write(b"ok\n")
        self._process.stdin.close()
        self._process.wait()


def _configure_coordination_service(
    tf_config, timeout_seconds, heartbeat_timeout_seconds
):
    """Sets start-up and heartbeat deadlines before MWMS starts the server.

    `MultiWorkerMirroredStrategy` configures TensorFlow's coordination service
    itself (with no deadline: a missing worker blocks forever) unless it is
    already configured, so configure it first with the same jobs and leader.
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    if context.context().coordination_service is not None:
        return
    cluster = tf_config["cluster"]
    jobs = [
        coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster[job]))
        for job in _COORDINATED_JOBS
        if job in cluster
    ]
    leader = "chief" if "chief" in cluster else "worker"
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=f"/job:{leader}/replica:0/task:0",
        coordinated_jobs=jobs,
        cluster_register_timeout_in_ms=int(timeout_seconds * 1000),
        heartbeat_timeout_in_ms=int(heartbeat_timeout_seconds * 1000),
    )


def per_replica_batch_size(global_batch_size, strategy=None):
    """Splits a global batch evenly over the replicas of `strategy`.

    Args:
        global_batch_size: examples per optimizer step over all replicas.
        strategy: a `tf.distribute.Strategy`; defaults to the current one.

    Returns:
        `global_batch_size // strategy.num_replicas_in_sync`.

    Raises:
        ValueError: the global batch does not divide evenly.
    """
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if (
        not isinstance(global_batch_size, int)
        or isinstance(global_batch_size, bool)
        or global_batch_size <= 0
    ):
        raise ValueError(
            "`global_batch_size` must be a positive int. "
            f"Received: global_batch_size={global_batch_size!r}"
        )
    if global_batch_size % replicas:
        raise ValueError(
            f"`global_batch_size` must be a multiple of the {replicas} "
            f"replicas in sync. Received: global_batch_size={global_batch_size}"
        )
    return global_batch_size // replicas


def with_auto_shard_policy(dataset, policy=None):
    """Returns `dataset` with an explicit auto-shard policy.

    Args:
        dataset: a `tf.data.Dataset`.
        policy: a `tf.data.experimental.AutoShardPolicy`, `"data"`, `"file"`,
            `"auto"` or `"off"`. Default: `DATA` (each worker keeps its share
            of every global batch), right for in-memory arrays and for any
            input read from fewer files than there are workers. Use `"file"`
            for datasets read from at least as many files as workers.

    Returns:
        The dataset with `options().experimental_distribute.auto_shard_policy`
        set.
    """
    policies = tf.data.experimental.AutoShardPolicy
    if policy is None:
        policy = policies.DATA
    elif isinstance(policy, str):
        names = {"data": "DATA", "file": "FILE", "auto": "AUTO", "off": "OFF"}
        if policy.lower() not in names:
            raise ValueError(
                f"`policy` must be one of {sorted(names)}. Received: policy={policy!r}"
            )
        policy = getattr(policies, names[policy.lower()])
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    return dataset.with_options(options)


def distribute_dataset(dataset, strategy=None, policy=None):
    """Shards a globally batched dataset over the replicas of `strategy`.

    Args:
        dataset: a `tf.data.Dataset` batched with the GLOBAL batch size.
        strategy: defaults to the current strategy.
        policy: auto-shard policy, see `with_auto_shard_policy`. `None` keeps
            a policy already set on `dataset`, else uses `DATA`.

    Returns:
        A `tf.distribute.DistributedDataset`: each replica gets
        `global_batch / num_replicas` examples of every global batch.
    """
    strategy = strategy or tf.distribute.get_strategy()
    if policy is not None or (
        dataset.options().experimental_distribute.auto_shard_policy
        == tf.data.experimental.AutoShardPolicy.AUTO
    ):
        dataset = with_auto_shard_policy(dataset, policy)
    return strategy.experimental_distribute_dataset(dataset)
