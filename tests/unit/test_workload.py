"""The synthetic workload: reproducible from a seed, power-law shaped, valid against the API's models."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from core.workload import OpStream, WorkloadConfig, build_graph, seed_plan, to_request
from serving.payloads import CommentIn, PostIn, RegisterIn


def test_same_seed_same_world_and_streams():
    cfg = WorkloadConfig(users=300, seed=7)
    assert build_graph(cfg).edges() == build_graph(cfg).edges()
    assert seed_plan(cfg) == seed_plan(cfg)
    a, b = OpStream(cfg, build_graph(cfg)), OpStream(cfg, build_graph(cfg))
    assert [a.write(50) for _ in range(500)] == [b.write(50) for _ in range(500)]
    assert [a.read(50) for _ in range(200)] == [b.read(50) for _ in range(200)]


def test_another_seed_another_world():
    assert build_graph(WorkloadConfig(users=300, seed=1)).edges() != \
        build_graph(WorkloadConfig(users=300, seed=2)).edges()


@pytest.mark.parametrize("alpha", [0.9, 1.1, 1.4])
def test_follower_counts_follow_a_power_law(alpha):
    cfg = WorkloadConfig(users=3000, zipf_alpha=alpha, celebrities=3, seed=11)
    deg = np.array(build_graph(cfg).in_degrees(), dtype=float)
    rank = np.arange(1, len(deg) + 1)
    mid = (rank > 10) & (rank <= 300) & (deg > 0)  # below the celebrities, above the sparse tail
    slope = np.polyfit(np.log(rank[mid]), np.log(deg[mid]), 1)[0]
    assert -alpha - 0.35 < slope < -alpha + 0.35
    assert deg.max() > 50 * np.median(deg)


def test_celebrities_reach_their_share_of_users():
    cfg = WorkloadConfig(users=1000, celebrities=3, celebrity_reach=0.5, seed=3)
    g = build_graph(cfg)
    fol = g.followers()
    for c in g.celebrities:
        assert 0.45 * cfg.users < len(fol[c]) <= cfg.users - 1
    assert all(u not in fs for u, fs in g.following.items())  # nobody follows themselves


def test_write_mix_matches_its_weights():
    cfg = WorkloadConfig(users=500, seed=5)
    s = OpStream(cfg, build_graph(cfg))
    counts = Counter(s.write(1000).kind for _ in range(20_000))
    total = sum(cfg.write_mix.values())
    for kind, w in cfg.write_mix.items():
        assert abs(counts[kind] / 20_000 - w / total) < 0.02, kind


def test_unknown_mix_kind_is_refused():
    cfg = WorkloadConfig(write_mix={"post": 1, "teleport": 1})
    with pytest.raises(ValueError, match="teleport"):
        OpStream(cfg, build_graph(WorkloadConfig(users=20)))


def test_generated_bodies_are_accepted_by_the_api_models():
    plan = seed_plan(WorkloadConfig(users=60, seed=9))
    for op in plan["register"]:
        RegisterIn.model_validate(to_request(op, []).json)
    tags = Counter()
    for op in plan["post"]:
        post = PostIn.model_validate(op.body)
        tags.update(post.event_fields()["hashtags"])
    assert len(tags) > 10 and tags.most_common(1)[0][1] > 5  # Zipf-popular hashtags
    assert any(op.body.get("media") for op in plan["post"])
    for op in plan["engage"]:
        if op.kind == "comment":
            CommentIn.model_validate(op.body)


def test_requests_map_onto_the_public_api():
    post_ids = [101, 102, 103]  # newest last
    cfg = WorkloadConfig(users=50, seed=4)
    s = OpStream(cfg, build_graph(cfg))
    seen = set()
    for _ in range(400):
        op = s.write(len(post_ids))
        req = to_request(op, post_ids)
        seen.add(op.kind)
        assert req.user == op.actor and req.path.startswith("/v1/")
        if op.post_ref is not None:
            assert f"/{post_ids[-1 - min(op.post_ref, 2)]}/" in req.path + "/"
        if op.kind in ("follow", "unfollow"):
            assert req.path == f"/v1/users/{op.actor}/following/{op.target}" and op.target != op.actor
    assert seen == {"post", "follow", "unfollow", "like", "comment", "share", "react"}
    feed = to_request(s.read(0), [], feed_limit=15)
    assert feed.is_read and feed.method == "GET" and "limit=15" in feed.path
