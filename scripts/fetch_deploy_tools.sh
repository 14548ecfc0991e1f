#!/usr/bin/env bash
# Tools and schemas for the offline manifest check (tests/unit/test_deploy.py: kustomize build +
# kubeconform), at pinned versions, cached under ${FEEDSTREAM_CACHE_DIR:-~/.cache/feedstream}/deploy
# (outside git). Idempotent: a second run finds the stamp and does nothing.
#
#   kubeconform     go install from the Go module proxy
#   Kubernetes      JSON schemas shipped in the PyPI package kubernetes-validate (pip download)
#   Strimzi CRDs    generated from io.strimzi:api with Strimzi's own io.strimzi:crd-generator, as
#                   Strimzi's build does (Maven Central; Strimzi publishes no CRD file to a
#                   registry); needs a Java >= 21 runtime
#   Flink operator  CRDs carried in org.apache.flink:flink-kubernetes-operator-api (Maven Central)
#
# Prints the paths as KEY=VALUE lines on success. Exit 3 (with the reason on stderr) when a tool
# cannot be had on this machine; the test then skips with that reason.
set -euo pipefail

KUBECONFORM_VERSION=v0.7.0
K8S_VALIDATE_VERSION=1.37.0   # PyPI kubernetes-validate: ships schemas for Kubernetes 1.x
K8S_VERSION=1.33.0            # the Kubernetes API the manifests are validated against
STRIMZI_VERSION=1.2.0         # keep in step with scripts/deploy/crds-pom.xml and docs/deploy.md
FLINK_OPERATOR_VERSION=1.10.0 # newest flink-kubernetes-operator-api on Maven Central
# The Flink operator's CRD gained FlinkVersion v2_0..v2_2 after 1.10 (1.13 lists v2_2); Maven
# Central has no newer API jar, so the 1.10 schema is widened by exactly these enum values.
FLINK_VERSIONS_ADDED=v2_0,v2_1,v2_2

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${FEEDSTREAM_CACHE_DIR:-$HOME/.cache/feedstream}/deploy"
STAMP_TEXT="kubeconform=$KUBECONFORM_VERSION k8s=$K8S_VERSION/$K8S_VALIDATE_VERSION strimzi=$STRIMZI_VERSION flink-operator=$FLINK_OPERATOR_VERSION+$FLINK_VERSIONS_ADDED converter=$(sha1sum "$ROOT/scripts/deploy/crd2jsonschema.py" "$ROOT/scripts/deploy/crds-pom.xml" | sha1sum | cut -c1-12)"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY=python3

say() { echo "[fetch_deploy_tools] $*" >&2; }
unavailable() { say "unavailable: $*"; exit 3; }

report() {
  echo "KUBECONFORM=$CACHE/bin/kubeconform"
  echo "K8S_VERSION=$K8S_VERSION"
  echo "K8S_SCHEMAS=$CACHE/schemas/kubernetes"
  echo "CRD_SCHEMAS=$CACHE/schemas/crds"
  echo "VERSIONS='$STAMP_TEXT'"
}

if [ -f "$CACHE/stamp" ] && [ "$(cat "$CACHE/stamp")" = "$STAMP_TEXT" ] && [ -x "$CACHE/bin/kubeconform" ]; then
  report
  exit 0
fi
mkdir -p "$CACHE/bin" "$CACHE/schemas"
rm -f "$CACHE/stamp"

# --- kubeconform
if ! "$CACHE/bin/kubeconform" -v 2>/dev/null | grep -qx "$KUBECONFORM_VERSION"; then
  command -v go >/dev/null || unavailable "go not found (needed for go install kubeconform)"
  say "go install kubeconform@$KUBECONFORM_VERSION"
  GOBIN="$CACHE/bin" go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" \
    || unavailable "go install github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION failed"
fi

# --- Kubernetes built-in schemas
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
say "Kubernetes $K8S_VERSION schemas from kubernetes-validate==$K8S_VALIDATE_VERSION"
"$PY" -m pip download -q --no-deps -d "$tmp/kv" "kubernetes-validate==$K8S_VALIDATE_VERSION" \
  || unavailable "pip download kubernetes-validate==$K8S_VALIDATE_VERSION failed"
