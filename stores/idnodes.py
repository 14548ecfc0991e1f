"""Id node leases: which live process issues time-sortable ids as which node (see ``core/ids.py``).

Redis keys:

- ``idnode:{n}``  STRING, the random token of the process holding node ``n``; ``PX`` = the lease TTL

A process takes the first free node with ``SET idnode:{n} token NX PX ttl`` (starting at a random
``n``, so pods starting together rarely race for the same key) and renews it every quarter of the
TTL, only while the key still holds its token (a Lua compare-and-expire). Its generator stops
issuing ids three quarters of a TTL after the start of the last successful renewal, so it has
stopped at least a quarter of a TTL (7.5 s by default, far above clock skew between pods) before
the key can expire and another process take the node. A lost lease (the key gone or someone
else's) stops ids at once; the keeper then tries to lease a node again. No free node, or Redis
unreachable at start, raises :class:`NoIdNode`: the process must not start as node 0.

``FEEDSTREAM_ID_NODE`` (e.g. a StatefulSet pod ordinal) replaces the lease with a fixed node.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable

import redis as _redis

from core import ids
from core.settings import Settings
from stores.redis import client

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def k_idnode(n: int) -> str:
    """Redis key of the lease on id node ``n``."""
    return f"idnode:{n}"


class NoIdNode(RuntimeError):
    """No id node could be leased (all taken, or Redis unreachable): refuse to issue ids."""


class NodeLease:
    """A lease on one id node in Redis: :meth:`acquire`, :meth:`renew`, :meth:`release`."""

    def __init__(self, r: _redis.Redis, node_bits: int, ttl_s: float, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.r, self.node_bits, self.ttl_s = r, node_bits, ttl_s
        self.monotonic = monotonic
        self.token = secrets.token_hex(16)
        self.node: int | None = None
        self.valid_until = 0.0

    @property
    def hold_s(self) -> float:
        """How long after a renewal started ids may still be issued (three quarters of the TTL)."""
        return self.ttl_s * 0.75

    def acquire(self) -> int:
        """Lease the first free node from a random start; raise :class:`NoIdNode` if none is free."""
        size = 1 << self.node_bits
        start = random.randrange(size)
        try:
            for i in range(size):
                n = (start + i) % size
                t0 = self.monotonic()
                if self.r.set(k_idnode(n), self.token, nx=True, px=int(self.ttl_s * 1000)):
                    self.node, self.valid_until = n, t0 + self.hold_s
                    return n
        except _redis.RedisError as exc:
            raise NoIdNode(f"cannot lease an id node: Redis: {exc}") from exc
        raise NoIdNode(f"all {size} id nodes are leased (FEEDSTREAM_ID_NODE_BITS={self.node_bits}); "
                       "refusing to start as a duplicate node")

    def renew(self) -> bool:
        """Extend the lease if this process still holds it; False if it is lost (raises on Redis errors)."""
        if self.node is None:
            return False
        t0 = self.monotonic()
        if self.r.eval(_RENEW, 1, k_idnode(self.node), self.token, int(self.ttl_s * 1000)):
            self.valid_until = t0 + self.hold_s
            return True
        self.node, self.valid_until = None, 0.0
        return False

    def release(self) -> None:
        """Give the node back (only if still ours), so a restart can take it at once."""
        if self.node is not None:
            try:
                self.r.eval(_RELEASE, 1, k_idnode(self.node), self.token)
            except _redis.RedisError:
                log.warning("could not release id node %d; it frees when its lease expires", self.node)
        self.node, self.valid_until = None, 0.0


class NodeKeeper:
    """Holds a :class:`NodeLease` for this process and keeps :mod:`core.ids` configured with it."""

    def __init__(self, lease: NodeLease) -> None:
        self.lease = lease
        self.generator: ids.IdGenerator | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def node(self) -> int | None:
        """The node currently leased (None while lost)."""
        return self.lease.node

    def start(self) -> NodeKeeper:
        """Lease a node (raises :class:`NoIdNode`), configure ids with it and start renewing."""
        self._install(self.lease.acquire())
        self._thread = threading.Thread(target=self._loop, name="id-node-lease", daemon=True)
        self._thread.start()
        return self

    def _install(self, node: int) -> None:
        self.generator = ids.configure(node, self.lease.node_bits, valid_until=self.lease.valid_until)
        log.info("issuing ids as node %d of %d", node, 1 << self.lease.node_bits)

    def _loop(self) -> None:
        while not self._stop.wait(self.lease.ttl_s / 4):
            try:
                self.tick()
            except Exception:  # Redis down: ids stop at the deadline; keep trying
                log.exception("renewing id node %s failed", self.lease.node)

    def tick(self) -> None:
        """One renewal; on a lost lease, stop ids at once and try to lease a node again."""
        gen = self.generator
        if self.lease.node is not None and self.lease.renew():
            if gen is not None:
                gen.hold_until(self.lease.valid_until)
            return
        if gen is not None:
            gen.hold_until(0.0)
        log.error("lost the lease on an id node; ids stop until a node is leased again")
        self._install(self.lease.acquire())

    def stop(self) -> None:
        """Stop renewing, stop issuing ids as the node, and release it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.generator is not None:
            self.generator.hold_until(0.0)
            ids.reset(self.generator)
        self.lease.release()


class FixedNode:
    """A node given by settings (``FEEDSTREAM_ID_NODE``): nothing to renew."""

    def __init__(self, node: int, node_bits: int) -> None:
        self.node = node
        self.generator = ids.configure(node, node_bits)

    def stop(self) -> None:
        """Back to the unconfigured generator."""
        ids.reset(self.generator)


def claim(settings: Settings, r: _redis.Redis | None = None) -> NodeKeeper | FixedNode:
    """Give this process its id node from ``settings`` (fixed) or a Redis lease; ``stop()`` it at exit."""
    if settings.id_node is not None:
        return FixedNode(settings.id_node, settings.id_node_bits)
    lease = NodeLease(r or client(settings), settings.id_node_bits, settings.id_node_lease_ttl_s)
    return NodeKeeper(lease).start()
