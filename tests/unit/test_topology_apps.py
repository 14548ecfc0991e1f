"""Every Faust topology's ``create_app`` follows one convention (group and offset reset from settings)."""

from __future__ import annotations

import importlib
import inspect

import pytest
from support.serde import mock_serde

from core.settings import Settings

FAUST_TOPOLOGIES = ("fanout", "graph", "engagement", "users", "search", "moderation")
COMMON = ["settings", "app_id", "serde", "broker"]


@pytest.mark.parametrize("name", FAUST_TOPOLOGIES)
def test_create_app_signature_is_uniform(name: str) -> None:
    module = importlib.import_module(f"topologies.{name}.app")
    params = inspect.signature(module.create_app).parameters
    assert list(params)[:len(COMMON)] == COMMON
    assert all(p.kind is p.KEYWORD_ONLY for n, p in params.items() if n != "settings")
    assert callable(module.run)


@pytest.mark.parametrize("name", FAUST_TOPOLOGIES)
def test_group_and_offset_reset_come_from_settings(tmp_path, name: str) -> None:
    module = importlib.import_module(f"topologies.{name}.app")
    settings = Settings(state_dir=tmp_path, topology_group_suffix="-t1", topology_offset_reset="latest")
    app = module.create_app(settings, serde=mock_serde(), broker="kafka://127.0.0.1:1")
    assert app.conf.id == f"feedstream-{name}-t1"
    assert app.conf.consumer_auto_offset_reset == "latest"
    default = module.create_app(Settings(state_dir=tmp_path), serde=mock_serde(),
                                broker="kafka://127.0.0.1:1")
    assert (default.conf.id, default.conf.consumer_auto_offset_reset) == (f"feedstream-{name}", "earliest")
    named = module.create_app(settings, app_id="mine", serde=mock_serde(), broker="kafka://127.0.0.1:1")
    assert named.conf.id == "mine"


@pytest.mark.parametrize("name", FAUST_TOPOLOGIES)
def test_a_worker_started_by_ops_workers_gets_its_group_and_reset(tmp_path, monkeypatch, name: str) -> None:
    """``ops.workers`` passes the group suffix and offset reset as env; the app reads them back."""
    from ops.workers import worker_env

    env = worker_env(Settings(state_dir=tmp_path), topology_group_suffix="-w1", topology_offset_reset="latest")
    for key, value in env.items():
        if key.startswith("FEEDSTREAM_"):
            monkeypatch.setenv(key, value)
    module = importlib.import_module(f"topologies.{name}.app")
    app = module.create_app(Settings(), serde=mock_serde(), broker="kafka://127.0.0.1:1")
    assert (app.conf.id, app.conf.consumer_auto_offset_reset) == (f"feedstream-{name}-w1", "latest")
