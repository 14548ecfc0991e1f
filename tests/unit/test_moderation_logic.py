"""Moderation topology logic: what is scored, and the verdict record (it encodes with the real serde)."""

from __future__ import annotations

from models.moderation.classify import ModelVerdict
from streams.samples import sample_event
from streams.schemas import default_schemas
from streams.validation import validate_record
from topologies.moderation.logic import decision_part, item_of, model_part, verdict_value


def test_posts_and_comments_are_items_deletes_and_likes_are_not() -> None:
    created = sample_event("PostCreated", post_id=11, author_id="a", text="hi https://x.example", links=[])
    item = item_of("PostCreated", created)
    assert item is not None and item.key == "post:11" and item.content_id == 11 and item.author_id == "a"
    comment = item_of("CommentAdded", sample_event("CommentAdded", comment_id=5, post_id=11, user_id="c"))
    assert comment is not None and comment.key == "comment:5" and comment.post_id == 11
    assert item_of("PostDeleted", sample_event("PostDeleted")) is None
    assert item_of("Liked", sample_event("Liked")) is None


def test_a_moderator_decision_overrides_the_model_in_the_verdict() -> None:
    item = item_of("PostCreated", sample_event("PostCreated", post_id=11, author_id="a"))
    assert item is not None
    m = model_part(ModelVerdict("REMOVE", {"spam": 0.97, "offensive": 0.01}, ["spam"], False, "v"), item)
    by_model = verdict_value(item.ctx, m, None)
    assert (by_model["decision"], by_model["source"], by_model["reasons"]) == ("REMOVE", "MODEL", ["spam"])
    d = decision_part(sample_event("ModeratorDecided", decision="ALLOW", actor_id="mod1", reason="real shop"))
    overturned = verdict_value(item.ctx, m, d)
    assert (overturned["decision"], overturned["source"], overturned["decided_by"]) == ("ALLOW", "MODERATOR", "mod1")
    assert overturned["scores"] == {"spam": 0.97, "offensive": 0.01} and overturned["decision_reason"] == "real shop"
    schemas = default_schemas()
    for v in (by_model, overturned):  # both are valid ModerationVerdict records
        validate_record(schemas.parsed[schemas.fullname("ModerationVerdict")], {**v, "event_type": "ModerationVerdict"})


def test_the_durable_copys_effective_decision_mirrors_the_merge_script() -> None:
    """stores.moderation.effective_decision is MERGE_LUA's rule: the moderator's part if any, else the
    model's, else ALLOW; LIMIT and REMOVE hide (issue 17: the Redis-down read path decides with it)."""
    from stores.moderation import effective_decision, is_hidden, kind_of

    model_remove, model_allow = {"decision": "REMOVE", "reasons": ["spam"]}, {"decision": "ALLOW"}
    assert effective_decision(None, None) == "ALLOW" and not is_hidden(None, None)
    assert effective_decision(model_remove, None) == "REMOVE" and is_hidden(model_remove, None)
    assert is_hidden({"decision": "LIMIT"}, None) and not is_hidden(model_allow, None)
    overturned = {"decision": "ALLOW", "by": "mod1", "reason": "fine"}
    assert effective_decision(model_remove, overturned) == "ALLOW" and not is_hidden(model_remove, overturned)
    assert is_hidden(model_allow, {"decision": "REMOVE", "by": "mod1"}) and is_hidden(None, {"decision": "LIMIT"})
    assert kind_of("post:7") == "post" and kind_of("comment:9") == "comment"  # as merge() picks the hidden set
