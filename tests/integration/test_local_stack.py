"""`feedstream local up/down/status` on a stack of its own: idempotent up, clean down, clear errors."""

from __future__ import annotations

import socket

import psutil
import pytest
from support.ports import free_ports

from core.settings import Settings
from ops.local import LocalStackError, stack
from ops.local.procs import port_in_use


@pytest.fixture()
def own(tmp_path, stack: Settings) -> Settings:
    kafka, controller, redis_port = free_ports(3)
    return Settings(state_dir=tmp_path / "state", cache_dir=stack.cache_dir,
                    kafka_port=kafka, kafka_controller_port=controller,
                    redis_port=redis_port, kafka_heap_mb=384)


def test_up_twice_is_a_noop_and_down_leaves_nothing(own: Settings) -> None:
    first = stack.up(own, ["redis", "kafka"], echo=lambda *_: None)
    try:
        assert all(s.healthy and s.started_now for s in first)
        second = stack.up(own, ["redis", "kafka"], echo=lambda *_: None)
        assert [s.pid for s in second] == [s.pid for s in first]
        assert not any(s.started_now for s in second)
        st = {s.name: s for s in stack.status(own, ["redis", "kafka"])}
        assert st["kafka"].healthy and st["kafka"].rss_bytes and st["kafka"].uptime_s is not None
    finally:
        stopped = stack.down(own, ["redis", "kafka"], echo=lambda *_: None)
    assert sorted(stopped) == ["kafka", "redis"]
    for s in first:
        assert not psutil.pid_exists(s.pid) or psutil.Process(s.pid).status() == psutil.STATUS_ZOMBIE
    for port in (own.redis_port, own.kafka_port, own.kafka_controller_port):
        assert not port_in_use(own.host, port)
    assert all(s.pid is None and not s.healthy for s in stack.status(own, ["redis", "kafka"]))


def test_port_in_use_is_named(own: Settings) -> None:
    with socket.socket() as blocker:
        blocker.bind((own.host, own.redis_port))
        blocker.listen()
        with pytest.raises(LocalStackError, match=rf"redis: port 127.0.0.1:{own.redis_port} is already in use"):
            stack.up(own, ["redis"], echo=lambda *_: None)


def test_engine_that_dies_shows_its_log(own: Settings) -> None:
    bad = own.model_copy(update={"redis_maxmemory_mb": -5})
    with pytest.raises(LocalStackError, match="redis exited during start-up") as err:
        stack.up(bad, ["redis"], echo=lambda *_: None)
    assert "maxmemory" in str(err.value)  # the log tail names the bad directive


def test_down_does_not_touch_foreign_processes(own: Settings) -> None:
    assert stack.down(own, ["redis"], echo=lambda *_: None) == []
