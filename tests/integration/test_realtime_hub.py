"""The realtime hub against a real Redis: clients that subscribe at the same moment all get their pushes.

Two browsers opening their feed WebSockets together used to race inside redis-py's ``PubSub.connect``:
both saw no connection yet, both opened one, and the channel subscribed on the connection that lost
the race was never read (issue 22's "new post" banner that missed a reader's browser).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis
from support.ports import free_ports

from serving.realtime import Hub
from stores.timelines import channel

pytestmark = pytest.mark.integration


def _start_redis(port: int, workdir: str) -> subprocess.Popen:
    """Debian's redis-server (installed by the bootstrap) on a loopback port, answering PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make bootstrap`")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    try:
        for _ in range(200):
            try:
                client.ping()
                return proc
            except redis.ConnectionError:
                time.sleep(0.05)
    finally:
        client.close()
    proc.kill()
    pytest.fail(f"redis-server on port {port} did not answer PING in 10 s")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    (port,) = free_ports(1)
    workdir = tempfile.mkdtemp(prefix="feedstream-hub-")
    proc = _start_redis(port, workdir)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


async def _publish_when_subscribed(url: str, messages: dict[str, str], wait_s: float = 10.0) -> None:
    """Wait until the server counts a subscriber on each user's channel, then publish each message."""
    publisher = redis.asyncio.Redis.from_url(url)
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            counts = dict(await publisher.pubsub_numsub(*(channel(u) for u in messages)))
            if all(counts.get(channel(u).encode(), 0) >= 1 for u in messages):
                break
            await asyncio.sleep(0.05)
        for user, data in messages.items():
            await publisher.publish(channel(user), data)
    finally:
        await publisher.aclose()


async def _subscribe_together_then_publish(url: str, users: list[str]) -> dict[str, list[dict]]:
    hub = Hub(url)
    try:
        clients = await asyncio.gather(*(hub.subscribe(u) for u in users))  # all at the same moment
        await _publish_when_subscribed(url, {u: f'{{"post_id": "{u}"}}' for u in users}, wait_s=5)
        got: dict[str, list[dict]] = {u: [] for u in users}
        for u, client in zip(users, clients):
            try:
                got[u].append(await asyncio.wait_for(client.next(), timeout=3))
            except TimeoutError:
                pass
        return got
    finally:
        await hub.close()


@pytest.mark.parametrize("round_", range(5))
def test_clients_subscribing_together_all_receive(redis_url: str, round_: int) -> None:
    users = [f"user{round_}-{i}" for i in range(8)]
    got = asyncio.run(_subscribe_together_then_publish(redis_url, users))
    missed = [u for u, msgs in got.items() if msgs != [{"post_id": u, "type": "feed"}]]
    assert missed == [], f"{len(missed)} of {len(users)} subscribers got no push: {missed}"


def test_a_client_after_the_last_one_left_still_receives(redis_url: str) -> None:
    async def run() -> list[dict]:
        hub = Hub(redis_url)
        try:
            first = await hub.subscribe("solo")
            await hub.unsubscribe("solo", first)
            again = await hub.subscribe("solo")
            await _publish_when_subscribed(redis_url, {"solo": '{"post_id": "x"}'}, wait_s=5)
            return [await asyncio.wait_for(again.next(), timeout=3)]
        finally:
            await hub.close()

    assert asyncio.run(run()) == [{"post_id": "x", "type": "feed"}]


def test_subscriptions_come_back_after_redis_was_down_for_a_while() -> None:
    """A Redis outage longer than the hub's 1 s retry: open WebSockets get pushes again afterwards."""
    (port,) = free_ports(1)
    workdir = tempfile.mkdtemp(prefix="feedstream-hub-")
    url = f"redis://127.0.0.1:{port}/0"
    proc = _start_redis(port, workdir)

    async def run() -> dict:
        nonlocal proc
        hub = Hub(url)
        try:
            client = await hub.subscribe("steady")
            await asyncio.sleep(0.3)
            await asyncio.to_thread(_stop, proc)
            await asyncio.sleep(3.5)  # the pump's first resubscribe fails: Redis is still down
            proc = await asyncio.to_thread(_start_redis, port, workdir)
            await _publish_when_subscribed(url, {"steady": '{"post_id": "after"}'})  # the hub resubscribes by itself
            return await asyncio.wait_for(client.next(), timeout=3)
        finally:
            await hub.close()

    try:
        assert asyncio.run(run()) == {"post_id": "after", "type": "feed"}
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
