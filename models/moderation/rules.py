"""Configurable rules applied before the models: a domain blocklist (``FEEDSTREAM_MODERATION_BLOCKED_DOMAINS``)."""

from __future__ import annotations

from collections.abc import Iterable

from models.moderation.features import Content

RULES_VERSION = "rules-v1"


def blocked(domain: str, blocklist: frozenset[str]) -> bool:
    """Whether ``domain`` or any parent domain of it is on the blocklist."""
    parts = domain.split(".")
    return any(".".join(parts[i:]) in blocklist for i in range(len(parts)))


def rule_reasons(c: Content, blocklist: Iterable[str]) -> list[str]:
    """Reasons the rules give to remove the content (empty: the rules let it through to the models)."""
    bl = frozenset(d.strip().lower() for d in blocklist if d.strip())
    return [f"rule:blocked-domain:{d}" for d in c.domains if blocked(d, bl)]
