"""Bring the local stack up and down, and report its status."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings
from ops.local import jars, prereqs, procs
from ops.local.engines import ENGINES, Engine
from ops.local.errors import LocalStackError

ENGINE_NAMES = tuple(ENGINES)


@dataclass(frozen=True)
class EngineStatus:
    """What ``feedstream local status`` shows for one engine."""

    name: str
    pid: int | None
    port: int
    healthy: bool
    uptime_s: float | None
    rss_bytes: int | None
    started_now: bool = False
    start_s: float | None = None
    restarts: int | None = None  # supervised platform processes: restarts since `up`


def data_dir(s: Settings, name: str) -> Path:
    return s.state_dir / name


def log_path(s: Settings, name: str) -> Path:
    return s.state_dir / "logs" / f"{name}.log"


def pid_path(s: Settings, name: str) -> Path:
    return s.state_dir / "run" / f"{name}.pid"


def _select(names: list[str] | None) -> list[Engine]:
    unknown = sorted(set(names or []) - set(ENGINES))
    if unknown:
        raise LocalStackError(f"unknown engine(s) {unknown}; choose from {list(ENGINES)}")
    return [e for n, e in ENGINES.items() if (n in names if names else not e.optional)]


def _check_ports(s: Settings, engine: Engine) -> None:
    for port in [engine.port(s), *engine.extra_ports(s)]:
        if procs.port_in_use(s.host, port):
            raise LocalStackError(
                f"{engine.name}: port {s.host}:{port} is already in use by {procs.port_owner(port)}. "
                f"Stop that process or choose another port (see `feedstream local up --help`)."
            )


def _wait_healthy(s: Settings, engine: Engine, running: procs.Running, echo) -> float:
    t0 = time.monotonic()
    deadline = t0 + s.start_timeout_s
    last_note = t0
    while time.monotonic() < deadline:
        if engine.healthy(s):
            return time.monotonic() - t0
        if procs.read_pidfile(pid_path(s, engine.name)) is None:
            raise LocalStackError(
                f"{engine.name} exited during start-up. Last lines of {log_path(s, engine.name)}:\n"
                f"{procs.tail(log_path(s, engine.name))}"
            )
        if time.monotonic() - last_note > 15:
            echo(f"  … still waiting for {engine.name} ({time.monotonic() - t0:.0f}s)")
            last_note = time.monotonic()
        time.sleep(0.5)
    procs.stop(pid_path(s, engine.name))
    raise LocalStackError(
        f"{engine.name} was not healthy within {s.start_timeout_s:.0f}s (stopped it). "
        f"Last lines of {log_path(s, engine.name)}:\n{procs.tail(log_path(s, engine.name))}"
    )


def _start(s: Settings, engine: Engine, echo) -> EngineStatus:
    pidfile = pid_path(s, engine.name)
    running = procs.read_pidfile(pidfile)
    if running is not None:
        if running.port != engine.port(s):  # same state dir, other settings: never wait on the wrong port
            raise LocalStackError(
                f"{engine.name}: already running on port {running.port} (pid {running.pid}, state dir "
                f"{s.state_dir}), not on {engine.port(s)} as asked. Stop it first "
                f"(`feedstream local down {engine.name}`) or use the port it runs on."
            )
        if engine.healthy(s):
            echo(f"{engine.name}: already running (pid {running.pid}, port {running.port})")
            return EngineStatus(engine.name, running.pid, running.port, True, running.uptime_s,
                                running.rss_bytes())
        echo(f"{engine.name}: pid {running.pid} is running but not healthy yet; waiting")
        took = _wait_healthy(s, engine, running, echo)
        return EngineStatus(engine.name, running.pid, running.port, True, running.uptime_s,
                            running.rss_bytes(), start_s=took)
    _check_ports(s, engine)
    data = data_dir(s, engine.name)
    data.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    cmd = engine.command(s, data)
    echo(f"{engine.name}: starting on {s.host}:{engine.port(s)} (log: {log_path(s, engine.name)})")
    running = procs.spawn(cmd, pidfile=pidfile, log=log_path(s, engine.name), port=engine.port(s),
                          cwd=data)
    _wait_healthy(s, engine, running, echo)
    took = time.monotonic() - t0
    echo(f"{engine.name}: healthy in {took:.1f}s (pid {running.pid})")
    return EngineStatus(engine.name, running.pid, running.port, True, running.uptime_s,
                        running.rss_bytes(), started_now=True, start_s=took)


def up(s: Settings, names: list[str] | None = None, echo=print) -> list[EngineStatus]:
    """Start the selected engines (all by default) and wait until each is healthy.

    Engines already running and healthy are left alone, so running ``up`` twice is a no-op.
    Engines start in parallel; one with ``after`` starts as soon as those it needs are healthy
    (the registry once Kafka is, while Cassandra may still be starting).
    """
    engines = _select(names)
    prereqs.ensure(sorted({p for e in engines for p in e.programs}), echo=echo)
    for jar_set in sorted({j for e in engines for j in e.jar_sets} | {"flink", "flink-metrics"}):
        jars.fetch(s.cache_dir, jar_set, echo=echo)
    for e in engines:
        if e.prepare is not None:
            e.prepare(s, echo)
    with ThreadPoolExecutor(max_workers=len(engines)) as pool:
        futures: dict[str, Future[EngineStatus]] = {}
        for e in engines:  # ENGINES lists every engine after those it needs
            deps = [futures[d] for d in e.after if d in futures]
            futures[e.name] = pool.submit(_start_after, deps, s, e, echo)
        errors = []
        for fut in futures.values():
            try:
                fut.result()
            except LocalStackError as exc:
                errors.append(str(exc))
        if errors:
            raise LocalStackError("\n\n".join(dict.fromkeys(errors)))
    return [futures[e.name].result() for e in engines]


def _start_after(deps: list[Future[EngineStatus]], s: Settings, engine: Engine, echo) -> EngineStatus:
    for dep in deps:
        dep.result()  # a failed dependency fails this engine with the same error
    return _start(s, engine, echo)


def down(s: Settings, names: list[str] | None = None, echo=print) -> list[str]:
    """Stop the engines this stack started (by pid file), dependents first."""
    stopped = []
    optional = [e for e in ENGINES.values() if e.optional and not names]  # stopped if running
    for engine in reversed([*_select(names), *optional]):
        pid = procs.stop(pid_path(s, engine.name))
        if pid is not None:
            echo(f"{engine.name}: stopped (pid {pid})")
            stopped.append(engine.name)
        elif engine not in optional:
            echo(f"{engine.name}: not running")
    return stopped


def status(s: Settings, names: list[str] | None = None) -> list[EngineStatus]:
    """Pid, port, health, uptime and RSS of each engine."""
    out = []
    running_optional = [e for e in ENGINES.values()
                        if e.optional and not names and procs.read_pidfile(pid_path(s, e.name))]
    for engine in [*_select(names), *running_optional]:
        running = procs.read_pidfile(pid_path(s, engine.name))
        if running is None:
            out.append(EngineStatus(engine.name, None, engine.port(s), False, None, None))
        else:
            out.append(EngineStatus(engine.name, running.pid, running.port, engine.healthy(s),
                                    running.uptime_s, running.rss_bytes()))
    return out
