"""The local OpenSearch node: 2.19.6 on the default Java 17, laid out as an OPENSEARCH_HOME.

OpenSearch's server and module jars come from Maven Central (poms ``opensearch*.xml``); the tarball
distribution is not used. :func:`build_home` lays the jars out the way ``distribution/`` does:
``lib/`` (the server), ``modules/<name>/`` (each module's jars minus those already in ``lib/`` —
OpenSearch refuses duplicate classes — plus a generated ``plugin-descriptor.properties`` and the
module's security policy, which the jars do not carry), ``config/``. The JVM flags are those
``bin/opensearch`` and the launcher's system options pass; the heap is capped for a 2-core machine.

Single node, loopback only, no security plugin. The node refuses to run as root, and checks that
through JNA: JNA's native library is kept from loading (``jna.nounpack``), which turns those checks
(root, mlockall, seccomp) into warnings — none of which apply to a loopback development node.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from core.settings import Settings
from ops.local.jars import jars_dir

VERSION = "2.19.6"
SERVER_SET = "opensearch"
# module directory -> (jar set, plugin class, extended plugins, security policy grants)
MODULES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "transport-netty4": (
        "opensearch-transport-netty4", "org.opensearch.transport.Netty4Plugin", "",
        ('java.io.FilePermission "/proc/sys/net/core/somaxconn", "read"',
         'java.net.SocketPermission "*", "accept,connect"',
         'java.lang.RuntimePermission "*", "setContextClassLoader"',
         'java.lang.RuntimePermission "getClassLoader"',
         'java.util.PropertyPermission "sun.nio.ch.bugLevel", "write"')),
    "lang-painless": (
        "opensearch-lang-painless", "org.opensearch.painless.PainlessPlugin", "",
        ('java.lang.RuntimePermission "createClassLoader"',
         'java.lang.RuntimePermission "getClassLoader"')),
    "analysis-common": (  # extends painless (its analysis scripts' whitelist)
        "opensearch-analysis-common", "org.opensearch.analysis.common.CommonAnalysisPlugin",
        "lang-painless", ()),
}
JAR_SETS = (SERVER_SET, *(m[0] for m in MODULES.values()))

LOG4J2 = """status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] %marker%m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
logger.deprecation.name = org.opensearch.deprecation
logger.deprecation.level = error
"""


def descriptor(name: str, classname: str, extended: str) -> str:
    """A module's ``plugin-descriptor.properties`` (the Maven jars do not carry one)."""
    return "\n".join([
        f"description={name} module of OpenSearch {VERSION}", f"version={VERSION}", f"name={name}",
        f"classname={classname}", "java.version=17", f"opensearch.version={VERSION}",
        f"extended.plugins={extended}", "has.native.controller=false", ""])


def policy(grants: tuple[str, ...]) -> str:
    return "grant {\n" + "".join(f"  permission {g};\n" for g in grants) + "};\n"


def node_yaml(s: Settings, data: Path) -> str:
    return "\n".join([
        "cluster.name: feedstream", "node.name: local-1", "discovery.type: single-node",
        f"network.host: {s.host}", f"http.port: {s.opensearch_port}",
        f"transport.port: {s.opensearch_transport_port}",
        f"path.data: {data / 'data'}", f"path.logs: {data / 'logs'}",
        "bootstrap.memory_lock: false",
        "cluster.routing.allocation.disk.threshold_enabled: false",  # a full dev disk must not block writes
        "action.destructive_requires_name: true", ""])


def build_home(s: Settings, data: Path) -> Path:
    """(Re)build ``data/home`` from the fetched jar sets; cheap, done at every start."""
    home = data / "home"
    if home.exists():
        shutil.rmtree(home)
    lib = jars_dir(s.cache_dir, SERVER_SET)
    in_lib = {j.name for j in lib.glob("*.jar")}
    (home / "config").mkdir(parents=True)
    (home / "plugins").mkdir()
    (home / "lib").symlink_to(lib, target_is_directory=True)
    for name, (jar_set, classname, extended, grants) in MODULES.items():
        mod = home / "modules" / name
        mod.mkdir(parents=True)
        for jar in sorted(jars_dir(s.cache_dir, jar_set).glob("*.jar")):
            if jar.name not in in_lib:
                shutil.copy2(jar, mod / jar.name)
        (mod / "plugin-descriptor.properties").write_text(descriptor(name, classname, extended))
        if grants:
            (mod / "plugin-security.policy").write_text(policy(grants))
    (home / "config" / "opensearch.yml").write_text(node_yaml(s, data))
    (home / "config" / "log4j2.properties").write_text(LOG4J2)
    for d in ("data", "logs", "tmp"):
        (data / d).mkdir(exist_ok=True)
    return home


def command(s: Settings, data: Path, g1: list[str]) -> list[str]:
    home = build_home(s, data)
    heap = s.opensearch_heap_mb
    return ["java", f"-Xms{heap}m", f"-Xmx{heap}m", *g1,
            "-XX:G1ReservePercent=25", "-XX:InitiatingHeapOccupancyPercent=30",
            "-Dfile.encoding=UTF-8", "-XX:-OmitStackTraceInFastThrow",
            "-Djna.nosys=true", "-Djna.nounpack=true", "-Djna.boot.library.path=/nonexistent",
            "-Dio.netty.noUnsafe=true", "-Dio.netty.noKeySetOptimization=true",
            "-Dio.netty.recycler.maxCapacityPerThread=0",
            "-Dlog4j.shutdownHookEnabled=false", "-Dlog4j2.disable.jmx=true",
            "-Djava.locale.providers=SPI,COMPAT", f"-Djava.io.tmpdir={data / 'tmp'}",
            f"-Dopensearch.path.home={home}", f"-Dopensearch.path.conf={home / 'config'}",
            "-Dopensearch.distribution.type=tar", "-Dopensearch.bundled_jdk=false",
            "-cp", str(jars_dir(s.cache_dir, SERVER_SET) / "*"), "org.opensearch.bootstrap.OpenSearch"]


def healthy(s: Settings) -> bool:
    import httpx

    try:
        r = httpx.get(f"{s.opensearch_url}/_cluster/health", timeout=2)
        return r.status_code == 200 and r.json().get("status") in ("green", "yellow")
    except (httpx.HTTPError, ValueError):
        return False
