"""Start, find and stop the processes the local stack owns, by pid file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Running:
    """A live process recorded in a pid file."""

    pid: int
    started_at: float
    port: int

    @property
    def uptime_s(self) -> float:
        return time.time() - self.started_at

    def rss_bytes(self) -> int:
        """Resident memory of the process and its children."""
        try:
            proc = psutil.Process(self.pid)
            return proc.memory_info().rss + sum(
                c.memory_info().rss for c in proc.children(recursive=True)
            )
        except psutil.Error:
            return 0


def port_in_use(host: str, port: int) -> bool:
    """True if something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def port_owner(port: int) -> str:
    """Describe the process listening on ``port``, if it can be seen."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid:
                    p = psutil.Process(conn.pid)
                    return f"pid {conn.pid} ({' '.join(p.cmdline()[:3])[:120]})"
    except psutil.Error:
        pass
    return "an unknown process"


def read_pidfile(pidfile: Path) -> Running | None:
    """The process a pid file names, if it is still the same live process."""
    try:
        data = json.loads(pidfile.read_text())
        proc = psutil.Process(int(data["pid"]))
        # guard against pid reuse: the create time must match what we recorded
        if abs(proc.create_time() - float(data["create_time"])) > 1.0:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return Running(int(data["pid"]), float(data["started_at"]), int(data["port"]))
    except (OSError, ValueError, KeyError, psutil.Error):
        return None


def spawn(cmd: list[str], *, pidfile: Path, log: Path, port: int, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> Running:
    """Start ``cmd`` in its own session with output to ``log``; record it in ``pidfile``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)[:400]}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, **(env or {})}, cwd=cwd,
        )
    started = time.time()
    create_time = psutil.Process(proc.pid).create_time()
    pidfile.write_text(json.dumps(
        {"pid": proc.pid, "create_time": create_time, "started_at": started, "port": port}
    ))
    return Running(proc.pid, started, port)


def stop(pidfile: Path, timeout_s: float = 30.0) -> int | None:
    """Stop the process group a pid file names (TERM, then KILL); return its pid if it ran."""
    running = read_pidfile(pidfile)
    pidfile.unlink(missing_ok=True)
    if running is None:
        return None
    try:
        pgid = os.getpgid(running.pid)
    except ProcessLookupError:
        return None
    os.killpg(pgid, signal.SIGTERM)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if not psutil.pid_exists(running.pid) or _is_zombie(running.pid):
            break
        time.sleep(0.2)
    else:
        os.killpg(pgid, signal.SIGKILL)
    # reap anything left in the group (e.g. children that ignored TERM)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return running.pid


def _is_zombie(pid: int) -> bool:
    try:  # reap it if it is our own child
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def tail(log: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file (empty if there is none)."""
    if not log.exists():
        return ""
    with open(log, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64 * 1024))
        return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
