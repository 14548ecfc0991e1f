"""Unit tests: the users topology's comment threads refuse comments by users who never registered
(issue 14 items 5/6), by the engagement worker's rule; the storing path itself is integration."""

from __future__ import annotations

import pytest

from streams.errors import PoisonRecord
from topologies.faust_runtime import SourceRecord
from topologies.graph.app import UserCheck
from topologies.graph.logic import UnknownUser
from topologies.users.app import MAX_POLL_RECORDS, refuse_unknown_commenter

GRACE, NOW = 10_000, 1_000_000


def rec(name: str, user: str, at: int) -> SourceRecord:
    v = {"occurred_at": at, "user_id": user, "post_id": 1, "comment_id": 2}
    return SourceRecord("engagements.v1", 0, 7, None, name, v, at)


def check(registered: dict[str, int]) -> UserCheck:
    return UserCheck(lambda ids: {u: registered[u] for u in ids if u in registered}, GRACE,
                     now_ms=lambda: NOW + 2 * GRACE, sleep=lambda s: None,
                     named=lambda r: [r.value["user_id"]])


@pytest.mark.parametrize("name", ["CommentAdded", "CommentDeleted"])
def test_a_comment_by_a_user_who_never_registered_is_refused(name: str) -> None:
    with pytest.raises(UnknownUser, match=f"{name}: user ghost never registered") as err:
        refuse_unknown_commenter(check({"ann": 0}), rec(name, "ghost", NOW))
    assert isinstance(err.value, PoisonRecord)  # dead-lettered by the agent, with its source offset


def test_registered_in_time_passes_and_other_engagements_are_not_checked_here() -> None:
    users = check({"ann": NOW + GRACE, "late": NOW + GRACE + 1})
    refuse_unknown_commenter(users, rec("CommentAdded", "ann", NOW))  # within the grace: stored
    with pytest.raises(UnknownUser):
        refuse_unknown_commenter(users, rec("CommentAdded", "late", NOW))  # registered after it
    refuse_unknown_commenter(users, rec("Liked", "ghost", NOW))  # not a comment: nothing stored here
    refuse_unknown_commenter(None, rec("CommentAdded", "ghost", NOW))  # no check configured


def test_one_poll_cannot_fill_a_buffer_past_its_pressure_mark() -> None:
    maxsize = 4096  # faust's stream_buffer_maxsize default; pressure high at maxsize / 1.25
    assert maxsize // 1.25 + MAX_POLL_RECORDS < maxsize
