"""Convert CustomResourceDefinitions to JSON schemas in kubeconform's layout.

    python scripts/deploy/crd2jsonschema.py [--add-enum FIELD=V1,V2] OUT_DIR CRD.yaml [CRD.yaml ...]

For every served version of every CRD, writes ``OUT_DIR/{kind}_{version}.json`` (lower case),
which kubeconform reads with
``-schema-location 'OUT_DIR/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'``.
Like kubeconform's ``openapi2jsonschema.py``, objects that list their ``properties`` and say
nothing about extra ones get ``additionalProperties: false``, so a field the operator's schema
does not know (a renamed or removed field) fails validation instead of being pruned silently by
the API server. ``x-kubernetes-preserve-unknown-fields`` keeps an object open; ``nullable``
becomes a ``null`` type; ``x-kubernetes-int-or-string`` becomes integer-or-string.

``--add-enum FIELD=V1,V2`` appends values to the enum of every property named FIELD: the one,
visible, patch for an operator whose newest CRD is not in a reachable registry (see
scripts/fetch_deploy_tools.sh).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _convert(v) for k, v in node.items()}
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _add_enum(node: Any, field: str, values: list[str]) -> int:
    hits = 0
    if isinstance(node, list):
        return sum(_add_enum(n, field, values) for n in node)
    if not isinstance(node, dict):
        return 0
    prop = (node.get("properties") or {}).get(field)
    if isinstance(prop, dict) and isinstance(prop.get("enum"), list):
        prop["enum"] += [v for v in values if v not in prop["enum"]]
        hits += 1
    return hits + sum(_add_enum(v, field, values) for v in node.values())


def schemas(
    crd: dict[str, Any], add_enum: dict[str, list[str]] | None = None
) -> dict[str, dict[str, Any]]:
    """``{file name: JSON schema}`` for each served version of one CRD."""
    spec = crd["spec"]
    kind = spec["names"]["kind"].lower()
    out = {}
    for version in spec["versions"]:
        raw = (version.get("schema") or {}).get("openAPIV3Schema")
        if not version.get("served", True) or raw is None:
            continue
        schema = _convert(raw)
        for field, values in (add_enum or {}).items():
            _add_enum(schema, field, values)
        props = schema.setdefault("properties", {})
        # the envelope every object has; the CRD schema often leaves it out
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
        schema["additionalProperties"] = False
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        out[f"{kind}_{version['name']}.json"] = schema
    return out


def main(argv: list[str]) -> int:
    add_enum: dict[str, list[str]] = {}
    while argv[:1] == ["--add-enum"] and len(argv) > 1:
        field, _, values = argv[1].partition("=")
        add_enum[field] = values.split(",")
        argv = argv[2:]
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for path in argv[1:]:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for name, schema in schemas(doc, add_enum).items():
                (out_dir / name).write_text(json.dumps(schema, indent=1, sort_keys=True))
                written += 1
    if not written:
        print(f"no CustomResourceDefinition in {argv[1:]}", file=sys.stderr)
        return 1
    print(f"wrote {written} schemas to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
