"""The web app without a browser: the dashboard's status summary and the JavaScript budget (issue 22)."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

from core.settings import Settings
from serving.web import PAGES, STATIC
from serving.web.status import quantile, summarize, targets, window_labels

JS_BUDGET_GZ = 150 * 1024  # bytes of gzipped JavaScript a page may load (the feed's is ~6 KB today)
IMPORT = re.compile(r"""(?:^|\s)(?:import|export)\b[^'"]*?from\s*["'](\.[^"']+)["']|import\(\s*["'](/app/[^"']+)["']""", re.MULTILINE)
SCRIPT = re.compile(r"""<script[^>]*src="/app/([^"]+)\"""")

EXPOSITION = """\
# TYPE feedstream_worker_events_processed_total counter
feedstream_worker_events_processed_total{topology="fanout",record="PostCreated"} 40.0
feedstream_worker_events_processed_total{topology="fanout",record="PostDeleted"} 2.0
# TYPE feedstream_worker_events_dead_lettered_total counter
feedstream_worker_events_dead_lettered_total{topology="fanout",topic="posts.v1",error="ValueError"} 3.0
# TYPE feedstream_consumer_lag gauge
feedstream_consumer_lag{topology="fanout",topic="posts.v1",partition="0"} 5.0
feedstream_consumer_lag{topology="fanout",topic="posts.v1",partition="1"} 7.0
# TYPE feedstream_worker_live gauge
feedstream_worker_live{topology="fanout"} 1.0
# TYPE feedstream_write_to_visible_seconds histogram
feedstream_write_to_visible_seconds_bucket{topology="fanout",le="0.1"} 10.0
feedstream_write_to_visible_seconds_bucket{topology="fanout",le="0.5"} 90.0
feedstream_write_to_visible_seconds_bucket{topology="fanout",le="2.5"} 100.0
feedstream_write_to_visible_seconds_bucket{topology="fanout",le="+Inf"} 100.0
feedstream_write_to_visible_seconds_sum{topology="fanout"} 25.0
feedstream_write_to_visible_seconds_count{topology="fanout"} 100.0
"""


def test_summarize_sums_a_workers_metrics() -> None:
    got = summarize(EXPOSITION)
    assert (got["processed"], got["dead_letters"], got["lag"], got["live"]) == (42, 3, 12, True)
    assert got["freshness"] == {"count": 100, "mean_s": 0.25, "p50_s": 0.5, "p95_s": 2.5}


def test_quantile_is_the_bucket_bound_and_none_without_samples() -> None:
    assert quantile([(0.1, 50.0), (1.0, 100.0), (float("inf"), 100.0)], 0.5) == 0.1
    assert quantile([(0.1, 50.0), (1.0, 100.0), (float("inf"), 100.0)], 0.51) == 1.0
    assert quantile([(0.1, 0.0), (float("inf"), 0.0)], 0.5) is None


def test_targets_read_the_file_sd_files_and_skip_broken_ones(tmp_path: Path) -> None:
    d = tmp_path / "monitoring" / "targets"
    d.mkdir(parents=True)
    (d / "topology-fanout.json").write_text(json.dumps([{"targets": ["127.0.0.1:9101"], "labels": {}}]))
    (d / "topology-graph.json").write_text("{not json")
    (d / "api.json").write_text(json.dumps([{"targets": ["127.0.0.1:8000"]}]))
    assert targets(tmp_path) == {"fanout": "127.0.0.1:9101"}


def test_window_labels_follow_the_trending_setting() -> None:
    assert window_labels(Settings(trending_windows="1h/1m/5m/10s, 1m/10s/30s/2s")) == ["1h", "1m"]


def _module_graph(entry: str) -> list[Path]:
    seen: list[Path] = []
    todo = [STATIC / entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        assert path.is_file(), f"{path} is imported but missing"
        seen.append(path)
        for rel, absolute in IMPORT.findall(path.read_text()):
            todo.append((path.parent / rel).resolve() if rel else STATIC / absolute.removeprefix("/app/"))
    return seen


def test_each_page_stays_within_the_javascript_budget() -> None:
    for route, page in PAGES.items():
        html = (STATIC / page).read_text()
        entries = SCRIPT.findall(html)
        assert entries, f"{page} loads no script"
        files = {p for e in entries for p in _module_graph(e)}
        size = sum(len(gzip.compress(p.read_bytes(), 9)) for p in files)
        assert size <= JS_BUDGET_GZ, f"{route}: {size} B of gzipped JavaScript > {JS_BUDGET_GZ} B ({sorted(files)})"
        assert any(p.name == "common.js" for p in files)  # the walk follows imports


def test_pages_declare_language_viewport_and_title() -> None:
    for page in PAGES.values():
        html = (STATIC / page).read_text()
        assert '<html lang="en">' in html and 'name="viewport"' in html and "<title>" in html, page


def test_the_api_serves_the_pages_and_their_assets() -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app

    client = TestClient(create_app(Settings(jwt_secret="unit-secret-unit-secret-unit-secret-0123")))  # no lifespan
    for route, page in PAGES.items():
        res = client.get(route)
        assert res.status_code == 200 and res.headers["content-type"].startswith("text/html"), route
        assert res.text == (STATIC / page).read_text()
    assert "humanError" in client.get("/app/common.js").text
    assert client.get("/app/missing.js").status_code == 404
    assert client.get("/v1/web/status").status_code == 401  # operators sign in like everyone else


TSC = Path(__file__).resolve().parents[1] / "e2e" / "web" / "node_modules" / ".bin" / "tsc"
TSCONFIG = STATIC.parent / "tsconfig.json"


def _tsc(project: Path) -> subprocess.CompletedProcess[str]:
    assert TSC.exists(), f"{TSC} is missing: run `make bootstrap` (npm ci in tests/e2e/web)"
    return subprocess.run([str(TSC), "-p", str(project), "--pretty", "false"], capture_output=True, text=True,
                          timeout=300, check=False)


def test_typescript_checks_every_module_clean() -> None:
    """The pages' ES modules type-check (JSDoc types, checkJs): TypeScript without a build step."""
    done = _tsc(TSCONFIG)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_type_check_catches_a_wrong_call(tmp_path: Path) -> None:
    """The same compiler settings refuse a module that calls the API helper wrongly."""
    shutil.copytree(STATIC, tmp_path / "static", ignore=shutil.ignore_patterns("*.css", "*.html"))
    (tmp_path / "static" / "broken.js").write_text(
        'import { api } from "./common.js";\napi("/v1/posts", { methd: "POST" });\n')
    shutil.copy(TSCONFIG, tmp_path / "tsconfig.json")
    done = _tsc(tmp_path)
    assert done.returncode != 0 and "broken.js" in done.stdout and "methd" in done.stdout, done.stdout
