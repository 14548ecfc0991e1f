"""A real Toxiproxy server on loopback, driven over its HTTP API.

The binary is built once by ``scripts/fetch_toxiproxy.sh`` (Go module proxy) and cached under the
cache dir, like the engines' jars. :class:`Toxiproxy` starts it on a free loopback port, creates
one proxy per engine (``listen`` on a free loopback port, ``upstream`` the engine) and adds or
removes toxics (latency, bandwidth, reset_peer, timeout) on a proxy.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from core.settings import REPO_ROOT, Settings

SCRIPT = REPO_ROOT / "scripts" / "fetch_toxiproxy.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary(settings: Settings) -> Path:
    """The toxiproxy-server binary, built by the project script on first use."""
    out = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, check=False,
                         env={"FEEDSTREAM_CACHE_DIR": str(settings.cache_dir), "PATH": _path(),
                              "HOME": str(Path.home())}, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"scripts/fetch_toxiproxy.sh failed: {out.stderr.strip()[-800:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def _path() -> str:
    import os

    return os.environ.get("PATH", "") + ":/usr/local/go/bin"


class Toxiproxy:
    """One toxiproxy-server process and its proxies; :meth:`stop` ends it."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([str(binary(settings)), "-host", "127.0.0.1", "-port", str(self.port)],
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.http = httpx.Client(base_url=self.api, timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.http.get("/version").raise_for_status()
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"toxiproxy-server exited {self.proc.returncode}; see {log}") from None
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"toxiproxy-server did not answer within 30 s; see {log}")

    def proxy(self, name: str, upstream: str, port: int | None = None) -> int:
        """Create proxy ``name`` to ``upstream`` (host:port) on loopback ``port`` (default: a free one); the port."""
        port = port or free_port()
        self.http.post("/proxies", json={"name": name, "listen": f"127.0.0.1:{port}", "upstream": upstream,
                                         "enabled": True}).raise_for_status()
        return port

    def add(self, proxy: str, kind: str, attributes: dict[str, Any], *, stream: str = "downstream") -> str:
        """Add a toxic of ``kind`` (latency, bandwidth, reset_peer, timeout) to ``proxy``; its name."""
        name = f"{kind}_{stream}"
        self.http.post(f"/proxies/{proxy}/toxics", json={"name": name, "type": kind, "stream": stream,
                                                          "toxicity": 1.0, "attributes": attributes}
                       ).raise_for_status()
        return name

    def clear(self, proxy: str) -> None:
        """Remove every toxic of ``proxy``."""
        for t in self.http.get(f"/proxies/{proxy}/toxics").json():
            self.http.delete(f"/proxies/{proxy}/toxics/{t['name']}").raise_for_status()

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
