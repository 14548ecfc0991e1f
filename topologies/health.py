"""Worker liveness that means progress: a heartbeat file, and the check a probe runs on it.

A running Faust worker (:func:`topologies.faust_runtime.install_heartbeat`) touches
``$FEEDSTREAM_STATE_DIR/health/topology-<name>.heartbeat`` every :data:`HEARTBEAT_S` from a timer
of its own app, so the file goes stale when the event loop is blocked, the app crashed or stopped,
or the consumer makes no progress: :class:`ProgressMonitor` stops the touches once the worker
has had records to work on (committed offset below the high-water mark on some assigned
partition) without committing any of them for :data:`STALL_S`. A worker with nothing to do (caught
up, or no partition assigned) is healthy: no traffic is not a hang.

``python -m topologies.health NAME`` (and ``feedstream topology health NAME``) exits 0 when the
heartbeat is younger than ``--max-age`` (default :data:`MAX_AGE_S`), 1 when it is older or absent.
It imports no engine client, so a probe is cheap.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HEARTBEAT_S = 5.0  # how often a healthy worker touches its heartbeat
STALL_S = 120.0  # records waiting and no commit for this long: stop touching (a hang)
MAX_AGE_S = 60.0  # the probe fails on a heartbeat older than this


def heartbeat_path(state_dir: Path, name: str) -> Path:
    """Where topology ``name``'s worker keeps its heartbeat under ``state_dir``."""
    return Path(state_dir) / "health" / f"topology-{name}.heartbeat"


def touch(path: Path, now: float | None = None) -> None:
    """Record a heartbeat at ``now`` (wall clock) in ``path``'s mtime."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    if now is not None:
        os.utime(path, (now, now))


class ProgressMonitor:
    """Whether a consumer is making progress, from snapshots of its committed offsets and
    high-water marks per partition (both "next offset" positions, ``None`` when unknown).

    A partition this group never committed on is behind from offset 0, unless the group started
    ``from_latest`` (``auto_offset_reset=latest``): such a group skips what its partitions held
    when it joined, so only records past the high-water mark it first saw there are waiting.
    (Without that, a partition holding older records and getting no new ones looked like a
    hang 120 s after the worker's last commit: "records waiting" that no one was ever to read.)
    """

    def __init__(self, stall_s: float = STALL_S, *, from_latest: bool = False) -> None:
        self.stall_s = stall_s
        self.from_latest = from_latest
        self._committed: dict[Any, int | None] = {}
        self._start: dict[Any, int] = {}  # from_latest: the high-water mark first seen uncommitted
        self._since: float | None = None  # when records started waiting with no commit since
        self.waiting: list[tuple[Any, int | None, int]] = []  # (tp, committed, high-water) behind

    def _floor(self, tp: Any, committed: int | None, hw: int) -> int:
        if committed is not None:
            return committed
        return self._start.setdefault(tp, hw) if self.from_latest else 0

    def observe(self, committed: Mapping[Any, int | None], highwater: Mapping[Any, int | None],
                now: float) -> bool:
        """Take one snapshot; ``False`` once records have waited ``stall_s`` with no commit."""
        self.waiting = [(tp, committed.get(tp), hw) for tp, hw in highwater.items()
                        if hw is not None and hw > self._floor(tp, committed.get(tp), hw)]
        behind = bool(self.waiting)
        moved = dict(committed) != self._committed
        self._committed = dict(committed)
        if not behind or moved:
            self._since = None if not behind else now
            return True
        if self._since is None:
            self._since = now
        return now - self._since < self.stall_s


def check(path: Path, max_age_s: float = MAX_AGE_S, now: float | None = None) -> tuple[bool, str]:
    """``(healthy, why)`` for the heartbeat at ``path``."""
    now = time.time() if now is None else now
    try:
        age = now - path.stat().st_mtime
    except FileNotFoundError:
        return False, f"no heartbeat at {path} (not started, or not making progress)"
    if age > max_age_s:
        return False, f"heartbeat {path} is {age:.0f}s old (> {max_age_s:.0f}s): worker stalled"
    return True, f"heartbeat {age:.0f}s old"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m topologies.health", description=__doc__)
    parser.add_argument("name", help="topology name (graph, fanout, engagement, users)")
    parser.add_argument("--max-age", type=float, default=MAX_AGE_S, help="seconds")
    parser.add_argument("--state-dir", default=None,
                        help="default: $FEEDSTREAM_STATE_DIR, else the settings' state dir")
    args = parser.parse_args(argv)
    state_dir = args.state_dir or os.environ.get("FEEDSTREAM_STATE_DIR")
    if state_dir is None:
        from core.settings import get_settings

        state_dir = get_settings().state_dir
    ok, why = check(heartbeat_path(Path(state_dir), args.name), args.max_age)
    print(("ok: " if ok else "unhealthy: ") + why, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
