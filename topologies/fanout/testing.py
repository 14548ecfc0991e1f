"""Helpers for integration tests and benchmarks: run graph/fan-out workers as subprocesses, build events."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from core.events import new_event
from core.ids import new_post_id
from core.settings import REPO_ROOT, Settings

T = TypeVar("T")


def isolated(settings: Settings, keyspace: str, redis_db: int) -> Settings:
    """Settings pointing at their own keyspace and Redis database (same engines)."""
    base = settings.redis_url.rsplit("/", 1)[0]
    return settings.model_copy(update={"keyspace": keyspace, "redis_url_override": f"{base}/{redis_db}"})


def worker_env(settings: Settings, **extra: Any) -> dict[str, str]:
    """Environment for a worker subprocess on ``settings``' engines, keyspace and Redis database."""
    env = dict(os.environ)
    env.update({
        "FEEDSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "FEEDSTREAM_REGISTRY_URL": settings.registry_url,
        "FEEDSTREAM_REDIS_URL": settings.redis_url,
        "FEEDSTREAM_CASSANDRA_HOSTS": ",".join(settings.cassandra_hosts),
        "FEEDSTREAM_CASSANDRA_PORT": str(settings.cassandra_port),
        "FEEDSTREAM_KEYSPACE": settings.keyspace,
        "FEEDSTREAM_STATE_DIR": str(settings.state_dir),
        "PYTHONPATH": str(REPO_ROOT),
    })
    env.update({f"FEEDSTREAM_{k.upper()}": str(v) for k, v in extra.items()})
    return env


@contextmanager
def workers(settings: Settings, names: tuple[str, ...] = ("graph", "fanout"), *, log_dir: Path,
            **extra: Any) -> Iterator[list[subprocess.Popen]]:
    """Run ``feedstream topology run <name>`` subprocesses; terminate them (by pid) on exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    env = worker_env(settings, **extra)
    try:
        for name in names:
            log = open(log_dir / f"{name}.log", "ab")
            procs.append(subprocess.Popen([sys.executable, "-m", "feedstream.cli", "topology", "run", name],
                                          env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT))
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def wait_until(fn: Callable[[], T], timeout_s: float = 60.0, interval_s: float = 0.1) -> T:
    """Poll ``fn`` until it returns a truthy value; raise AssertionError with the last value on timeout."""
    deadline = time.monotonic() + timeout_s
    value = fn()
    while not value and time.monotonic() < deadline:
        time.sleep(interval_s)
        value = fn()
    if not value:
        raise AssertionError(f"condition not met within {timeout_s}s (last value {value!r})")
    return value


def post_created(author: str, text: str = "hello", visibility: str = "PUBLIC",
                 post_id: int | None = None) -> tuple[str, dict[str, Any]]:
    """A PostCreated event ``(record, value)``."""
    return "PostCreated", new_event(author, post_id=post_id or new_post_id(), author_id=author, text=text,
                                    media=[], links=[], hashtags=[], mentions=[], visibility=visibility)


def post_edited(author: str, post_id: int, text: str, visibility: str = "PUBLIC") -> tuple[str, dict[str, Any]]:
    """A PostEdited event."""
    return "PostEdited", new_event(author, post_id=post_id, author_id=author, text=text, media=[],
                                   links=[], hashtags=[], mentions=[], visibility=visibility)


def post_deleted(author: str, post_id: int) -> tuple[str, dict[str, Any]]:
    """A PostDeleted event."""
    return "PostDeleted", new_event(author, post_id=post_id, author_id=author)


def edge(record: str, a: str, b: str) -> tuple[str, dict[str, Any]]:
    """A graph event: Followed/Unfollowed (a follows b), FriendRequest*(a -> b), Blocked/Unblocked (a blocks b)."""
    fields = {"Followed": ("follower_id", "followee_id"), "Unfollowed": ("follower_id", "followee_id"),
              "Blocked": ("blocker_id", "blocked_id"), "Unblocked": ("blocker_id", "blocked_id")}
    fa, fb = fields.get(record, ("from_id", "to_id"))
    return record, new_event(a, **{fa: a, fb: b})
