"""Deployment files (docker/, k8s/) agree with the code: settings, CLI, modules, topic catalog."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from core.settings import PLACEHOLDER_SECRET, PlaceholderSecret, Settings
from streams import catalog

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
K8S = REPO / "k8s"
YAML_FILES = sorted([*DOCKER.rglob("*.yml"), *DOCKER.rglob("*.yaml"), *K8S.rglob("*.yaml")])
KUSTOMIZATIONS = sorted(K8S.rglob("kustomization.yaml"))
OUR_IMAGES = ("feedstream", "feedstream-flink")
ENV_REF = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _gen_topics():
    spec = importlib.util.spec_from_file_location("k8s_gen_topics", K8S / "gen_topics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yml").read_text())


def _interpolate(value: str) -> str:
    """Resolve compose's ``${VAR:-default}`` to its default (what an empty shell gives)."""
    return ENV_REF.sub(lambda m: m.group(2) or "", value)


def _k8s_resources(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(root.rglob("*.yaml")):
        if path.name in ("kustomization.yaml", "kustomizeconfig.yaml"):
            continue
        out.extend((path, d) for d in _docs(path))
    return out


def _pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "Job"):
        return [spec["template"]["spec"]]
    return []


def _settings_env_names() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {field.alias or f"{prefix}{name}".upper() for name, field in Settings.model_fields.items()}


def _env_names_read_by_code() -> set[str]:
    pattern = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["'](FEEDSTREAM_[A-Z0-9_]+)""")
    names = set()
    for pkg in ("core", "streams", "stores", "models", "topologies", "serving", "ops", "feedstream"):
        for path in (REPO / pkg).rglob("*.py"):
            names.update(pattern.findall(path.read_text()))
    return names


# ---------------------------------------------------------------- parsing and references
@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_parses(path: Path) -> None:
    docs = _docs(path)
    assert docs, f"{path} is empty"
    if path.is_relative_to(K8S) and path.name not in ("kustomization.yaml", "kustomizeconfig.yaml"):
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), (path, doc)
            assert doc.get("metadata", {}).get("name"), (path, doc)


def test_yaml_files_were_found() -> None:
    names = {p.relative_to(REPO).as_posix() for p in YAML_FILES}
    assert {"docker/compose.yml", "k8s/base/kustomization.yaml",
            "k8s/overlays/dev/kustomization.yaml", "k8s/overlays/prod/kustomization.yaml"} <= names


@pytest.mark.parametrize("kfile", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(REPO)))
def test_kustomization_references_exist(kfile: Path) -> None:
    k = yaml.safe_load(kfile.read_text())
    here = kfile.parent
    for ref in k.get("resources", []):
        target = (here / ref).resolve()
        assert target.exists(), f"{kfile}: resource {ref} does not exist"
        if target.is_dir():
            assert (target / "kustomization.yaml").exists(), f"{kfile}: {ref} is not a kustomization"
    for patch in k.get("patches", []):
        if "path" in patch:
            assert (here / patch["path"]).exists(), f"{kfile}: patch {patch['path']} does not exist"
        else:
            assert patch.get("patch") and patch.get("target"), f"{kfile}: inline patch needs target"
    for ref in k.get("configurations", []):
        assert (here / ref).exists(), f"{kfile}: configuration {ref} does not exist"
    listed = {(here / r).resolve() for r in k.get("resources", [])}
    patched = {(here / p["path"]).resolve() for p in k.get("patches", []) if "path" in p}
    strays = [p for p in here.glob("*.yaml") if p.name not in ("kustomization.yaml", "kustomizeconfig.yaml")
              and p.resolve() not in listed | patched]
    assert not strays, f"{kfile}: files not referenced by the kustomization: {strays}"


def test_overlay_patches_and_replicas_target_base_objects() -> None:
    base = {(d["kind"], d["metadata"]["name"]) for _, d in _k8s_resources(K8S / "base")}
    for overlay in ("dev", "prod"):
        here = K8S / "overlays" / overlay
        k = yaml.safe_load((here / "kustomization.yaml").read_text())
        for patch in k.get("patches", []):
            if "path" in patch:
                for doc in _docs(here / patch["path"]):
                    assert (doc["kind"], doc["metadata"]["name"]) in base, (overlay, patch["path"], doc["kind"])
            else:
                t = patch["target"]
                assert any(kind == t["kind"] and ("name" not in t or name == t["name"])
                           for kind, name in base), (overlay, t)
        for r in k.get("replicas", []):
            assert any(name == r["name"] and kind in ("Deployment", "StatefulSet") for kind, name in base), r


