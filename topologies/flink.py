"""PyFlink environment for the embedded MiniCluster (or a real cluster) with our connector jars."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.settings import Settings

if TYPE_CHECKING:
    from pyflink.table import TableEnvironment


def drain_gateway_stderr() -> None:
    """Copy the PyFlink gateway JVM's stderr to ours, as it is written (idempotent; before the
    gateway starts).

    PyFlink starts the JVM with ``stderr=PIPE`` and reads that pipe only if the JVM dies before
    it reports its port. With ``python.execution-mode: thread`` our operators run inside that JVM,
    so whatever they write to stderr, librdkafka's log lines above all (a Kafka outage logs one per
    reconnect), fills the 64 KiB pipe; the next write then blocks forever. That is how the trending
    job's Kafka producer wedged after a Kafka kill: its broker thread hung in ``write(2)``, every
    publish waited out its timeout, checkpoints expired, and the failed task's close hung in
    ``rd_kafka_destroy``, holding its slot through every restart (issue 13).
    """
    import sys
    import threading

    from pyflink import java_gateway

    launch = java_gateway.launch_gateway_server_process
    if getattr(launch, "drains_stderr", False):
        return

    def pump(pipe: Any) -> None:
        write = True
        while chunk := pipe.read1(65536):  # whatever is there, as soon as it is there
            if write:
                try:
                    sys.stderr.write(chunk.decode("utf-8", "replace"))
                    sys.stderr.flush()
                except (OSError, ValueError):  # our stderr closed at exit: keep reading, never block the JVM
                    write = False

    def launch_draining(env: Any, args: Any) -> Any:
        proc = launch(env, args)
        if proc.stderr is not None:
            threading.Thread(target=pump, args=(proc.stderr,), name="flink-gateway-stderr", daemon=True).start()
        return proc

    launch_draining.drains_stderr = True  # type: ignore[attr-defined]
    java_gateway.launch_gateway_server_process = launch_draining


def connector_jar_urls(settings: Settings) -> list[str]:
    """``file://`` URLs of the Kafka and avro-confluent connector jars in ``settings.flink_jars_dir``.

    The jars are fetched by ``feedstream local fetch`` (run by ``make run``/``make test``) or baked
    into the image; this module only reads them.
    """
    jars = sorted(settings.flink_jars_dir.glob("*.jar"))
    if not jars:
        raise FileNotFoundError(f"no Flink connector jars in {settings.flink_jars_dir}: "
                                "run `feedstream local fetch` (or `make bootstrap`) first")
    return [p.resolve().as_uri() for p in jars]


def table_env(settings: Settings, *, streaming: bool = True, parallelism: int = 1,
              checkpoint_dir: str | None = None, checkpoint_interval_ms: int = 10_000) -> TableEnvironment:
    """A TableEnvironment with the Kafka and avro-confluent jars on ``pipeline.jars``."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    drain_gateway_stderr()
    env_settings = (EnvironmentSettings.in_streaming_mode() if streaming
                    else EnvironmentSettings.in_batch_mode())
    t_env = TableEnvironment.create(env_settings)
    conf = t_env.get_config()
    conf.set("pipeline.jars", ";".join(connector_jar_urls(settings)))
    conf.set("parallelism.default", str(parallelism))
    conf.set("taskmanager.memory.process.size", "1024m")
    conf.set("python.fn-execution.bundle.size", "1000")
    if checkpoint_dir:
        conf.set("execution.checkpointing.interval", f"{checkpoint_interval_ms}ms")
        conf.set("execution.checkpointing.dir", checkpoint_dir)
        conf.set("state.checkpoints.dir", checkpoint_dir)
    return t_env


def on_cluster() -> bool:
    """Whether this Python process is a job's client under ``flink run`` or the operator's PythonDriver."""
    import os

    return "PYFLINK_GATEWAY_PORT" in os.environ


#: Python worker tuning measured with ``python -m bench.trending`` (see docs/trending.md).
PYTHON_TUNING = {
    "python.fn-execution.bundle.size": "1000",
    "python.fn-execution.bundle.time": "100",
}


REPORTER_FACTORY = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"


