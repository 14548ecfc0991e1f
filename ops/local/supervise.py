"""Keep one local platform process running: restart it with backoff when it exits (#13 defect 6).

``python -m ops.local.supervise STATEFILE -- CMD...`` runs ``CMD`` and, whenever it exits while
nobody asked the supervisor to stop, starts it again after a backoff (1 s, doubling up to 60 s;
back to 1 s after a run of at least a minute). A crashed worker (exit 70), a PyFlink job that gave
up after its own restart attempts, or a process killed by the OOM killer thus comes back on its
own. ``STATEFILE`` (JSON) says how often it was restarted, the last exit code and whether the
child is running now, for ``feedstream status``. SIGTERM/SIGINT stop the child (TERM, forwarded)
and then the supervisor; the platform stops the whole process group anyway.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class State:
    """What ``feedstream status`` shows about a supervised process."""

    restarts: int = 0
    last_exit: int | None = None
    running: bool = False
    child_pid: int | None = None
    next_start_at: float | None = None


def backoff_s(failures: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    """The delay before the ``failures``-th restart in a row (1, 2, 4, ... capped)."""
    return min(cap, base * 2 ** max(0, failures - 1))


def read_state(path: Path) -> State | None:
    """The state a supervisor wrote, or None if there is none (or it is unreadable)."""
    try:
        return State(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def supervise(start: Callable[[], Any], wait: Callable[[Any], int], *, stopping: Callable[[], bool],
              sleep: Callable[[float], None], record: Callable[[State], None],
              clock: Callable[[], float] = time.monotonic, stable_s: float = 60.0,
              cap_s: float = 60.0) -> State:
    """Run ``start()`` until ``stopping()``; after every exit wait a backoff and start again."""
    state, failures = State(), 0
    while not stopping():
        child = start()
        started = clock()
        state.running, state.child_pid, state.next_start_at = True, getattr(child, "pid", None), None
        record(state)
        code = wait(child)
        state.running, state.child_pid, state.last_exit = False, None, code
        if stopping():
            record(state)
            break
        failures = 1 if clock() - started >= stable_s else failures + 1
        delay = backoff_s(failures, cap=cap_s)
        state.restarts += 1
        state.next_start_at = time.time() + delay
        record(state)
        sleep(delay)
    return state


def main(argv: list[str]) -> int:
    """``STATEFILE -- CMD...``: supervise CMD (see the module doc)."""
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m ops.local.supervise STATEFILE -- CMD...", file=sys.stderr)
        return 2
    statefile, cmd = Path(argv[0]), argv[2:]
    stop: dict[str, Any] = {"asked": False, "child": None}

    def on_signal(signum: int, frame: Any) -> None:
        stop["asked"] = True
        child = stop["child"]
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def start() -> subprocess.Popen:
        child = subprocess.Popen(cmd)  # same process group: the platform's stop reaches it too
        stop["child"] = child
        return child

    def record(state: State) -> None:
        tmp = statefile.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state)))
        tmp.replace(statefile)
        if not state.running and state.next_start_at is not None:
            print(f"supervise: {' '.join(cmd)[:200]} exited with {state.last_exit}; restart "
                  f"#{state.restarts} at {time.strftime('%H:%M:%S', time.localtime(state.next_start_at))}",
                  flush=True)

    def sleep(delay: float) -> None:
        deadline = time.monotonic() + delay
        while not stop["asked"] and time.monotonic() < deadline:
            time.sleep(min(0.2, delay))

    supervise(start, lambda child: child.wait(), stopping=lambda: bool(stop["asked"]), sleep=sleep,
              record=record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