# ---------------------------------------------------------------- topics
def test_topics_file_is_in_sync_with_the_catalog() -> None:
    gen = _gen_topics()
    path = K8S / "base" / "kafka-topics.yaml"
    text = path.read_text()
    partitions, replication = gen.header_args(text)
    assert text == gen.render(partitions, replication), "run: .venv/bin/python k8s/gen_topics.py"
    docs = {d["spec"]["topicName"]: d for d in yaml.safe_load_all(text) if d}
    assert set(docs) == {t.name for t in catalog.ALL_TOPICS}
    for topic in catalog.ALL_TOPICS:
        spec = docs[topic.name]["spec"]
        assert docs[topic.name]["kind"] == "KafkaTopic"
        assert docs[topic.name]["metadata"]["labels"]["strimzi.io/cluster"] == "feedstream"
        assert spec["partitions"] >= (topic.partitions or 1)
        if topic.partitions is None:
            assert spec["partitions"] == partitions
        assert spec["replicas"] == (topic.replication or replication)
        assert spec["config"]["cleanup.policy"] == topic.cleanup_policy
        assert int(spec["config"]["retention.ms"]) == topic.retention_ms
    for group in getattr(catalog, "COPARTITIONED", ()):
        assert len({docs[t.name]["spec"]["partitions"] for t in group}) == 1, group


def test_topics_are_production_sized_and_named_validly() -> None:
    gen = _gen_topics()
    partitions, replication = gen.header_args((K8S / "base" / "kafka-topics.yaml").read_text())
    assert partitions >= 12 and replication == 3
    names = [gen.resource_name(t.name) for t in catalog.ALL_TOPICS]
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", name), name


def test_generator_follows_its_arguments_and_check_flags_stale_files(tmp_path: Path) -> None:
    gen = _gen_topics()
    docs = [d for d in yaml.safe_load_all(gen.render(6, 2)) if d]
    by_name = {d["spec"]["topicName"]: d["spec"] for d in docs}
    assert by_name["posts.v1"]["partitions"] == 6 and by_name["posts.v1"]["replicas"] == 2
    assert by_name["kafkasql-journal"]["partitions"] == 1  # the catalog's own count wins
    out = tmp_path / "topics.yaml"
    assert gen.main(["--partitions", "6", "--replication", "2", "--out", str(out)]) == 0
    assert gen.main(["--check", "--out", str(out)]) == 0
    out.write_text(out.read_text().replace("compact", "delete"))
    assert gen.main(["--check", "--out", str(out)]) == 1