def prometheus_reporter(settings: Settings, port: int) -> dict[str, str]:
    """Configuration of Flink's Prometheus reporter on ``port``, for the local MiniCluster.

    The reporter jar (jar set ``flink-metrics``, fetched by ``feedstream local fetch``) must be on
    the JVM's own classpath: PyFlink's MiniCluster finds no reporter in ``FLINK_PLUGINS_DIR``
    (checked: "Available factories: []"), and the PyFlink gateway appends ``HADOOP_CLASSPATH`` to
    its JVM's classpath, so the jar goes there. Call this before the first PyFlink object is made
    (that starts the JVM). A cluster's Flink image ships the reporter as a plugin already.
    """
    import os

    jars = sorted((settings.cache_dir / "jars" / "flink-metrics").glob("flink-metrics-prometheus-*.jar"))
    if not jars:
        raise FileNotFoundError(f"no flink-metrics-prometheus jar in {settings.cache_dir / 'jars' / 'flink-metrics'}: "
                                "run `feedstream local fetch`")
    current = os.environ.get("HADOOP_CLASSPATH", "")
    if str(jars[-1]) not in current.split(os.pathsep):
        os.environ["HADOOP_CLASSPATH"] = os.pathsep.join(p for p in (current, str(jars[-1])) if p)
    return {"metrics.reporter.prom.factory.class": REPORTER_FACTORY, "metrics.reporter.prom.port": str(port),
            "metrics.reporter.prom.host": settings.host}


def local_thread_mode() -> dict[str, str]:
    """Run Python functions in the TaskManager's JVM (pemja) with this interpreter's import path.

    Measured faster than the default process mode (no Beam round trips, no bundle waits); see
    docs/trending.md. A cluster opts in with the same two settings in its configuration.
    """
    import os
    import site
    import sys

    from core.settings import REPO_ROOT

    paths = [p for p in (*site.getsitepackages(), str(REPO_ROOT), *sys.path) if p and os.path.isdir(p)]
    return {"python.execution-mode": "thread", "python.pythonpath": ":".join(dict.fromkeys(paths))}


def stream_table_env(settings: Settings, *, parallelism: int | None = 1, checkpoint_dir: str | None = None,
                     checkpoint_interval_ms: int | None = 10_000, restore_from: str | None = None,
                     extra: dict[str, str] | None = None, local: bool = True) -> tuple[Any, Any]:
    """``(StreamExecutionEnvironment, StreamTableEnvironment)`` with our jars and settings.

    ``None`` leaves a setting to the cluster's configuration (``parallelism.default``,
    ``execution.checkpointing.*``). With ``checkpoint_dir`` checkpoints are retained on cancellation;
    ``restore_from`` names a checkpoint (``.../chk-N``) or savepoint to resume from. ``local`` adds
    the MiniCluster's memory size and makes Python workers use this interpreter; pass ``False``
    under a real cluster, whose ``python.executable`` wins.
    """
    import os
    import sys

    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    if local:  # the gateway JVM's log (Flink's own: restarts, failures) under the state dir, not site-packages
        log_dir = settings.state_dir / "logs" / "flink"
        log_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("FLINK_LOG_DIR", str(log_dir.resolve()))
    drain_gateway_stderr()
    conf = Configuration()
    conf.set_string("pipeline.jars", ";".join(connector_jar_urls(settings)))
    for key, value in PYTHON_TUNING.items():
        conf.set_string(key, value)
    if parallelism is not None:
        conf.set_string("parallelism.default", str(parallelism))
    if local:
        conf.set_string("taskmanager.memory.process.size", "1024m")
        conf.set_string("python.executable", sys.executable)
        conf.set_string("python.client.executable", sys.executable)
        # fail the job (and so the worker, loudly) after a few restarts instead of looping
        # forever, e.g. when a retained checkpoint no longer fits a changed job graph
        conf.set_string("restart-strategy.type", "fixed-delay")
        conf.set_string("restart-strategy.fixed-delay.attempts", "3")
        conf.set_string("restart-strategy.fixed-delay.delay", "5 s")
        # a failed task whose close hangs keeps its slot; give up on it in 60 s, not 5 min, so the
        # job fails, the process exits and its supervisor starts a fresh JVM from the checkpoint
        conf.set_string("slot.request.timeout", "60 s")
        for key, value in local_thread_mode().items():
            conf.set_string(key, value)
    if checkpoint_interval_ms is not None:
        conf.set_string("execution.checkpointing.interval", f"{checkpoint_interval_ms}ms")
    if checkpoint_dir:
        conf.set_string("execution.checkpointing.dir", checkpoint_dir)
        conf.set_string("state.checkpoints.dir", checkpoint_dir)
        conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    if restore_from:
        conf.set_string("execution.state-recovery.path", restore_from)
    for key, value in (extra or {}).items():
        conf.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    return env, StreamTableEnvironment.create(env)
