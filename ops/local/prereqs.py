"""Check (and on Debian as root, install) the host programs the local stack needs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ops.local.errors import LocalStackError

# program -> (Debian package, how to get it elsewhere)
_PROGRAMS: dict[str, tuple[str, str]] = {
    "java": ("openjdk-17-jre-headless", "install a JDK 17 (e.g. `apt-get install openjdk-17-jdk-headless`)"),
    "mvn": ("maven", "install Apache Maven 3.8+ (e.g. `apt-get install maven`)"),
    "redis-server": ("redis-server", "install Redis 7 (e.g. `apt-get install redis-server`)"),
    # Debian's package brings `prometheus` and `promtool`; its service is not started (we run our own)
    "prometheus": ("prometheus", "install Prometheus 2.x (e.g. `apt-get install prometheus`)"),
}


def _can_apt() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def ensure(programs: list[str], *, install: bool = True, echo=print) -> None:
    """Make sure every program is on PATH, installing its Debian package when allowed."""
    missing = [p for p in programs if shutil.which(p) is None]
    if missing and install and _can_apt():
        packages = sorted({_PROGRAMS[p][0] for p in missing})
        echo(f"installing {', '.join(packages)} with apt-get (missing: {', '.join(missing)})")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        policy = Path("/usr/sbin/policy-rc.d")  # keep the packages' services stopped: we run our own
        ours = not policy.exists()
        if ours:
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        try:
            subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=False, env=env)
        finally:
            if ours:
                policy.unlink(missing_ok=True)
        missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        hints = "; ".join(f"`{p}` not found: {_PROGRAMS[p][1]}" for p in missing)
        raise LocalStackError(f"missing prerequisites: {hints}")
