"""Unit tests: the local Kafka's jars live in a directory named by the pom's version, so a version
switch fetches into a new directory and never rewrites jars a running older stack uses (issue 14)."""

from __future__ import annotations

import re
from pathlib import Path

from ops.local import configs, jars


def pom_version() -> str:
    pom = (jars.POMS / "kafka.xml").read_text()
    found = re.search(r"<artifactId>kafka_2\.13</artifactId><version>([^<]+)</version>", pom)
    assert found, "kafka_2.13 not in the kafka pom"
    return found.group(1)


def test_the_kafka_jar_dir_is_named_by_the_pom_version(tmp_path: Path) -> None:
    assert pom_version().startswith("4.")
    assert jars.jars_dir(tmp_path, "kafka") == tmp_path / "jars" / f"kafka-{pom_version()}"
    assert jars.jars_dir(tmp_path, "cassandra") == tmp_path / "jars" / "cassandra"  # unversioned sets


def test_kafka_4_logs_through_log4j2() -> None:
    pom = (jars.POMS / "kafka.xml").read_text()
    assert "reload4j" not in pom and "log4j-slf4j-impl" in pom  # Kafka 4 dropped log4j 1
    assert "rootLogger.appenderRef" in configs.KAFKA_LOG4J and "log4j.rootLogger" not in configs.KAFKA_LOG4J
