"""``GET /metrics`` of the API on the real stack: after traffic, the named metrics are non-zero."""

from __future__ import annotations

from support.api import api_settings, bearer, new_user, running_app
from support.scrape import value

from core.settings import Settings
from streams.admin import apply_topics


def test_api_metrics_after_traffic(stack: Settings) -> None:
    apply_topics(stack)
    settings = api_settings(stack, api_rate_user_per_s=0.5, api_rate_user_burst=3)
    ann, bob = new_user(settings), new_user(settings)
    with running_app(settings) as client:
        before = client.get("/metrics").text
        h = {**bearer(settings, ann), "Idempotency-Key": "m-1"}
        post = client.post("/v1/posts", json={"text": "metered"}, headers=h)
        assert post.status_code == 202, post.text
        assert client.post("/v1/posts", json={"text": "metered"}, headers=h).status_code == 202  # a replay
        pid = post.json()["post_id"]
        hb = bearer(settings, bob)
        assert client.put(f"/v1/users/{bob}/following/{ann}", headers=hb).status_code == 202
        assert client.put(f"/v1/posts/{pid}/like", headers=hb).status_code == 202
        codes = [client.put(f"/v1/users/{bob}/following/{ann}", headers=hb).status_code for _ in range(8)]
        assert 429 in codes
        assert client.get(f"/v1/users/{bob}/feed", headers=hb).status_code < 500  # 404: no profile yet
        text = client.get("/metrics").text

    def delta(name: str, **labels: str) -> float:
        return value(text, name, **labels) - value(before, name, **labels)

    assert delta("feedstream_http_requests_total", method="POST", route="/v1/posts", status="202") == 2
    assert delta("feedstream_http_idempotent_replays_total", route="/v1/posts") == 1
    assert delta("feedstream_http_rate_limited_total", route="/v1/users/{user_id}/following/{followee_id}") >= 1
    assert delta("feedstream_http_request_duration_seconds_count", route="/v1/users/{user_id}/feed") == 1
    for record in ("PostCreated", "Followed", "Liked"):
        assert delta("feedstream_events_produced_total", record=record) >= 1, record
        assert delta("feedstream_produce_seconds_count", record=record) >= 1, record
    assert value(text, "feedstream_http_requests_in_flight") >= 1
    assert {"redis", "cassandra", "ranker"} <= {
        b for b in ("redis", "cassandra", "ranker")
        if f'feedstream_circuit_breaker_state{{breaker="{b}"}}' in text}
    assert "feedstream_ranker_fallbacks" in text
