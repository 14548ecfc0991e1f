"""Run topology workers as subprocesses (``feedstream topology run NAME``) on given settings.

Benchmarks and tests start workers this way on their own keyspace, Redis database and consumer
group: the settings' engines, keyspace and state dir, plus any extra setting (e.g.
``topology_group_suffix="-bench"``, ``topology_offset_reset="latest"``, ``timeline_cap=10``), reach
the child as ``FEEDSTREAM_*`` environment variables, and every Faust topology's ``create_app``
reads its group and offset reset from them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.settings import REPO_ROOT, Settings


def worker_env(settings: Settings, **extra: Any) -> dict[str, str]:
    """Environment for a worker subprocess on ``settings``' engines, keyspace and Redis database."""
    env = dict(os.environ)
    env.update({
        "FEEDSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "FEEDSTREAM_REGISTRY_URL": settings.registry_url,
        "FEEDSTREAM_REDIS_URL": settings.redis_url,
        "FEEDSTREAM_CASSANDRA_HOSTS": ",".join(settings.cassandra_hosts),
        "FEEDSTREAM_CASSANDRA_PORT": str(settings.cassandra_port),
        "FEEDSTREAM_KEYSPACE": settings.keyspace,
        "FEEDSTREAM_STATE_DIR": str(settings.state_dir),
        "FEEDSTREAM_OPENSEARCH_URL": settings.opensearch_url,
        "FEEDSTREAM_SEARCH_ALIAS": settings.search_alias,
        "FEEDSTREAM_MEDIA_URL": settings.media_url,
        "PYTHONPATH": str(REPO_ROOT),
    })
    env.update({f"FEEDSTREAM_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def start_worker(settings: Settings, name: str, log_path: Path, *, new_session: bool = False,
                 **extra: Any) -> subprocess.Popen:
    """Start ``feedstream topology run NAME`` (output appended to ``log_path``); ``extra`` as in :func:`worker_env`.

    With ``new_session`` the worker leads its own process group (``os.killpg(proc.pid, ...)``).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "feedstream.cli", "topology", "run", name],
                                env=worker_env(settings, **extra), cwd=REPO_ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=new_session)


def stop_workers(procs: list[subprocess.Popen], timeout_s: float = 20) -> None:
    """Terminate ``procs`` (by pid), then kill the ones still running after ``timeout_s``."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextmanager
def workers(settings: Settings, names: tuple[str, ...] = ("graph", "fanout"), *, log_dir: Path,
            **extra: Any) -> Iterator[list[subprocess.Popen]]:
    """Run ``feedstream topology run <name>`` subprocesses (logs in ``log_dir/<name>.log``); stop them on exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    try:
        for name in names:
            procs.append(start_worker(settings, name, log_dir / f"{name}.log", **extra))
        yield procs
    finally:
        stop_workers(procs)
