"""The local OpenSearch node over real HTTP: health, the common analyzers, painless, loopback only."""

from __future__ import annotations

import uuid

import httpx

from core.settings import Settings


def test_node_is_green_on_loopback_with_its_modules(search_stack: Settings) -> None:
    base = search_stack.opensearch_url
    health = httpx.get(f"{base}/_cluster/health", timeout=10).json()
    assert health["status"] in ("green", "yellow") and health["number_of_nodes"] == 1
    node = next(iter(httpx.get(f"{base}/_nodes/http", timeout=10).json()["nodes"].values()))
    assert all(a.startswith("127.0.0.1:") for a in node["http"]["bound_address"])
    modules = {m["name"] for m in next(iter(httpx.get(f"{base}/_nodes/plugins", timeout=10)
                                             .json()["nodes"].values()))["modules"]}
    assert {"transport-netty4", "analysis-common", "lang-painless"} <= modules


def test_index_analyze_highlight_and_script(search_stack: Settings) -> None:
    base, index = search_stack.opensearch_url, f"t-{uuid.uuid4().hex[:8]}"
    body = {"settings": {"analysis": {"analyzer": {"folded": {  # asciifolding is analysis-common's
        "type": "custom", "tokenizer": "whitespace", "filter": ["lowercase", "asciifolding"]}}}},
        "mappings": {"properties": {"text": {"type": "text", "analyzer": "folded"}}}}
    assert httpx.put(f"{base}/{index}", json=body, timeout=30).status_code == 200
    httpx.put(f"{base}/{index}/_doc/1?refresh=true", json={"text": "Café #Crème"}, timeout=10).raise_for_status()
    res = httpx.post(f"{base}/{index}/_search", timeout=10, json={
        "query": {"match": {"text": "cafe"}}, "highlight": {"fields": {"text": {}}},
        "script_fields": {"two": {"script": "1 + 1"}}}).json()
    hit = res["hits"]["hits"][0]
    assert hit["_id"] == "1" and hit["fields"]["two"] == [2]
    assert hit["highlight"]["text"] == ["<em>Café</em> #Crème"]
    httpx.delete(f"{base}/{index}", timeout=10)
