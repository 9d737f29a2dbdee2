"""ListEvents paging (listing.py): keyset pages with HMAC-signed tokens; an altered, forged, foreign or earlier-run
token is InvalidPageToken; events opened while a client pages neither shift nor repeat the pages."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from qingfeng.v1 import common_pb2, event_pb2

from services.grader.core import EventSnapshot
from services.grader.errors import InvalidPageToken
from services.grader.listing import EventPageTokens, list_events
from tests.services.grader.unit.test_state import T0, Ports, feed, started, story


@pytest.fixture(scope="module")
def template() -> EventSnapshot:
    """One real snapshot of the engine (ev-p0, orange), copied under other ids and times below."""

    async def make() -> EventSnapshot:
        owner = await started(Ports())
        await feed(owner, story(120))
        snapshot = owner.engine.event("ev-p0")
        assert snapshot is not None
        return snapshot

    return asyncio.run(make())


def _events(template: EventSnapshot, count: int, *, prefix: str = "ev", minutes: int = 0) -> list[EventSnapshot]:
    # Every third pair shares a last_seen: the id breaks the tie.
    return [
        replace(template, event_id=f"{prefix}-{n:02d}", last_seen=T0 + timedelta(minutes=minutes + n // 2))
        for n in range(count)
    ]


def _walk(snapshots: list[EventSnapshot], request: event_pb2.ListEventsRequest, tokens: EventPageTokens) -> list[str]:
    seen: list[str] = []
    token = ""
    while True:
        page = event_pb2.ListEventsRequest()
        page.CopyFrom(request)
        page.page_token = token
        rows, token = list_events(snapshots, page, tokens)
        seen += [s.event_id for s in rows]
        if not token:
            return seen


def test_pages_hold_every_event_once_newest_activity_first(template: EventSnapshot) -> None:
    snapshots = _events(template, 10)
    tokens = EventPageTokens()
    seen = _walk(snapshots, event_pb2.ListEventsRequest(page_size=3), tokens)
    expected = [s.event_id for s in sorted(snapshots, key=lambda s: (-s.last_seen.timestamp(), s.event_id))]
    assert seen == expected and len(set(seen)) == 10
    _, token = list_events(snapshots, event_pb2.ListEventsRequest(page_size=3), tokens)
    payload, dot, signature = token.partition(".")
    assert dot and payload and signature, "a signed token"


def test_events_opened_while_paging_do_not_shift_the_pages(template: EventSnapshot) -> None:
    snapshots = _events(template, 10)
    tokens = EventPageTokens()
    rows, token = list_events(snapshots, event_pb2.ListEventsRequest(page_size=4), tokens)
    seen = [s.event_id for s in rows]
    snapshots += _events(template, 6, prefix="new", minutes=60)  # newer: they sort before the cursor
    while token:
        rows, token = list_events(snapshots, event_pb2.ListEventsRequest(page_size=4, page_token=token), tokens)
        seen += [s.event_id for s in rows]
    assert sorted(seen) == [f"ev-{n:02d}" for n in range(10)]


def test_an_altered_forged_foreign_or_earlier_token_is_refused(template: EventSnapshot) -> None:
    snapshots = _events(template, 10)
    tokens = EventPageTokens()
    request = event_pb2.ListEventsRequest(page_size=3)
    _, token = list_events(snapshots, request, tokens)
    payload, _, signature = token.partition(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    # The unsigned kind the grader issued before: base64 JSON of the sort key and the fingerprint.
    unsigned = base64.urlsafe_b64encode(json.dumps({"k": [-1e12, "ev-00"], "f": "x"}).encode()).decode()
    for bad in (f"{flipped}.{signature}", f"{payload}.{signature[::-1]}", "garbage", unsigned, "x" * 5000):
        with pytest.raises(InvalidPageToken) as err:
            list_events(snapshots, event_pb2.ListEventsRequest(page_size=3, page_token=bad), tokens)
        assert err.value.reason == "ERROR_REASON_INVALID_PAGE_TOKEN" and err.value.violations[0].field == "page_token"
    with pytest.raises(InvalidPageToken, match="issued"):  # a restarted grader has another key
        list_events(snapshots, event_pb2.ListEventsRequest(page_size=3, page_token=token), EventPageTokens())
    other = event_pb2.ListEventsRequest(page_size=3, page_token=token, min_level=common_pb2.WARNING_LEVEL_BLUE)
    with pytest.raises(InvalidPageToken, match="another query"):
        list_events(snapshots, other, tokens)
    # The page size may change from page to page.
    rows, _ = list_events(snapshots, event_pb2.ListEventsRequest(page_size=5, page_token=token), tokens)
    assert len(rows) == 5


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        EventPageTokens(b"short")
