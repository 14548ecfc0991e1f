"""The whole local platform: engines, topics, topology workers, the API and demo data.

Platform services run as managed local processes (pid files under the state dir), like the
engines. A service is listed in :data:`SERVICES` once the code it runs exists. Topology workers
run under :mod:`ops.local.supervise`: a worker that exits (a crash exits 70; the PyFlink job exits
once its own restart attempts are spent) is restarted with backoff, and ``feedstream status``
shows the restarts and reports a worker waiting for its restart as unhealthy.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings
from ops.local import procs, stack
from ops.local.errors import LocalStackError
from ops.local.supervise import read_state


@dataclass(frozen=True)
class Service:
    """A platform process started by ``feedstream up``."""

    name: str
    module: str  # python -m <module> ...
    args: Callable[[Settings], list[str]]
    port: Callable[[Settings], int] = lambda s: 0
    healthy: Callable[[Settings], bool] = lambda s: True
    supervised: bool = False  # restarted with backoff when it exits (ops/local/supervise.py)

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


def _api_healthy(s: Settings) -> bool:
    import httpx

    try:
        return httpx.get(f"{s.api_url}/healthz", timeout=2).status_code == 200
    except Exception:
        return False


SERVICES: list[Service] = [
    Service("topology-graph", "feedstream.cli", lambda s: ["topology", "run", "graph"], supervised=True),
    Service("topology-fanout", "feedstream.cli", lambda s: ["topology", "run", "fanout"], supervised=True),
    Service("topology-engagement", "feedstream.cli", lambda s: ["topology", "run", "engagement"], supervised=True),
    Service("topology-trending", "feedstream.cli", lambda s: ["topology", "run", "trending"], supervised=True),
    Service("topology-users", "feedstream.cli", lambda s: ["topology", "run", "users"], supervised=True),
    Service("topology-search", "feedstream.cli", lambda s: ["topology", "run", "search"], supervised=True),
    Service("topology-moderation", "feedstream.cli", lambda s: ["topology", "run", "moderation"], supervised=True),
    Service("topology-media", "feedstream.cli", lambda s: ["topology", "run", "media"], supervised=True),
    Service("api", "serving.main", lambda s: ["--host", s.host, "--port", str(s.api_port)],
            port=lambda s: s.api_port, healthy=_api_healthy),
]


def _runnable(s: Service) -> bool:
    """True if the code behind a service has landed (e.g. its topology module exists)."""
    if not s.available():
        return False
    if s.name.startswith("topology-"):
        return importlib.util.find_spec(f"topologies.{s.name.split('-', 1)[1]}.app") is not None
    return True


def supervisor_state_path(s: Settings, name: str) -> Path:
    """Where the supervisor of service ``name`` records its restarts."""
    return stack.pid_path(s, name).with_suffix(".supervise.json")


def _command(s: Settings, svc: Service) -> list[str]:
    cmd = [sys.executable, "-m", svc.module, *svc.args(s)]
    if not svc.supervised:
        return cmd
    return [sys.executable, "-m", "ops.local.supervise", str(supervisor_state_path(s, svc.name)),
            "--", *cmd]


def _start_service(s: Settings, svc: Service, echo, env: dict[str, str] | None = None) -> None:
    pidfile = stack.pid_path(s, svc.name)
    if procs.read_pidfile(pidfile) is not None:
        echo(f"{svc.name}: already running")
        return
    log = stack.log_path(s, svc.name)
    supervisor_state_path(s, svc.name).unlink(missing_ok=True)
    procs.spawn(_command(s, svc), pidfile=pidfile, log=log, port=svc.port(s), env=env)
    deadline = time.monotonic() + s.start_timeout_s  # a loaded 2-core machine can take minutes
    while time.monotonic() < deadline:
        if procs.read_pidfile(pidfile) is None:
            raise LocalStackError(f"{svc.name} exited during start-up. Last lines of {log}:\n"
                                  f"{procs.tail(log)}")
        if svc.healthy(s):
            echo(f"{svc.name}: running (log: {log})")
            return
        time.sleep(0.5)
    raise LocalStackError(f"{svc.name} not healthy within {s.start_timeout_s:.0f}s. Last lines of {log}:\n"
                          f"{procs.tail(log)}")


def up(s: Settings, *, seed: bool = True, echo=print,
       service_env: Callable[[str], dict[str, str] | None] | None = None, monitoring: bool = False) -> None:
    """Start engines, apply topics and schemas, start services, then load demo data.

    ``service_env(name)``: extra environment of one service (e.g. the chaos suite points workers'
    engine endpoints at Toxiproxy). ``monitoring``: also the local Prometheus (engine ``monitoring``)."""
    t0 = time.monotonic()
    stack.up(s, echo=echo)
    if monitoring:
        stack.up(s, ["monitoring"], echo=echo)
    if importlib.util.find_spec("streams.admin") is not None:
        from streams import admin

        admin.apply_all(s, echo=echo)
    for svc in SERVICES:
        if _runnable(svc):
            _start_service(s, svc, echo, service_env(svc.name) if service_env else None)
    if seed and importlib.util.find_spec("ops.seed") is not None:
        from ops import seed as seeding

        seeding.seed_if_empty(s, echo=echo)
    echo(f"feedstream is up in {time.monotonic() - t0:.1f}s.")
    echo(f"  web app:   {s.api_url}/   (sign in with `feedstream dev token USER`)")
    echo(f"  API:       {s.api_url}/docs")
    echo(f"  registry:  {s.registry_url}/subjects")
    echo(f"  Kafka:     {s.kafka_bootstrap}")
    if monitoring:
        echo(f"  metrics:   http://{s.host}:{s.prometheus_port}/alerts")
    echo("  status:    feedstream local status    stop: feedstream down")


def status(s: Settings) -> list[stack.EngineStatus]:
    """Pid, port, health, uptime, RSS and restarts (supervised workers) of each service whose code exists."""
    out = []
    for svc in SERVICES:
        if not _runnable(svc):
            continue
        running = procs.read_pidfile(stack.pid_path(s, svc.name))
        state = read_state(supervisor_state_path(s, svc.name)) if svc.supervised else None
        restarts = state.restarts if state is not None else None
        if running is None:
            out.append(stack.EngineStatus(svc.name, None, svc.port(s), False, None, None,
                                          restarts=restarts))
        else:  # a supervised worker waiting to be restarted is not healthy
            up_now = state is None or state.running
            out.append(stack.EngineStatus(svc.name, running.pid, running.port,
                                          up_now and svc.healthy(s), running.uptime_s,
                                          running.rss_bytes(), restarts=restarts))
    return out


def down(s: Settings, echo=print) -> None:
    """Stop services, then engines; only what ``up`` started."""
    for svc in reversed(SERVICES):
        pid = procs.stop(stack.pid_path(s, svc.name))
        if pid is not None:
            echo(f"{svc.name}: stopped (pid {pid})")
    stack.down(s, echo=echo)