# ---------------------------------------------------------------- configuration
def test_every_feedstream_env_var_is_read_by_the_code() -> None:
    accepted = _settings_env_names() | _env_names_read_by_code()
    used: dict[str, set[str]] = {}
    for path in sorted(p for p in [*DOCKER.iterdir(), *K8S.rglob("*")] if p.is_file()):
        if path.suffix in (".yaml", ".yml", "") or path.name.startswith("Dockerfile"):
            for name in re.findall(r"\bFEEDSTREAM_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()):
                used.setdefault(name, set()).add(str(path.relative_to(REPO)))
    assert {"FEEDSTREAM_KAFKA_BOOTSTRAP", "FEEDSTREAM_JWT_SECRET", "FEEDSTREAM_ENV"} <= set(used)
    unknown = {name: files for name, files in used.items() if name not in accepted}
    assert not unknown, f"FEEDSTREAM_* names no settings class or code reads: {unknown}"


def test_compose_environment_builds_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: _interpolate(str(v)) for k, v in _compose()["x-feedstream-env"].items()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert s.kafka_bootstrap == "kafka:9092"
    assert s.registry_url == "http://registry:8081/apis/ccompat/v7"
    assert s.redis_url == "redis://redis:6379/0"
    assert s.cassandra_hosts == ["cassandra"]
    monkeypatch.setenv("FEEDSTREAM_ENV", "production")
    with pytest.raises(PlaceholderSecret, match="placeholder"):
        Settings().signing_secret()


def _configmap(render_root: Path, name: str) -> dict[str, str]:
    for _, doc in _k8s_resources(render_root):
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == name:
            return doc["data"]
    raise AssertionError(f"no ConfigMap {name} under {render_root}")


def test_k8s_config_refuses_the_placeholder_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    base = _configmap(K8S / "base", "feedstream-config")
    secret = next(d for _, d in _k8s_resources(K8S / "base") if d["kind"] == "Secret")
    assert secret["stringData"]["FEEDSTREAM_JWT_SECRET"] == PLACEHOLDER_SECRET
    for key, value in {**base, **secret["stringData"]}.items():
        monkeypatch.setenv(key, str(value))
    assert base["FEEDSTREAM_ENV"] == "production"
    with pytest.raises(PlaceholderSecret, match="placeholder"):
        Settings().signing_secret()
    dev = _configmap(K8S / "overlays" / "dev", "feedstream-config")
    for key, value in dev.items():
        monkeypatch.setenv(key, str(value))
    s = Settings()  # development accepts the placeholder
    assert s.env == "development" and s.cassandra_hosts == ["cassandra-0.cassandra"]
    monkeypatch.setenv("FEEDSTREAM_ENV", "production")
    monkeypatch.setenv("FEEDSTREAM_JWT_SECRET", "a" * 64)
    for key, value in base.items():
        monkeypatch.setenv(key, str(value))
    s = Settings()
    assert s.kafka_bootstrap == "feedstream-kafka-bootstrap:9092" and len(s.cassandra_hosts) == 3
    assert s.topic_partitions == 12 and s.topic_replication == 3


# ---------------------------------------------------------------- commands exist
def _check_argv(argv: list[str], where: str) -> None:
    """``python -m MODULE ...`` must name a runnable module; ``feedstream ...`` a valid CLI call."""
    if argv[:2] == ["python", "-m"]:
        module = argv[2]
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"{where}: no module {module}"
        if spec.submodule_search_locations:  # a package: needs __main__
            assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{where}: {module}"
        else:
            assert 'if __name__ == "__main__"' in Path(spec.origin).read_text(), f"{where}: {module}"
        return
    assert argv[0] == "feedstream", f"{where}: unexpected program {argv}"
    from feedstream.cli import app

    cmd = typer.main.get_command(app)  # typer may vendor its own click: duck-type groups
    args = argv[1:]
    while hasattr(cmd, "commands"):
        assert args and args[0] in cmd.commands, f"{where}: no command {args[:1]} in {sorted(cmd.commands)}"
        cmd, args = cmd.commands[args[0]], args[1:]
    assert hasattr(cmd, "make_context") and cmd.callback is not None, f"{where}: {argv} is not a command"
    try:
        cmd.make_context(" ".join(argv), list(args))
    except Exception as exc:  # click's UsageError/BadParameter (whichever click typer uses)
        raise AssertionError(f"{where}: {argv} does not parse: {exc}") from exc


def _compose_argvs() -> list[tuple[str, list[str]]]:
    out = []
    for name, svc in _compose()["services"].items():
        if not str(svc.get("image", "")).startswith("${IMAGE_FEEDSTREAM"):
            continue
        entry = svc.get("entrypoint") or ["feedstream"]
        out.append((name, [*entry, *svc.get("command", [])]))
    return out


@pytest.mark.parametrize("name,argv", _compose_argvs(), ids=[n for n, _ in _compose_argvs()])
def test_compose_commands_exist(name: str, argv: list[str]) -> None:
    _check_argv(argv, f"compose service {name}")


def test_compose_runs_every_topology_the_cli_knows() -> None:
    from feedstream.commands.topology import TopologyName

    run = {argv[-1] for _, argv in _compose_argvs() if argv[1:3] == ["topology", "run"]}
    assert run == {t.value for t in TopologyName}


def _k8s_argvs() -> list[tuple[str, list[str]]]:
    out = []
    for path, doc in _k8s_resources(K8S / "base"):
        for pod in _pod_specs(doc):
            for c in [*pod.get("initContainers", []), *pod.get("containers", [])]:
                if c["image"] in OUR_IMAGES:
                    argv = [*(c.get("command") or ["feedstream"]), *c.get("args", [])]
                    out.append((f"{doc['kind']}/{doc['metadata']['name']}/{c['name']}", argv))
        if doc["kind"] == "FlinkDeployment":
            args = doc["spec"]["job"]["args"]
            i = args.index("-pym")
            out.append((f"FlinkDeployment/{doc['metadata']['name']}", ["python", "-m", *args[i + 1:]]))
            out.append((f"FlinkDeployment/{doc['metadata']['name']}/cli", ["feedstream", *args[i + 2:]]))
    return out


@pytest.mark.parametrize("where,argv", _k8s_argvs(), ids=[w for w, _ in _k8s_argvs()])
def test_k8s_commands_exist(where: str, argv: list[str]) -> None:
    if argv[0] == "python" and argv[1].startswith("/scripts/"):
        scripts = _configmap(K8S / "base", "feedstream-scripts")
        name = argv[1].removeprefix("/scripts/")
        assert name in scripts, f"{where}: {name} not in ConfigMap feedstream-scripts"
        compile(scripts[name], name, "exec")
        return
    _check_argv(argv, where)


def test_compose_dependencies_wait_for_health() -> None:
    services = _compose()["services"]
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions"
        for dep, cond in deps.items():
            assert dep in services, (name, dep)
            assert cond["condition"] in ("service_healthy", "service_completed_successfully"), (name, dep)
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck but {name} waits on it"
        if name.startswith("topology-") or name == "api":
            assert deps.get("topics", {}).get("condition") == "service_completed_successfully", name
    assert services["topics"]["command"][:2] == ["topics", "apply"]
    assert "release_version FROM system.local" in str(services["cassandra"]["healthcheck"]["test"])
    assert "PONG" in str(services["redis"]["healthcheck"]["test"])
    for name, svc in services.items():  # heaps capped
        assert svc.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory"), name


def test_engine_images_are_the_supported_versions() -> None:
    services = _compose()["services"]
    assert services["cassandra"]["image"] == "cassandra:5.0"
    assert services["redis"]["image"].startswith("redis:7")
    kafka = next(d for _, d in _k8s_resources(K8S / "base") if d["kind"] == "Kafka")
    # Strimzi's v1 API (Strimzi 1.x) runs Kafka 4.x only; compose and the local stack run the same
    # Kafka (issue 14: local 3.9 vs Strimzi 4.2)
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1"
    version = kafka["spec"]["kafka"]["version"]
    assert version.startswith("4.")
    assert services["kafka"]["image"] == f"apache/kafka:{version}"
    pom = (REPO / "ops" / "local" / "poms" / "kafka.xml").read_text()
    assert re.search(rf"<artifactId>kafka_2\.13</artifactId><version>{re.escape(version)}</version>", pom)
    pool = next(d for _, d in _k8s_resources(K8S / "base") if d["kind"] == "KafkaNodePool")
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"controller", "broker"}


