"""Test harness: a throwaway stack of the real engines for integration and e2e tests.

By default the session starts its own Kafka, Cassandra, Redis and Apicurio Registry on free
ports with a temporary state dir, and stops them at the end. Set
``FEEDSTREAM_TEST_REUSE_STACK=1`` to use (and, if needed, start) the stack configured by the
usual ``FEEDSTREAM_*`` variables instead — e.g. the one ``make run`` started — for fast loops.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings, get_settings
from ops.local import stack as local_stack

# pytest runs with --import-mode=importlib (no sys.path changes): make ``tests/support`` importable
# as ``support`` for every test module.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.ports import free_ports

_PORT_FIELDS = ("kafka_port", "kafka_controller_port", "cassandra_port", "cassandra_storage_port",
                "redis_port", "registry_port", "registry_management_port", "api_port",
                "opensearch_port", "opensearch_transport_port", "prometheus_port", "minio_port",
                "minio_console_port")
# OpenSearch (~17 s of CPU and ~350 MiB at start) and MinIO start only for the tests that ask for them, and so do
# the optional engines (Prometheus: tests/integration/test_monitoring_stack.py starts and stops it)
SESSION_ENGINES = [n for n, e in local_stack.ENGINES.items() if n not in ("opensearch", "minio") and not e.optional]




def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/unit are unit tests unless they say otherwise."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "unit" in parts and not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.unit)
        elif "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in parts:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    """Settings of a healthy stack of the real engines (throwaway unless reuse is asked)."""
    if os.environ.get("FEEDSTREAM_TEST_REUSE_STACK") == "1":
        settings = get_settings()
        local_stack.up(settings, SESSION_ENGINES)
        yield settings
        return
    state = Path(tempfile.mkdtemp(prefix="feedstream-test-"))
    env = {f"FEEDSTREAM_{f.upper()}": str(p) for f, p in zip(_PORT_FIELDS, free_ports(len(_PORT_FIELDS)))}
    env.update(FEEDSTREAM_STATE_DIR=str(state), FEEDSTREAM_ENV="test",
               FEEDSTREAM_KAFKA_HEAP_MB="512", FEEDSTREAM_CASSANDRA_HEAP_MB="768",
               FEEDSTREAM_WORKER_METRICS_PORT="0")  # workers' /metrics ports: any free one
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # child processes (workers, API) inherit the same stack
    get_settings.cache_clear()
    settings = get_settings()
    try:
        local_stack.up(settings, SESSION_ENGINES)
        yield settings
    finally:
        local_stack.down(settings, echo=lambda *_: None)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
        if os.environ.get("FEEDSTREAM_TEST_KEEP_STATE") != "1":
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def media_stack(stack: Settings) -> Settings:
    """The session stack plus the media object store (MinIO), stopped with the rest at session end."""
    local_stack.up(stack, ["minio"])
    return stack


@pytest.fixture(scope="session")
def search_stack(stack: Settings) -> Settings:
    """The session stack plus a healthy OpenSearch node (stopped with the rest at session end)."""
    local_stack.up(stack, ["opensearch"])
    return stack
