"""Fetch each engine's jars from Maven Central with the committed poms, into the cache dir.

Apicurio Registry ships as a Quarkus distribution (a tar.gz, not jars): the same pom mechanism
fetches it (Maven checks its published checksum), then it is unpacked in place.
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
import time
from pathlib import Path

from ops.local.errors import LocalStackError
from ops.local.prereqs import ensure

POMS = Path(__file__).resolve().parent / "poms"
JAR_SETS = ("kafka", "cassandra", "flink", "flink-metrics", "apicurio", "opensearch",
            "opensearch-transport-netty4", "opensearch-analysis-common", "opensearch-lang-painless")
DISTS = ("apicurio",)  # sets whose artifact is a tar.gz to unpack
# Sets whose directory carries the engine version: a version switch fetches into a new directory
# and never rewrites the jars another stack (an older checkout) may be running from.
VERSIONED = {"kafka": "kafka-4.2.0"}


def jars_dir(cache_dir: Path, name: str) -> Path:
    """Directory holding the jars of one set (``kafka``, ``cassandra``, ``flink``, ``apicurio``)."""
    return cache_dir / "jars" / VERSIONED.get(name, name)


def _stamp(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()[:16]


def _run_with_progress(cmd: list[str], out: Path, name: str, echo, every_s: float = 10.0,
                       ) -> subprocess.CompletedProcess[str]:
    """Run Maven, saying every ``every_s`` how many files it has copied into ``out`` so far."""
    t0 = time.monotonic()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        while True:
            try:
                stdout, stderr = proc.communicate(timeout=every_s)
                break
            except subprocess.TimeoutExpired:
                files = sum(1 for _ in out.iterdir())
                echo(f"  … {name}: {files} files so far ({time.monotonic() - t0:.0f}s)")
    echo(f"  {name}: done in {time.monotonic() - t0:.0f}s")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def fetch(cache_dir: Path, name: str, echo=print) -> Path:
    """Copy the jars of ``name`` (and, except for Flink's shaded jars, their dependencies)."""
    pom = POMS / f"{name}.xml"
    out = jars_dir(cache_dir, name)
    stamp_file = out / ".stamp"
    if stamp_file.exists() and stamp_file.read_text() == _stamp(pom):
        return out
    ensure(["java", "mvn"], echo=echo)
    echo(f"fetching {name} jars from Maven Central into {out} …")
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={out}",
    ]
    if name in DISTS:  # a whole distribution: refuse it unless its published checksum matches
        cmd.append("--strict-checksums")
    if name in ("flink", "flink-metrics"):  # shaded jars; their transitive deps are provided
        cmd.append("-DexcludeTransitive=true")
    proc = _run_with_progress(cmd, out, name, echo)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise LocalStackError(
            f"Maven could not fetch the {name} jars (pom {pom}). Check network access to "
            f"Maven Central and ~/.m2/settings.xml. Last output:\n{tail}"
        )
    if name in DISTS:
        _unpack(out)
    stamp_file.write_text(_stamp(pom))
    return out


def _unpack(out: Path) -> None:
    """Unpack the fetched tarball(s) into ``out`` (safe member filter), then drop the tarball."""
    for tarball in sorted(out.glob("*.tar.gz")):
        with tarfile.open(tarball) as tar:
            tar.extractall(out, filter="data")
        tarball.unlink()


def fetch_all(cache_dir: Path, echo=print) -> dict[str, Path]:
    """Fetch every jar set; a no-op for sets already fetched from the same pom."""
    return {name: fetch(cache_dir, name, echo=echo) for name in JAR_SETS}