def test_api_probes_hit_routes_the_api_serves() -> None:
    api = next(d for _, d in _k8s_resources(K8S / "base") if d["kind"] == "Deployment"
               and d["metadata"]["name"] == "api")
    c = api["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    source = "\n".join(p.read_text() for p in (REPO / "serving").rglob("*.py"))
    for path in ("/readyz", "/healthz", "/metrics"):
        assert f'"{path}"' in source, f"the API serves no {path}"


def test_workers_never_outnumber_partitions() -> None:
    partitions = int(_configmap(K8S / "base", "feedstream-config")["FEEDSTREAM_TOPIC_PARTITIONS"])
    registry = None
    for _, doc in _k8s_resources(K8S / "base"):
        if doc["kind"] == "Deployment" and doc["metadata"]["name"].startswith("topology-"):
            assert 1 <= doc["spec"]["replicas"] <= partitions, doc["metadata"]["name"]
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "registry":
            registry = doc
    # Apicurio on KafkaSQL: no single writer, so more than one replica and rolling updates
    assert registry["spec"]["replicas"] > 1 and registry["spec"]["strategy"]["type"] == "RollingUpdate"


def test_registry_is_apicurio_on_kafkasql_with_authenticated_writes_in_prod() -> None:
    def registry_env(root: Path) -> dict[str, str]:
        built = subprocess.run(["kubectl", "kustomize", str(root)], capture_output=True, text=True,
                               check=True, timeout=60).stdout
        dep = next(d for d in yaml.safe_load_all(built) if d and d["kind"] == "Deployment"
                   and d["metadata"]["name"] == "registry")
        c = dep["spec"]["template"]["spec"]["containers"][0]
        assert re.fullmatch(r"quay\.io/apicurio/apicurio-registry:3\.\d+\.\d+", c["image"])
        return {e["name"]: e.get("value", "<from secret>") for e in c["env"]}

    compose = _compose()["services"]["registry"]
    assert compose["image"].startswith("quay.io/apicurio/apicurio-registry:3.")
    assert compose["environment"]["APICURIO_STORAGE_KIND"] == "kafkasql"
    assert compose["ports"] == ["127.0.0.1:8081:8081"]
    assert _configmap(K8S / "base", "feedstream-config")["FEEDSTREAM_REGISTRY_URL"].endswith("/apis/ccompat/v7")
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (kustomize) not installed")
    base, prod = registry_env(K8S / "base"), registry_env(K8S / "overlays" / "prod")
    assert base["APICURIO_STORAGE_KIND"] == prod["APICURIO_STORAGE_KIND"] == "kafkasql"
    assert base["APICURIO_KAFKASQL_TOPIC"] == catalog.REGISTRY_JOURNAL.name
    assert "QUARKUS_OIDC_TENANT_ENABLED" not in base
    assert prod["QUARKUS_OIDC_TENANT_ENABLED"] == "true" and prod["QUARKUS_OIDC_AUTH_SERVER_URL"] == "<from secret>"
    assert prod["APICURIO_AUTH_ANONYMOUS_READ_ACCESS_ENABLED"] == "true"  # readers need no secret


# ---------------------------------------------------------------- images
def _dockerfile(name: str) -> str:
    return (DOCKER / name).read_text()


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.flink"])
def test_dockerfile_inputs_exist_and_context_has_every_package(name: str) -> None:
    text = _dockerfile(name)
    for src in re.findall(r"^COPY (?!--from)(?:--\S+ )*(\S+) ", text, flags=re.MULTILINE):
        if src != ".":
            assert (REPO / src).exists(), f"{name}: COPY {src} does not exist"
    ignore = (DOCKER / f"{name}.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    pyproject = (REPO / "pyproject.toml").read_text()
    packages = re.search(r'include = \[([^\]]*)\]', pyproject).group(1)
    for pkg in re.findall(r'"(\w+)\*"', packages):
        assert pkg in allowed, f"{name}.dockerignore drops package {pkg}"
    assert {"pyproject.toml", "requirements.lock", "schemas"} <= allowed
    from streams.schemas import SCHEMA_DIR

    rel = SCHEMA_DIR.relative_to(REPO).as_posix()
    assert f"cp -r /src/{rel} " in text, f"{name} does not install {rel} next to the code"
    assert "pip install -r /tmp/requirements.lock" in text and "pip install --no-deps /src" in text
    assert "ops/local/poms/flink.xml" in text and "dependency:copy-dependencies" in text


def test_platform_image_runs_feedstream_as_non_root() -> None:
    text = _dockerfile("Dockerfile")
    assert "FROM ${PYTHON_IMAGE}" in text and "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in text
    assert "openjdk-17-jre-headless" in text
    assert re.search(r'^USER feedstream$', text, flags=re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \[.*"feedstream"\]$', text, flags=re.MULTILINE)


def test_flink_versions_agree() -> None:
    lock = (REPO / "requirements.lock").read_text()
    pyflink = re.search(r"^apache-flink==(\S+)$", lock, flags=re.MULTILINE).group(1)
    text = _dockerfile("Dockerfile.flink")
    image = re.search(r"ARG FLINK_IMAGE=flink:(\S+)", text).group(1)
    assert image.startswith(f"{pyflink}-") and "java17" in image, (pyflink, image)
    pom = (REPO / "ops" / "local" / "poms" / "flink.xml").read_text()
    minor = ".".join(pyflink.split(".")[:2])
    assert re.search(rf"<artifactId>flink-sql-connector-kafka</artifactId><version>[\d.]+-{minor}</version>", pom)
    assert re.search(rf"<artifactId>flink-sql-avro-confluent-registry</artifactId><version>{minor}\.\d+</version>", pom)
    flink = next(d for _, d in _k8s_resources(K8S / "base") if d["kind"] == "FlinkDeployment")
    assert flink["spec"]["image"] == "feedstream-flink"
    assert flink["spec"]["job"]["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    python = flink["spec"]["flinkConfiguration"]["python.executable"]
    assert python.startswith("/opt/venv/") and "/opt/venv" in text
    assert flink["spec"]["job"]["jarURI"] == "local:///opt/flink/opt/flink-python.jar"
    assert "/opt/flink/opt/flink-python.jar" in text


# ---------------------------------------------------------------- kustomize (when available)
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
@pytest.mark.parametrize("target", ["base", "overlays/dev", "overlays/prod", "overlays/prod-redis-cluster"])
def test_kustomize_builds(target: str) -> None:
    proc = subprocess.run(["kubectl", "kustomize", str(K8S / target)], capture_output=True, text=True, check=False,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert all(d["metadata"].get("namespace") == "feedstream" for d in docs if d["kind"] != "Namespace")
    images = [c["image"] for d in docs for pod in _pod_specs(d) for c in
              [*pod.get("initContainers", []), *pod.get("containers", [])]]
    images += [d["spec"]["image"] for d in docs if d["kind"] == "FlinkDeployment"]
    assert images and all(":" in i for i in images), images
    secrets = [d for d in docs if d["kind"] == "Secret"]
    if target.startswith("overlays/prod"):
        assert not secrets, "prod must not render the placeholder JWT and media Secrets"
    else:
        assert sorted(s["metadata"]["name"] for s in secrets) == ["feedstream-jwt", "feedstream-media"]
    topics = [d for d in docs if d["kind"] == "KafkaTopic"]
    assert len(topics) == len(catalog.ALL_TOPICS)
    if target == "overlays/dev":
        assert {t["spec"]["replicas"] for t in topics} == {1}



# ------------------------------------------------- kubeconform against the operators' CRD schemas
def _deploy_tools() -> dict[str, str]:
    """Run scripts/fetch_deploy_tools.sh (idempotent, cached); skip where a tool can't be had."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (kustomize) not installed")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "fetch_deploy_tools.sh")],
                          capture_output=True, text=True, check=False, timeout=900)
    if proc.returncode == 3:
        reason = proc.stderr.strip().splitlines()[-1]
        print(reason)
        pytest.skip(reason)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def deploy_tools() -> dict[str, str]:
    return _deploy_tools()


def _kubeconform(tools: dict[str, str], manifests: str) -> subprocess.CompletedProcess[str]:
    k8s = f"{tools['K8S_SCHEMAS']}/v{tools['K8S_VERSION']}-local-strict"
    return subprocess.run(
        [tools["KUBECONFORM"], "-strict", "-summary", "-output", "text",
         "-schema-location", k8s + "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
         "-schema-location", tools["CRD_SCHEMAS"] + "/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
         "-"],
        input=manifests, capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.parametrize("target", ["base", "overlays/dev", "overlays/prod", "overlays/prod-redis-cluster"])
def test_manifests_validate_against_kubernetes_and_operator_schemas(target: str, deploy_tools) -> None:
    """Every rendered object, Strimzi's and the Flink operator's included, fits its schema
    (strict: an unknown field fails); no kind is skipped for want of a schema."""
    built = subprocess.run(["kubectl", "kustomize", str(K8S / target)], capture_output=True,
                           text=True, check=True, timeout=60).stdout
    proc = _kubeconform(deploy_tools, built)
    print(deploy_tools.get("VERSIONS", ""), proc.stdout[-400:])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(built) if d}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "FlinkDeployment"} <= kinds
    n = len([d for d in yaml.safe_load_all(built) if d])
    assert f"Valid: {n}, Invalid: 0, Errors: 0, Skipped: 0" in proc.stdout


def test_kubeconform_rejects_what_the_operators_would_not_serve(deploy_tools) -> None:
    """The check has teeth: Strimzi's removed v1beta2 API, a field v1 dropped, a typo'd probe field."""
    bad = [
        {"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic", "metadata": {"name": "t"},
         "spec": {"partitions": 1, "replicas": 1}},
        {"apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka", "metadata": {"name": "k"},
         "spec": {"kafka": {"replicas": 3, "listeners": [
             {"name": "plain", "port": 9092, "type": "internal", "tls": False}]}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
         "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
             "metadata": {"labels": {"a": "b"}},
             "spec": {"containers": [{"name": "c", "image": "i",
                                      "livenessProbe": {"exec": {"command": ["x"]}, "periodSecond": 5}}]}}}},
    ]
    for doc in bad:
        proc = _kubeconform(deploy_tools, yaml.safe_dump(doc))
        assert proc.returncode != 0, (doc["kind"], proc.stdout)


# ---------------------------------------------------------------- issue 14: deployment gaps
def _faust_topologies() -> set[str]:
    """Topology packages with a Faust app (every package under topologies/ but the PyFlink job)."""
    return {p.parent.name for p in (REPO / "topologies").glob("*/app.py")} - {"trending"}


def test_every_faust_topology_runs_as_a_k8s_worker() -> None:
    args = {tuple(c.get("args") or ()) for _, d in _k8s_resources(K8S / "base") if d["kind"] == "Deployment"
            for c in d["spec"]["template"]["spec"]["containers"]}
    missing = {n for n in _faust_topologies() if ("topology", "run", n) not in args}
    assert _faust_topologies() >= {"graph", "fanout", "engagement", "users"}
    assert not missing, f"no k8s Deployment runs `feedstream topology run` for {sorted(missing)}"
    dev = yaml.safe_load((K8S / "overlays" / "dev" / "kustomization.yaml").read_text())
    assert {f"topology-{n}" for n in _faust_topologies()} <= {r["name"] for r in dev["replicas"]}


def test_every_worker_has_progress_probes() -> None:
    """A hung worker is restarted: each worker Deployment probes its /livez and /readyz and is scraped."""
    workers = [d for _, d in _k8s_resources(K8S / "base") if d["kind"] == "Deployment"
               and d["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"]
    assert {d["metadata"]["name"] for d in workers} == {f"topology-{n}" for n in _faust_topologies()}
    config = _configmap(K8S / "base", "feedstream-config")
    port = int(config["FEEDSTREAM_WORKER_METRICS_PORT"])
    assert Settings(worker_metrics_port=port, worker_metrics_bind_all=config[
        "FEEDSTREAM_WORKER_METRICS_BIND_ALL"]).worker_metrics_bind_all
    source = (REPO / "topologies" / "metrics.py").read_text()
    for d in workers:
        template = d["spec"]["template"]
        (c,) = template["spec"]["containers"]
        assert {"name": "metrics", "containerPort": port} in c["ports"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == str(port)
        for probe, path in (("startupProbe", "/readyz"), ("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
            assert c[probe]["httpGet"] == {"path": path, "port": "metrics"}, probe
            assert c[probe]["timeoutSeconds"] >= 2
            assert f'"{path}"' in source, f"the worker serves no {path}"
        live = c["livenessProbe"]
        assert live["periodSeconds"] * live["failureThreshold"] <= 120  # restarts within minutes
        start = c["startupProbe"]
        assert start["periodSeconds"] * start["failureThreshold"] >= 120  # time to join the group
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert "/var/lib/feedstream" in mounts  # FEEDSTREAM_STATE_DIR (Faust's data dir)


def test_flink_deployment_version_matches_pyflink() -> None:
    lock = (REPO / "requirements.lock").read_text()
    major, minor = re.search(r"^apache-flink==(\d+)\.(\d+)\.", lock, flags=re.MULTILINE).groups()
    flink = next(d for _, d in _k8s_resources(K8S / "base") if d["kind"] == "FlinkDeployment")
    assert flink["spec"]["flinkVersion"] == f"v{major}_{minor}"


def test_no_fixed_replicas_under_an_hpa() -> None:
    docs = [d for _, d in _k8s_resources(K8S / "base")]
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert scaled, "the API is autoscaled"
    fixed = [d["metadata"]["name"] for d in docs
             if d["kind"] == "Deployment" and d["metadata"]["name"] in scaled and "replicas" in d["spec"]]
    assert not fixed, f"{fixed} set replicas although an HPA owns the count"


def test_the_ranker_artifact_ships_with_the_package() -> None:
    import fnmatch
    import tomllib

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["models"]
    files = [p.relative_to(REPO / "models").as_posix() for p in (REPO / "models" / "artifacts").rglob("*")
             if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in files), (files, patterns)


def test_a_missing_ranker_artifact_is_loud_in_production(tmp_path, monkeypatch) -> None:
    import redis

    import models.ranker
    from models.ranker import ArtifactError
    from serving.feed.engines import default_ranker

    monkeypatch.setattr(models.ranker, "ARTIFACT_DIR", tmp_path)  # no artifact here
    r = redis.Redis(port=1)  # never contacted
    dev = Settings(env="development", ranker="auto")
    assert default_ranker(dev, r).name.startswith("engagement-recency")  # falls back, with a warning
    prod = Settings(env="production", ranker="auto", jwt_secret="x" * 32)
    with pytest.raises(ArtifactError):
        default_ranker(prod, r)


def _pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for spec in _pod_specs(doc) for c in spec.get("initContainers", []) + spec["containers"]]


def test_only_the_api_gets_the_signing_key() -> None:
    holders = {(d["metadata"]["name"], c["name"]) for _, d in _k8s_resources(K8S / "base")
               for c in _pod_containers(d)
               if {"name": "feedstream-jwt"} in [e.get("secretRef") for e in c.get("envFrom", [])]}
    assert holders == {("api", "api")}, holders
    flink = next(d for _, d in _k8s_resources(K8S / "base") if d["kind"] == "FlinkDeployment")
    assert "feedstream-jwt" not in yaml.safe_dump(flink)


def test_our_pods_are_hardened() -> None:
    ours = [d for _, d in _k8s_resources(K8S / "base")
            if any(c["image"] == "feedstream" for c in _pod_containers(d)) or d["metadata"]["name"] == "registry"]
    assert {d["metadata"]["name"] for d in ours} >= {"api", "registry", "register-schemas", "topology-users"}
    for d in ours:
        for spec in _pod_specs(d):
            sc = spec["securityContext"]
            assert sc["runAsNonRoot"] and sc["seccompProfile"] == {"type": "RuntimeDefault"}, d["metadata"]
        for c in _pod_containers(d):
            sc = c.get("securityContext") or {}
            assert sc.get("allowPrivilegeEscalation") is False, (d["metadata"]["name"], c["name"])
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], (d["metadata"]["name"], c["name"])


def test_network_policy_denies_ingress_by_default_and_opens_the_api() -> None:
    pols = {d["metadata"]["name"]: d["spec"] for _, d in _k8s_resources(K8S / "base")
            if d["kind"] == "NetworkPolicy"}
    deny = pols["default-deny-ingress"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and not deny.get("ingress")
    api = pols["api-from-clients"]
    assert api["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "api"}
    assert api["ingress"] == [{"ports": [{"port": 8000, "protocol": "TCP"}]}]
    k = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    assert "networkpolicy.yaml" in k["resources"]


# ---------------------------------------------------------------- failure, restart, read-only root
#: containers whose root filesystem stays writable, each explained in docs/deploy.md
WRITABLE_ROOT = {("cassandra", "cassandra"), ("opensearch", "opensearch")}


def _all_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Containers of a workload, including the FlinkDeployment's pod template."""
    if doc.get("kind") == "FlinkDeployment":
        return doc["spec"]["podTemplate"]["spec"]["containers"]
    return _pod_containers(doc)


def _volumes(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    specs = [doc["spec"]["podTemplate"]["spec"]] if doc.get("kind") == "FlinkDeployment" else _pod_specs(doc)
    return {v["name"]: v for spec in specs for v in spec.get("volumes", [])}


def test_every_container_has_a_read_only_root_filesystem_where_possible() -> None:
    docs = [d for _, d in _k8s_resources(K8S / "base")]
    seen = set()
    for d in docs:
        vols = _volumes(d)
        for c in _all_containers(d):
            key = (d["metadata"]["name"], c["name"])
            seen.add(key)
            ro = (c.get("securityContext") or {}).get("readOnlyRootFilesystem")
            if key in WRITABLE_ROOT:
                assert not ro, f"{key} is listed as writable but is read-only: drop it from WRITABLE_ROOT"
                continue
            assert ro is True, key
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            if c.get("image") in OUR_IMAGES or d["kind"] == "FlinkDeployment":
                assert "/tmp" in mounts and "emptyDir" in vols[mounts["/tmp"]], key
            if c.get("args", [None])[:2] == ["topology", "run"] or c.get("name") == "api":
                assert "/var/lib/feedstream" in mounts, key  # FEEDSTREAM_STATE_DIR: heartbeats, Faust data
    assert seen >= {("api", "api"), ("registry", "registry"), ("topology-graph", "worker"),
                    ("trending", "flink-main-container"), ("redis", "redis")} | WRITABLE_ROOT
    flink = next(d for d in docs if d["kind"] == "FlinkDeployment")
    assert {m["mountPath"] for m in flink["spec"]["podTemplate"]["spec"]["containers"][0]["volumeMounts"]} >= {
        "/tmp", "/opt/flink/log", "/flink-data"}
    assert flink["spec"]["flinkConfiguration"]["io.tmp.dirs"] == "/tmp"
    pool = next(d for d in docs if d["kind"] == "KafkaNodePool")
    assert pool["spec"]["template"]["kafkaContainer"]["securityContext"]["readOnlyRootFilesystem"] is True
    text = (REPO / "docs" / "deploy.md").read_text()
    section = text.split("### Read-only root filesystem", 1)[1].split("\n#", 1)[0]
    for name, _ in WRITABLE_ROOT:
        assert f"**{name.capitalize()}**" in section, f"docs/deploy.md does not say why {name} stays writable"


def test_compose_services_of_our_image_run_read_only_with_tmpfs() -> None:
    services = _compose()["services"]
    ours = {n: s for n, s in services.items() if "feedstream" in str(s.get("image", ""))}
    assert {"api", "topics", "topology-graph", "topology-trending"} <= set(ours)
    for name, s in ours.items():
        assert s.get("read_only") is True, name
        tmp = [t.split(":")[0] for t in s.get("tmpfs", [])] + [
            v.split(":")[-1] if ":" in v else v for v in s.get("volumes", [])]
        assert "/tmp" in tmp and "/var/lib/feedstream" in tmp, (name, tmp)
    assert services["redis"].get("read_only") is True
    registry = services["registry"]  # Apicurio's image: read-only with a /tmp tmpfs
    assert registry.get("read_only") is True and any(t.startswith("/tmp") for t in registry["tmpfs"])


def test_the_trending_job_restarts_forever_with_bounded_backoff() -> None:
    """#13 D6 on k8s: the job never "gives up and stays down"; checkpoints bound what it replays."""
    flink = next(d for _, d in _k8s_resources(K8S / "base") if d["kind"] == "FlinkDeployment")
    conf = flink["spec"]["flinkConfiguration"]
    assert all(isinstance(v, str) for v in conf.values())  # the CRD takes a map of strings
    pre = "restart-strategy.exponential-delay."
    assert conf["restart-strategy.type"] == "exponential-delay"
    assert int(conf[pre + "attempts-before-reset-backoff"]) == 2**31 - 1  # never fails for good
    assert conf[pre + "initial-backoff"] == "1s" and conf[pre + "max-backoff"] == "2min"
    assert float(conf[pre + "backoff-multiplier"]) > 1 and conf[pre + "reset-backoff-threshold"] == "10min"
    assert conf["execution.checkpointing.interval"] and conf["execution.checkpointing.mode"] == "EXACTLY_ONCE"
    assert int(conf["execution.checkpointing.tolerable-failed-checkpoints"]) >= 1
    # a checkpoint stuck while Kafka is out must fail well before Flink's 10 min default, as locally
    from core.settings import Settings
    from topologies.trending.app import checkpoint_limits

    assert conf["execution.checkpointing.timeout"] == "2min"
    local = checkpoint_limits(Settings())
    assert int(local["execution.checkpointing.timeout"].removesuffix("s")) <= 120
    assert conf["execution.checkpointing.tolerable-failed-checkpoints"] == local["execution.checkpointing.tolerable-failed-checkpoints"]
    assert conf["kubernetes.operator.job.restart.failed"] == "true"
    assert flink["spec"]["job"]["upgradeMode"] == "savepoint"
    for _, d in _k8s_resources(K8S / "base"):  # workers: the kubelet restarts them (Always), probes kill hangs
        if d["kind"] == "Deployment":
            assert d["spec"]["template"]["spec"].get("restartPolicy", "Always") == "Always"
    text = (REPO / "docs" / "deploy.md").read_text()
    section = text.split("### Failure and restart", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    for word in ("exponential-delay", "2 min", "restartPolicy", "livenessProbe", "kubernetes.operator.job.restart.failed"):
        assert word in section, word


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_the_redis_cluster_overlay_replaces_the_single_redis_and_points_the_platform_at_its_seeds() -> None:
    from stores.redis import cluster_nodes

    built = subprocess.run(["kubectl", "kustomize", str(K8S / "overlays" / "prod-redis-cluster")],
                           capture_output=True, text=True, check=True, timeout=60).stdout
    docs = [d for d in yaml.safe_load_all(built) if d]
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert ("StatefulSet", "redis") not in by and ("Service", "redis") not in by  # the single Redis is gone
    sts, svc = by[("StatefulSet", "redis-cluster")], by[("Service", "redis-cluster")]
    assert sts["spec"]["replicas"] == 6 and sts["spec"]["serviceName"] == "redis-cluster"
    assert svc["spec"]["clusterIP"] == "None" and {p["port"] for p in svc["spec"]["ports"]} == {6379, 16379}
    conf = by[("ConfigMap", "redis-cluster")]["data"]["redis.conf"]
    assert "cluster-enabled yes" in conf and 'save ""' in conf and "appendonly no" in conf
    init = by[("Job", "redis-cluster-init")]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "--cluster create" in init and "--cluster-replicas 1" in init and "cluster_state:ok" in init
    env = by[("ConfigMap", "feedstream-config")]["data"]
    settings = Settings(FEEDSTREAM_REDIS_CLUSTER_NODES=env["FEEDSTREAM_REDIS_CLUSTER_NODES"])
    seeds = cluster_nodes(settings)
    assert len(seeds) == 3 and all(port == 6379 for _, port in seeds)
    assert {h.split(".")[0] for h, _ in seeds} <= {f"redis-cluster-{i}" for i in range(sts["spec"]["replicas"])}
    assert all(h.endswith(".redis-cluster") for h, _ in seeds)  # the headless Service's pod names
