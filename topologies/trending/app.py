"""``feedstream topology run trending``: the trending job on the embedded MiniCluster (or a cluster).

Windows come from ``settings.trending_windows`` (``FEEDSTREAM_TRENDING_WINDOWS``, comma-separated
``SIZE/SLIDE[/LATENESS[/OOO]]``, default ``1h/1m/5m/10s,1m/10s/30s/2s``: the hourly list and a
one-minute demo list) and top-K from ``settings.trending_k`` (default 20). Checkpoints go to ``<state_dir>/flink/trending``
every 10 s and are retained; a restart resumes from the newest one. A checkpoint in flight longer than
``trending_checkpoint_timeout_s`` (60 s) fails; ``trending_tolerable_failed_checkpoints`` (5) in a row
are tolerated before the job restarts.
"""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from topologies.trending.logic import WindowSpec


def job_config(settings: Settings):  # -> TrendingConfig
    """The job config the settings describe: windows, top-K, and the Kafka group (``trending`` plus
    ``topology_group_suffix``; a new group starts at ``topology_offset_reset``, like the Faust workers')."""
    from topologies.trending.job import TrendingConfig

    windows = tuple(WindowSpec.parse(w) for w in settings.trending_windows.split(","))
    return TrendingConfig(windows=windows, k=settings.trending_k,
                          group_id=f"trending{settings.topology_group_suffix}",
                          offset_reset=settings.topology_offset_reset)


def latest_checkpoint(directory: Path) -> str | None:
    """The newest completed checkpoint (``.../chk-N`` holding ``_metadata``) under ``directory``."""
    done = sorted(directory.glob("*/chk-*/_metadata"), key=lambda p: (p.stat().st_mtime, int(p.parent.name.split("-")[1])))
    return str(done[-1].parent) if done else None


def start(settings: Settings, config, *, checkpoint_dir: Path | str | None, checkpoint_interval_ms: int | None = 10_000,
          restore: bool = True, job_name: str = "trending", parallelism: int | None = 1,
          local: bool = True, extra: dict[str, str] | None = None):  # -> JobClient
    """Submit the job (restored from the newest retained checkpoint under a local dir) and return its JobClient.

    ``None`` for ``checkpoint_dir``, ``checkpoint_interval_ms`` or ``parallelism`` leaves it to the
    cluster's configuration.
    """
    from topologies.flink import stream_table_env
    from topologies.trending.job import build

    uri, restore_from = None, None
    if checkpoint_dir is not None:
        local_dir = Path(checkpoint_dir) if "://" not in str(checkpoint_dir) else None
        if local_dir is not None:
            local_dir.mkdir(parents=True, exist_ok=True)
            restore_from = latest_checkpoint(local_dir) if restore else None
        uri = local_dir.resolve().as_uri() if local_dir is not None else str(checkpoint_dir)
    env, t_env = stream_table_env(settings, parallelism=parallelism, checkpoint_dir=uri,
                                  checkpoint_interval_ms=checkpoint_interval_ms, restore_from=restore_from,
                                  local=local, extra=extra)
    build(t_env, settings, config)
    return env.execute_async(job_name)


def checkpoint_limits(settings: Settings) -> dict[str, str]:
    """Bound a local checkpoint: it fails after ``trending_checkpoint_timeout_s`` and the job
    tolerates ``trending_tolerable_failed_checkpoints`` failures in a row.

    Offsets are committed only when a checkpoint completes, so one stuck in flight (a Kafka kill or
    added latency) held the committed lag flat for Flink's default 10 min. k8s/base/flink.yaml sets
    its own (2 min, 5); a cluster's configuration wins there.
    """
    return {"execution.checkpointing.timeout": f"{settings.trending_checkpoint_timeout_s}s",
            "execution.checkpointing.tolerable-failed-checkpoints": str(settings.trending_tolerable_failed_checkpoints)}


def run_options(settings: Settings, cluster: bool | None = None) -> dict:
    """``start`` keyword arguments for ``feedstream topology run trending`` here or on a cluster."""
    from topologies.flink import on_cluster

    cluster = on_cluster() if cluster is None else cluster
    par = settings.trending_parallelism
    chk = settings.trending_checkpoint_dir
    return {
        "parallelism": par if par else (None if cluster else 1),
        "checkpoint_dir": chk or (None if cluster else settings.state_dir / "flink" / "trending"),
        "checkpoint_interval_ms": None if cluster else 10_000,
        "restore": not cluster,  # on a cluster, Flink restores (HA, operator savepoints)
        "local": not cluster,
        "extra": {} if cluster else checkpoint_limits(settings),
    }


def flink_metrics(settings: Settings) -> dict[str, str]:
    """Serve Flink's metrics (source lag included) on the trending port and publish it as a target."""
    import socket

    from topologies.flink import prometheus_reporter
    from topologies.metrics import port_for, publish_target

    port = port_for(settings, "trending")
    if port == 0:  # any free port (tests): Flink's reporter takes a fixed one
        with socket.socket() as sock:
            sock.bind((settings.host, 0))
            port = sock.getsockname()[1]
    conf = prometheus_reporter(settings, port)
    publish_target(settings.state_dir, "flink", "trending", settings.host, port)
    return conf


def run(settings: Settings) -> None:
    """Run the trending job in the foreground until interrupted (or until the cluster ends it)."""
    opts = run_options(settings)
    if opts["local"]:  # Flink's Prometheus reporter; Prometheus finds it under the state dir
        opts["extra"] = {**opts["extra"], **flink_metrics(settings)}
    client = start(settings, job_config(settings), **opts)
    try:
        client.get_job_execution_result().result()
    except KeyboardInterrupt:
        client.cancel().result()
    except Exception as exc:
        if any(m in str(exc) for m in ("StateMigrationException", "Cannot map checkpoint/savepoint state")) \
                and opts.get("checkpoint_dir"):
            raise SystemExit(
                f"trending: the retained checkpoint under {opts['checkpoint_dir']} does not fit this "
                "version of the job (its state layout changed). Move that directory aside to start "
                "from the topics' committed offsets, or restore a compatible savepoint."
            ) from exc
        raise
