"""Cassandra sessions and idempotent schema migration for every view module in :mod:`stores`."""

from __future__ import annotations

import importlib
import pkgutil
import threading
from typing import Any

from cassandra.cluster import Cluster, Session
from cassandra.policies import DCAwareRoundRobinPolicy
from cassandra.query import named_tuple_factory

from core.settings import Settings

_lock = threading.Lock()
_sessions: dict[tuple[str, int, str], Session] = {}
_prepared: dict[tuple[int, str], Any] = {}
_row_types: dict[tuple[str, ...], Any] = {}


def cached_named_tuple_factory(colnames: list[str], rows: list[Any]) -> list[Any]:
    """The driver's ``named_tuple_factory`` with its row class built once per column list.

    The stock factory builds a new ``namedtuple`` class (``exec`` of its source) for every result,
    which cost a worker more CPU than decoding the rows (issue 16); the rows are the same.
    """
    key = tuple(colnames)
    cls = _row_types.get(key)
    if cls is None:
        cls = _row_types[key] = type(named_tuple_factory(colnames, [(None,) * len(colnames)])[0])
    return [cls(*row) for row in rows]


def cluster(settings: Settings) -> Cluster:
    """A driver cluster object for the configured contact points (protocol v5)."""
    return Cluster(settings.cassandra_hosts, port=settings.cassandra_port, protocol_version=5,
                   load_balancing_policy=DCAwareRoundRobinPolicy(), connect_timeout=5)


def session(settings: Settings) -> Session:
    """A shared session bound to the feedstream keyspace (created and migrated on first use)."""
    key = (",".join(settings.cassandra_hosts), settings.cassandra_port, settings.keyspace)
    with _lock:
        if key not in _sessions:
            s = cluster(settings).connect()
            s.row_factory = cached_named_tuple_factory
            migrate(s, settings.keyspace)
            s.set_keyspace(settings.keyspace)
            _sessions[key] = s
        return _sessions[key]


def prepared(session: Session, cql: str) -> Any:
    """``cql`` prepared once per session (cached by ``(id(session), cql)``)."""
    key = (id(session), cql)
    if key not in _prepared:
        _prepared[key] = session.prepare(cql)
    return _prepared[key]


def all_ddl() -> list[str]:
    """Every ``DDL`` statement declared by the view modules of :mod:`stores`, in module order."""
    import stores

    ddl: list[str] = []
    for info in sorted(pkgutil.iter_modules(stores.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"stores.{info.name}")
        ddl.extend(getattr(module, "DDL", []))
    return ddl


def migrate(s: Session, keyspace: str) -> None:
    """Create the keyspace and every table (``IF NOT EXISTS``); safe to run repeatedly."""
    s.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    for stmt in all_ddl():
        s.execute(stmt.replace("{ks}", keyspace))