rm -rf "$CACHE/schemas/kubernetes"
"$PY" - "$tmp"/kv/*.whl "$CACHE/schemas/kubernetes" "v$K8S_VERSION-local-strict" <<'EOF'
import sys, zipfile
from pathlib import Path
whl, out, flavour = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
prefix = f"kubernetes_validate/kubernetes-json-schema/{flavour}/"
n = 0
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith(prefix) and name.endswith(".json"):
            target = out / flavour / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            # kubernetes-validate's refs are rooted at "/api/"; kubeconform needs file URLs
            text = z.read(name).decode().replace(
                '"/api/_definitions.json#', f'"{(out / flavour).resolve().as_uri()}/_definitions.json#')
            target.write_text(text)
            n += 1
if not n:
    sys.exit(f"no {flavour} schemas in {whl}")
EOF

# --- operator CRDs
command -v mvn >/dev/null || unavailable "mvn not found (needed for the operator CRDs)"
java21=""
for j in "${JAVA21_HOME:-}/bin/java" "${JAVA_HOME:-}/bin/java" /usr/lib/jvm/*/bin/java "$(command -v java || true)"; do
  [ -x "$j" ] || continue
  major="$("$j" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  if [ -n "$major" ] && [ "${major%%.*}" -ge 21 ] 2>/dev/null; then java21="$j"; break; fi
done
[ -n "$java21" ] || unavailable "no Java >= 21 runtime (Strimzi $STRIMZI_VERSION's CrdGenerator needs it); set JAVA21_HOME"

say "operator CRD jars from Maven Central (Strimzi $STRIMZI_VERSION, Flink operator $FLINK_OPERATOR_VERSION)"
rm -rf "$CACHE/jars"
mvn -q -B -f "$ROOT/scripts/deploy/crds-pom.xml" dependency:copy-dependencies \
  -Dstrimzi.version="$STRIMZI_VERSION" -Dflink.operator.version="$FLINK_OPERATOR_VERSION" \
  -DoutputDirectory="$CACHE/jars" >&2 || unavailable "mvn dependency:copy-dependencies failed"

mkdir -p "$tmp/crds"
m=io.strimzi.api.kafka.model
"$java21" -cp "$CACHE/jars/*" io.strimzi.crdgenerator.CrdGenerator \
  --label app:strimzi --target-kube 1.16+ --crd-api-version v1 \
  --api-versions v1 --storage-version v1 --yaml \
  "$m.kafka.Kafka=$tmp/crds/strimzi-kafka.yaml" \
  "$m.nodepool.KafkaNodePool=$tmp/crds/strimzi-kafkanodepool.yaml" \
  "$m.topic.KafkaTopic=$tmp/crds/strimzi-kafkatopic.yaml" \
  "$m.user.KafkaUser=$tmp/crds/strimzi-kafkauser.yaml" \
  "$m.rebalance.KafkaRebalance=$tmp/crds/strimzi-kafkarebalance.yaml" >&2 \
  || unavailable "Strimzi CrdGenerator failed"
(cd "$tmp/crds" && unzip -q -j -o "$CACHE/jars/flink-kubernetes-operator-api-$FLINK_OPERATOR_VERSION.jar" 'META-INF/fabric8/*.yml')

# Built beside the old schemas and swapped in, so a concurrent validation never sees a half-made dir.
rm -rf "$CACHE/schemas/crds.new.$$"
"$PY" "$ROOT/scripts/deploy/crd2jsonschema.py" --add-enum "flinkVersion=$FLINK_VERSIONS_ADDED" \
  "$CACHE/schemas/crds.new.$$" "$tmp"/crds/*.yaml "$tmp"/crds/*.yml >&2
rm -rf "$CACHE/schemas/crds.old.$$"
if [ -d "$CACHE/schemas/crds" ]; then mv "$CACHE/schemas/crds" "$CACHE/schemas/crds.old.$$"; fi
mv "$CACHE/schemas/crds.new.$$" "$CACHE/schemas/crds"
rm -rf "$CACHE/schemas/crds.old.$$"

echo "$STAMP_TEXT" > "$CACHE/stamp"
report
