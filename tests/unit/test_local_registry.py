"""The local Apicurio engine's pure parts: its JDK choice, its properties, unpacking its tarball."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from core.settings import Settings
from ops.local import LocalStackError, configs, engines, jars


def _jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("")
    (home / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n')
    return home


def test_registry_java_is_the_newest_jdk_of_21_or_more(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEEDSTREAM_REGISTRY_JAVA_HOME", raising=False)
    monkeypatch.setattr(engines, "JVM_DIR", tmp_path)
    _jdk(tmp_path, "java-17", "17.0.15")
    with pytest.raises(LocalStackError, match="needs Java 21"):
        engines.registry_java()
    _jdk(tmp_path, "jdk-21", "21.0.8")
    newest = _jdk(tmp_path, "temurin-25", "25.0.1")
    assert engines.registry_java() == str(newest / "bin" / "java")
    monkeypatch.setenv("FEEDSTREAM_REGISTRY_JAVA_HOME", str(tmp_path / "java-17"))
    with pytest.raises(LocalStackError):  # an explicit home too old is refused, not bypassed
        engines.registry_java()


def test_apicurio_binds_api_and_management_to_the_host_on_kafkasql(tmp_path: Path) -> None:
    s = Settings(host="127.0.0.1", registry_port=18081, registry_management_port=18091, kafka_port=19092)
    props = configs.apicurio_properties(s, tmp_path)
    assert props["quarkus.http.host"] == props["quarkus.management.host"] == "127.0.0.1"
    assert (props["quarkus.http.port"], props["quarkus.management.port"]) == ("18081", "18091")
    assert props["apicurio.storage.kind"] == "kafkasql"
    assert props["apicurio.kafkasql.bootstrap.servers"] == s.kafka_bootstrap
    assert props["apicurio.kafkasql.topic"] == "kafkasql-journal"
    assert s.registry_url == "http://127.0.0.1:18081/apis/ccompat/v7"


def test_unpack_extracts_the_distribution_and_drops_the_tarball(tmp_path: Path) -> None:
    tarball = tmp_path / "apicurio-registry-app-3.3.3-all.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        data = b"manifest"
        info = tarfile.TarInfo("quarkus-run.jar")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        evil = tarfile.TarInfo("../escaped.txt")
        evil.size = 1
        tar.addfile(evil, io.BytesIO(b"x"))
    with pytest.raises(tarfile.OutsideDestinationError):  # the data filter refuses path escapes
        jars._unpack(tmp_path)
    assert not (tmp_path.parent / "escaped.txt").exists()
    tarball.unlink()
    with tarfile.open(tarball, "w:gz") as tar:
        info = tarfile.TarInfo("quarkus-run.jar")
        info.size = 8
        tar.addfile(info, io.BytesIO(b"manifest"))
    jars._unpack(tmp_path)
    assert (tmp_path / "quarkus-run.jar").read_bytes() == b"manifest" and not tarball.exists()
    assert "apicurio" in jars.JAR_SETS and (jars.POMS / "apicurio.xml").exists()
