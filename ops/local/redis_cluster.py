"""A local Redis Cluster (or standalone Redis) from Debian's ``redis-server``, for tests and benches.

``start(dir, ports)`` runs one ``redis-server`` per port on loopback with ``cluster-enabled yes``
(no persistence, like the local stack's Redis), joins them with ``redis-cli --cluster create``
(masters only) and waits for ``cluster_state:ok``; ``stop`` ends exactly the processes it started.
Point the platform at it with ``FEEDSTREAM_REDIS_CLUSTER_NODES=<LocalRedis.nodes>``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis


@dataclass
class LocalRedis:
    """Redis servers this module started (``cluster``: joined as one Redis Cluster)."""

    dir: Path
    ports: list[int]
    cluster: bool
    procs: list[subprocess.Popen] = field(default_factory=list, repr=False)

    @property
    def nodes(self) -> str:
        """``host:port,...``: the value of ``FEEDSTREAM_REDIS_CLUSTER_NODES``."""
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)


def _conf(d: Path, port: int, cluster: bool) -> Path:
    conf = d / f"redis-{port}.conf"
    lines = [f"port {port}", "bind 127.0.0.1", "protected-mode no", 'save ""', "appendonly no",
             f"dir {d}", f"logfile {d / f'redis-{port}.log'}"]
    if cluster:
        lines += ["cluster-enabled yes", f"cluster-config-file nodes-{port}.conf", "cluster-node-timeout 5000"]
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _wait(check, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready within {timeout_s:.0f}s")


def _state(port: int) -> str:
    info = redis.Redis(port=port, socket_timeout=1).execute_command("CLUSTER INFO")
    if isinstance(info, dict):
        return str(info.get("cluster_state"))
    text = info.decode() if isinstance(info, bytes) else str(info)
    return next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("cluster_state:")), "")


def start(d: Path, ports: list[int], *, cluster: bool = True, timeout_s: float = 60) -> LocalRedis:
    """Start ``redis-server`` on each port (a Redis Cluster of that many masters if ``cluster``)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found (apt-get install redis-server)")
    d.mkdir(parents=True, exist_ok=True)
    local = LocalRedis(d, list(ports), cluster)
    try:
        for p in ports:
            local.procs.append(subprocess.Popen([binary, str(_conf(d, p, cluster))], stdout=subprocess.DEVNULL,
                                                stderr=subprocess.STDOUT))
        for p in ports:
            _wait(lambda p=p: redis.Redis(port=p, socket_timeout=1).ping(), f"redis on {p}", timeout_s)
        if cluster:
            subprocess.run(["redis-cli", "--cluster", "create", *local.nodes.split(","), "--cluster-replicas", "0",
                            "--cluster-yes"], check=True, capture_output=True, timeout=timeout_s)
            for p in ports:
                _wait(lambda p=p: _state(p) == "ok", f"cluster state on {p}", timeout_s)
    except BaseException:
        stop(local)
        raise
    return local


def stop(local: LocalRedis, timeout_s: float = 10) -> None:
    """Stop the servers ``start`` started (by their process handles) and remove their directory."""
    for proc in local.procs:
        proc.terminate()
    for proc in local.procs:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    shutil.rmtree(local.dir, ignore_errors=True)
