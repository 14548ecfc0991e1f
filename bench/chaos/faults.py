"""The faults: kill -9 of a worker, the API or an engine; a SIGSTOP stall; a Toxiproxy toxic.

A :class:`Fault` has ``inject`` and ``heal``, with ``hold_s`` between them. Workers run under the
platform's supervisor (:mod:`ops.local.supervise`), so killing a worker kills the supervisor's
child and the supervisor restarts it (``heal`` only waits for that). The API and engines are
restarted the way ``feedstream up --no-seed`` does (:func:`ops.platform.up`). Network faults sit
on the proxies between the workers and Redis, Cassandra or Kafka (see :mod:`.run` for how Kafka's
advertised listener is kept behind the proxy).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.settings import Settings
from ops import platform
from ops.local import procs, stack
from ops.local.supervise import read_state

WORKERS = ("fanout", "engagement", "graph", "users", "trending", "search", "moderation")
ENGINES = ("kafka", "redis", "cassandra")
PROXIED = ("redis", "cassandra", "kafka")


@dataclass
class Context:
    """What a fault acts on: the platform's settings, the proxy server, how services are restarted."""

    settings: Settings
    restart: Callable[[], None]              # feedstream up --no-seed (same environment per service)
    toxiproxy: Any = None                    # bench.chaos.toxiproxy.Toxiproxy when network faults run
    echo: Callable[[str], Any] = print
    killed: dict[str, int] = field(default_factory=dict)  # worker -> pid of the killed child


@dataclass(frozen=True)
class Fault:
    """One fault: ``inject``, wait ``hold_s``, ``heal``."""

    name: str
    what: str
    inject: Callable[[Context], None]
    heal: Callable[[Context], None]
    hold_s: float = 0.0


def worker_child(s: Settings, worker: str, not_pid: int | None = None) -> int:
    """The pid of the supervised worker process (the supervisor's child), other than ``not_pid``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = read_state(platform.supervisor_state_path(s, f"topology-{worker}"))
        if state is not None and state.running and state.child_pid and state.child_pid != not_pid:
            return state.child_pid
        time.sleep(0.2)
    raise RuntimeError(f"topology-{worker} has no running child under its supervisor")


def _kill_worker(worker: str) -> Callable[[Context], None]:
    def inject(ctx: Context) -> None:
        pid = worker_child(ctx.settings, worker)
        os.kill(pid, signal.SIGKILL)
        ctx.killed[worker] = pid
        ctx.echo(f"  kill -9 topology-{worker} (pid {pid})")
    return inject


def _await_worker(worker: str) -> Callable[[Context], None]:
    def heal(ctx: Context) -> None:  # the supervisor restarts it (backoff 1 s)
        pid = worker_child(ctx.settings, worker, not_pid=ctx.killed.pop(worker, None))
        ctx.echo(f"  topology-{worker} restarted by its supervisor (pid {pid})")
    return heal


def _kill_service(name: str) -> Callable[[Context], None]:
    def inject(ctx: Context) -> None:
        running = procs.read_pidfile(stack.pid_path(ctx.settings, name))
        if running is None:
            raise RuntimeError(f"{name} is not running")
        os.killpg(running.pid, signal.SIGKILL)  # spawned in its own session: the whole group
        ctx.echo(f"  kill -9 {name} (pid {running.pid})")
    return inject


def _restart(ctx: Context) -> None:
    ctx.restart()


def _stall(worker: str, sig: signal.Signals) -> Callable[[Context], None]:
    def act(ctx: Context) -> None:
        pid = worker_child(ctx.settings, worker)
        os.kill(pid, sig)
        ctx.echo(f"  {sig.name} topology-{worker} (pid {pid})")
    return act


TOXICS: dict[str, tuple[str, dict[str, Any], str]] = {
    "latency": ("latency", {"latency": 1500, "jitter": 500}, "1.5 s ± 0.5 s added to every reply"),
    "bandwidth": ("bandwidth", {"rate": 8}, "replies limited to 8 KB/s"),
    "reset": ("reset_peer", {"timeout": 0}, "every connection reset (TCP RST) at once"),
    "timeout": ("timeout", {"timeout": 0}, "a black hole: data stops, connections hang until healed"),
}


def _toxic(engine: str, toxic: str) -> tuple[Callable[[Context], None], Callable[[Context], None]]:
    kind, attrs, _ = TOXICS[toxic]

    def inject(ctx: Context) -> None:
        ctx.toxiproxy.add(engine, kind, attrs)
        ctx.echo(f"  toxiproxy {engine}: {kind} {attrs}")

    def heal(ctx: Context) -> None:
        ctx.toxiproxy.clear(engine)
        ctx.echo(f"  toxiproxy {engine}: toxics removed")
    return inject, heal


def catalog(stall_s: float = 20.0, net_s: float = 15.0, engine_down_s: float = 5.0) -> dict[str, Fault]:
    """Every fault by name (``none`` is the baseline run)."""
    out = {"none": Fault("none", "no fault (baseline)", lambda c: None, lambda c: None)}
    for w in WORKERS:
        out[f"kill-{w}"] = Fault(f"kill-{w}", f"kill -9 of the {w} worker; its supervisor restarts it",
                                 _kill_worker(w), _await_worker(w))
    out["kill-api"] = Fault("kill-api", "kill -9 of the API; restarted by `up --no-seed` after "
                            f"{engine_down_s:.0f} s", _kill_service("api"), _restart, engine_down_s)
    for e in ENGINES:
        out[f"kill-{e}"] = Fault(f"kill-{e}", f"kill -9 of {e.title()}; restarted by `up --no-seed` after "
                                 f"{engine_down_s:.0f} s", _kill_service(e), _restart, engine_down_s)
    out["stop-fanout"] = Fault("stop-fanout", f"SIGSTOP of the fan-out worker for {stall_s:.0f} s, then SIGCONT",
                               _stall("fanout", signal.SIGSTOP), _stall("fanout", signal.SIGCONT), stall_s)
    for e in PROXIED:
        for t, (_, _, desc) in TOXICS.items():
            inject, heal = _toxic(e, t)
            out[f"net-{e}-{t}"] = Fault(f"net-{e}-{t}", f"workers→{e.title()} via Toxiproxy: {desc}, "
                                        f"{net_s:.0f} s", inject, heal, net_s)
    return out
