"""The local OpenSearch engine's layout: modules beside lib/, no duplicate jars, descriptors, loopback."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from ops.local import engines, jars, opensearch


def _jar_set(cache: Path, name: str, files: list[str]) -> None:
    d = jars.jars_dir(cache, name)
    d.mkdir(parents=True)
    for f in files:
        (d / f).write_bytes(b"PK")


def test_home_lays_out_modules_without_the_server_jars(tmp_path: Path) -> None:
    s = Settings(cache_dir=tmp_path / "cache", opensearch_port=19200, opensearch_transport_port=19300)
    _jar_set(s.cache_dir, "opensearch", ["opensearch-2.19.6.jar", "lucene-core-9.12.3.jar"])
    _jar_set(s.cache_dir, "opensearch-transport-netty4", ["transport-netty4-client-2.19.6.jar", "netty-common.jar"])
    _jar_set(s.cache_dir, "opensearch-lang-painless", ["lang-painless-2.19.6.jar", "lucene-core-9.12.3.jar"])
    _jar_set(s.cache_dir, "opensearch-analysis-common", ["analysis-common-2.19.6.jar"])
    home = opensearch.build_home(s, tmp_path / "state")
    mods = home / "modules"
    assert sorted(p.name for p in mods.iterdir()) == ["analysis-common", "lang-painless", "transport-netty4"]
    assert not (mods / "lang-painless" / "lucene-core-9.12.3.jar").exists()  # jar hell otherwise
    assert (mods / "transport-netty4" / "netty-common.jar").exists()
    desc = (mods / "analysis-common" / "plugin-descriptor.properties").read_text()
    assert "classname=org.opensearch.analysis.common.CommonAnalysisPlugin" in desc
    assert "extended.plugins=lang-painless" in desc
    assert "createClassLoader" in (mods / "lang-painless" / "plugin-security.policy").read_text()
    yml = (home / "config" / "opensearch.yml").read_text()
    assert "network.host: 127.0.0.1" in yml and "discovery.type: single-node" in yml
    assert "http.port: 19200" in yml and "transport.port: 19300" in yml
    assert "security" not in yml


def test_engine_is_registered_with_a_capped_heap(tmp_path: Path) -> None:
    assert set(opensearch.JAR_SETS) <= set(jars.JAR_SETS)
    assert all((jars.POMS / f"{name}.xml").exists() for name in opensearch.JAR_SETS)
    eng = engines.ENGINES["opensearch"]
    s = Settings(opensearch_port=19200, opensearch_transport_port=19300, opensearch_heap_mb=384)
    assert eng.port(s) == 19200 and eng.extra_ports(s) == [19300]
    assert s.opensearch_url == "http://127.0.0.1:19200"
