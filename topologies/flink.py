"""PyFlink environment for the embedded MiniCluster (or a real cluster) with our connector jars."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from feedstream.local.jars import fetch, flink_jar_urls
from feedstream.settings import Settings

if TYPE_CHECKING:
    from pyflink.table import TableEnvironment


def table_env(settings: Settings, *, streaming: bool = True, parallelism: int = 1,
              checkpoint_dir: str | None = None, checkpoint_interval_ms: int = 10_000) -> "TableEnvironment":
    """A TableEnvironment with the Kafka and avro-confluent jars on ``pipeline.jars``."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    fetch(settings.cache_dir, "flink")
    env_settings = (EnvironmentSettings.in_streaming_mode() if streaming
                    else EnvironmentSettings.in_batch_mode())
    t_env = TableEnvironment.create(env_settings)
    conf = t_env.get_config()
    conf.set("pipeline.jars", ";".join(flink_jar_urls(settings.cache_dir)))
    conf.set("parallelism.default", str(parallelism))
    conf.set("taskmanager.memory.process.size", "1024m")
    conf.set("python.fn-execution.bundle.size", "1000")
    if checkpoint_dir:
        conf.set("execution.checkpointing.interval", f"{checkpoint_interval_ms}ms")
        conf.set("execution.checkpointing.dir", checkpoint_dir)
        conf.set("state.checkpoints.dir", checkpoint_dir)
    return t_env


def stream_table_env(settings: Settings, *, parallelism: int = 1, checkpoint_dir: str | None = None,
                     checkpoint_interval_ms: int = 10_000, restore_from: str | None = None,
                     extra: dict[str, str] | None = None) -> tuple[Any, Any]:
    """``(StreamExecutionEnvironment, StreamTableEnvironment)`` with the jars and settings of :func:`table_env`.

    With ``checkpoint_dir`` checkpoints are retained on cancellation; ``restore_from`` names a
    checkpoint (``.../chk-N``) or savepoint to resume from. Python workers use this interpreter.
    """
    import sys

    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    fetch(settings.cache_dir, "flink")
    conf = Configuration()
    conf.set_string("pipeline.jars", ";".join(flink_jar_urls(settings.cache_dir)))
    conf.set_string("parallelism.default", str(parallelism))
    conf.set_string("taskmanager.memory.process.size", "1024m")
    conf.set_string("python.fn-execution.bundle.size", "1000")
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    if checkpoint_dir:
        conf.set_string("execution.checkpointing.interval", f"{checkpoint_interval_ms}ms")
        conf.set_string("execution.checkpointing.dir", checkpoint_dir)
        conf.set_string("state.checkpoints.dir", checkpoint_dir)
        conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    if restore_from:
        conf.set_string("execution.state-recovery.path", restore_from)
    for key, value in (extra or {}).items():
        conf.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    return env, StreamTableEnvironment.create(env)
