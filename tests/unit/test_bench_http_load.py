"""bench.http_load: Lua generation, wrk output parsing, loopback refusal, and one tiny real wrk run."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from bench import http_load as hl
from core.workload import Request

CAPTURED = """Running 1s test @ http://127.0.0.1:8000
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    11.52ms    3.01ms  40.12ms   80.00%
  Latency Distribution
     50%   11.00ms
     99%   30.00ms
  1371 requests in 1.00s, 200.00KB read
FEEDSTREAM_WRK_JSON {"requests": 1400, "duration_us": 2000000, "bytes": 204800, "statuses": {"200": 1380, \
"304": 5, "429": 15}, "socket_errors": {"connect": 0, "read": 3, "write": 0, "timeout": 2}, "non_2xx_3xx": 15, \
"latency_us": {"p50": 11000.0, "p90": 15000.0, "p95": 18000.0, "p99": 30000.0, "max": 40120.0, "mean": 11520.0}}
Requests/sec:   1371.00
"""


def test_parse_counts_429_and_socket_errors_as_errors() -> None:
    st = hl.parse_output(CAPTURED)
    assert st["count"] == 1400 + 5
    assert st["errors"] == 15 + 5
    assert st["error_rate"] == pytest.approx(20 / 1405)
    assert st["rate_per_s"] == pytest.approx(1385 / 2.0)
    assert st["latency_ms"] == {"p50": 11.0, "p90": 15.0, "p95": 18.0, "p99": 30.0, "max": 40.12}
    assert st["statuses"] == {200: 1380, 304: 5, 429: 15}


def test_parse_without_result_line_fails_loudly() -> None:
    with pytest.raises(hl.WrkError, match="no result line"):
        hl.parse_output("Running 1s test\nRequests/sec: 10\n")


def test_lua_script_escapes_and_rotates() -> None:
    reqs = [hl.HttpReq("get", "/v1/a?limit=20", {"Authorization": 'Bearer x"y'}),
            hl.HttpReq("POST", "/v1/posts", {"Content-Type": "application/json"}, '{"text":"h\u00e9\\n __UNIQ__"}')]
    lua = hl.lua_script(reqs, unique=True, key_prefix="run1", delay_ms=12.5)
    assert '{"GET", "/v1/a?limit=20", {["Authorization"] = "Bearer x\\"y"}, nil},' in lua
    assert '"{\\"text\\":\\"h\\195\\169\\\\n __UNIQ__\\"}"' in lua
    assert "local unique = true" in lua and 'local key_prefix = "run1"' in lua
    assert "function delay() return delay_ms end" in lua and "local delay_ms = 12.5" in lua
    assert 'h["Idempotency-Key"] = token' in lua
    plain = hl.lua_script(reqs[:1])
    assert "local unique = false" in plain and "function delay()" not in plain
    with pytest.raises(ValueError):
        hl.lua_script([])


def test_rate_cap_and_delay() -> None:
    assert hl.rate_cap(["a", "b", "a", "c"], 20.0, headroom=1.0) == pytest.approx(40.0)
    assert hl.bounded_delay_ms(16, 400.0) == pytest.approx(40.0)
    assert hl.bounded_delay_ms(16, None) == 0.0


def test_wrk_request_carries_token_forwarded_address_and_unique_text() -> None:
    class Driver:
        def token(self, user: str) -> str:
            return f"tok-{user}"

    post = hl.wrk_request(Driver(), Request("POST", "/v1/posts", "u1", {"text": "hi", "media": []}), unique=True)
    assert post.headers["Authorization"] == "Bearer tok-u1"
    assert post.headers["X-Forwarded-For"] in hl.FORWARDED
    assert json.loads(post.body)["text"] == f"hi {hl.UNIQUE}"
    like = hl.wrk_request(Driver(), Request("PUT", "/v1/posts/5/like", "u2"), unique=True)
    assert like.body is None and "Content-Type" not in like.headers


def test_refuses_non_loopback_and_missing_wrk(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(hl.WrkError, match="loopback"):
        hl.run_wrk("http://10.255.255.1:8000", [hl.HttpReq("GET", "/")], duration_s=1)
    monkeypatch.setattr(hl.shutil, "which", lambda _name: None)
    with pytest.raises(hl.WrkError, match="apt-get install wrk"):
        hl.run_wrk("http://127.0.0.1:8000", [hl.HttpReq("GET", "/")], duration_s=1)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str | None, bytes]]] = []

    def _answer(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._answer(429 if self.path == "/limited" else 200)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Handler.seen.append((self.path, self.headers.get("Idempotency-Key"), body))
        self._answer(202)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install wrk)")
def test_real_wrk_counts_statuses_and_stamps_unique_keys(server: str) -> None:
    mixed = hl.run_wrk(server, [hl.HttpReq("GET", "/ok"), hl.HttpReq("GET", "/limited")],
                       duration_s=1, connections=2)
    assert mixed["count"] > 0 and set(mixed["statuses"]) == {200, 429}
    assert mixed["errors"] == mixed["statuses"][429] + sum(mixed["socket_errors"].values())
    _Handler.seen.clear()
    writes = hl.run_wrk(server, [hl.HttpReq("POST", "/p", {}, '{"text":"x __UNIQ__"}')], duration_s=1,
                        connections=2, threads=2, unique=True, key_prefix="t", delay_ms=20)
    keys = [k for _, k, _ in _Handler.seen]
    assert writes["errors"] == 0 and writes["statuses"][202] == len(_Handler.seen) > 0
    assert len(set(keys)) == len(keys) and all(k and k.startswith("t-t") for k in keys)
    assert all(json.loads(b)["text"] == f"x {k}" for _, k, b in _Handler.seen)
    assert writes["rate_per_s"] < 2 * 1000 / 20 * 1.2  # the delay bounds the offered load
