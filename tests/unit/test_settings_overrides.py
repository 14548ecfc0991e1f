"""``with_overrides`` sets fields read from aliased variables and refuses unknown names."""

from __future__ import annotations

import pytest

from core.settings import Settings, with_overrides


def test_an_aliased_field_is_overridden_by_its_name() -> None:
    base = Settings()
    s = with_overrides(base, redis_cluster_nodes="127.0.0.1:7001,127.0.0.1:7002", celebrity_threshold=7)
    assert s.redis_cluster_nodes == "127.0.0.1:7001,127.0.0.1:7002"
    assert s.celebrity_threshold == 7
    assert s.keyspace == base.keyspace  # the rest is kept


def test_an_unknown_name_is_an_error_not_ignored() -> None:
    with pytest.raises(TypeError, match="celebrity_treshold"):
        with_overrides(Settings(), celebrity_treshold=3)
