"""A reader who just registered reads an empty feed, not a 404, before the users topology wrote the profile."""

from __future__ import annotations

import pytest
from support.api import api_settings, bearer, new_user, running_app

from core.settings import Settings


@pytest.fixture(scope="module")
def settings(stack: Settings) -> Settings:
    return api_settings(stack)


def test_a_reader_known_only_by_the_registration_mark_reads_an_empty_feed(settings: Settings) -> None:
    reader = new_user(registered_on=settings)  # POST /v1/users's mark; no profile written (no topology runs)
    with running_app(settings) as client:
        for algorithm in ("chronological", "ranked"):
            r = client.get(f"/v1/users/{reader}/feed", params={"algorithm": algorithm},
                           headers=bearer(settings, reader))
            assert r.status_code == 200, r.text
            assert r.json()["items"] == [] and r.json()["next_cursor"] is None


def test_a_reader_neither_registered_nor_marked_is_404(settings: Settings) -> None:
    stranger = new_user()
    with running_app(settings) as client:
        r = client.get(f"/v1/users/{stranger}/feed", headers=bearer(settings, stranger))
    assert r.status_code == 404 and stranger in r.json()["detail"]
