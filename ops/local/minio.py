"""The local S3-compatible object store for media: MinIO's server, built once from the Go module proxy.

``scripts/fetch_minio.sh`` runs ``go install github.com/minio/minio@<pinned pseudo-version>`` into the
cache (``~/.cache/feedstream/minio/``, outside git, like the jars); :func:`binary` calls it when the
binary is missing. The server runs single-node, single-drive on loopback with its data under
``<state_dir>/minio``; its root credentials are the platform's S3 keys (``FEEDSTREAM_MEDIA_ACCESS_KEY``
and ``FEEDSTREAM_MEDIA_SECRET_KEY``). Health: ``/minio/health/ready`` (the drive is online).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from core.settings import REPO_ROOT, Settings
from ops.local.errors import LocalStackError

SCRIPT = REPO_ROOT / "scripts" / "fetch_minio.sh"


def binary(s: Settings, echo: Callable[[str], None] = print) -> Path:
    """The cached MinIO server binary, built first if missing (a few minutes, once per machine)."""
    env = {**os.environ, "FEEDSTREAM_CACHE_DIR": str(s.cache_dir)}
    path = Path(subprocess.run(["bash", str(SCRIPT), "--path"], capture_output=True, text=True,
                               env=env, check=True).stdout.strip())
    if path.is_file():
        return path
    echo("minio: building the MinIO server from the Go module proxy (once per machine, a few minutes)")
    t0 = time.monotonic()
    built = subprocess.run(["bash", str(SCRIPT)], check=False, capture_output=True, text=True, env=env)
    if built.returncode != 0 or not path.is_file():
        raise LocalStackError(f"building MinIO failed ({SCRIPT}):\n{built.stderr[-3000:]}\n"
                              "Install Go 1.24+ (https://go.dev/dl) and check that the Go module proxy is reachable.")
    echo(f"minio: built in {time.monotonic() - t0:.0f}s: {path}")
    return path


def command(s: Settings, data: Path) -> list[str]:
    """``minio server`` on loopback with the platform's S3 keys as root credentials."""
    drive = data / "drive"
    drive.mkdir(parents=True, exist_ok=True)
    return ["env", f"MINIO_ROOT_USER={s.media_access_key}",
            f"MINIO_ROOT_PASSWORD={s.media_secret_key.get_secret_value()}",
            "MINIO_BROWSER_REDIRECT=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1",
            str(binary(s)), "server", str(drive), "--quiet",
            "--address", f"{s.host}:{s.minio_port}", "--console-address", f"{s.host}:{s.minio_console_port}"]


def healthy(s: Settings) -> bool:
    import httpx

    try:
        return httpx.get(f"http://{s.host}:{s.minio_port}/minio/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
