"""Redis keys of the API's request bookkeeping: Idempotency-Key claims and rate-limit buckets.

Not a view: these keys are written by the write API itself (see ``serving/idempotency.py`` and
``serving/ratelimit.py``), but their names live here with every other key family.

- ``idem:{user}:{key}``  HASH claim and stored response of one Idempotency-Key (per user)
- ``rl:user:{user}``     token bucket of one user's writes
- ``rl:ip:{ip}``         token bucket of one client IP's writes
- ``rl:read:user:{user}`` token bucket of one user's reads
- ``rl:read:ip:{ip}``    token bucket of one client IP's reads
"""

from __future__ import annotations


def k_idempotency(user: str, idem_key: str) -> str:
    """Redis key of ``user``'s claim on ``idem_key`` (two users may use the same key)."""
    return f"idem:{user}:{idem_key}"


def k_rate_user(user: str) -> str:
    """Redis key of ``user``'s write token bucket."""
    return f"rl:user:{user}"


def k_rate_ip(ip: str) -> str:
    """Redis key of a client IP's write token bucket."""
    return f"rl:ip:{ip}"


def k_read_rate_user(user: str) -> str:
    """Redis key of ``user``'s read token bucket."""
    return f"rl:read:user:{user}"


def k_read_rate_ip(ip: str) -> str:
    """Redis key of a client IP's read token bucket."""
    return f"rl:read:ip:{ip}"
