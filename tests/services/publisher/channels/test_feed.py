"""The website feed: delivering records an entry once per publication, uvicorn serves valid Atom over HTTP on loopback,
escaped and newest first; a retraction leaves a tombstone, a correction moves ``updated``."""

from __future__ import annotations

import asyncio
import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn

from services.publisher.channels.atom import ATOM_NS, TOMBSTONE_NS, feed_app
from services.publisher.channels.feed import FeedAdapter, FeedSettings
from services.publisher.channels.feed_store import InMemoryFeedStore
from services.publisher.ports import ChannelError, ChannelErrorKind, Delivery

A = f"{{{ATOM_NS}}}"
T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
SETTINGS = FeedSettings(
    site_url="https://jw.example.gov.cn/releases",
    title="权威发布",
    author="市纪委监委",
    tag_authority="jw.example.gov.cn,2026",
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> InMemoryFeedStore:
    return InMemoryFeedStore()


@pytest.fixture
def adapter(store: InMemoryFeedStore, clock: Clock) -> FeedAdapter:
    return FeedAdapter(SETTINGS, store, clock=clock)


@pytest.fixture
async def http(store: InMemoryFeedStore, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    """The feed app under uvicorn on a free loopback port, and a client pointed at it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(feed_app(store, SETTINGS, clock=clock), log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):  # at most 5 s for uvicorn to start listening
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=10)
        sock.close()


async def _feed(http: httpx.AsyncClient) -> ET.Element:
    response = await http.get("/feed.atom")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    return ET.fromstring(response.content)


def _entries(feed: ET.Element) -> list[ET.Element]:
    return feed.findall(f"{A}entry")


def _release(n: int, title: str = "情况通报", body: str = "正文") -> Delivery:
    return Delivery(f"pub-{n:04d}", "website-feed", f"{title}{n}", body)


async def test_two_deliveries_leave_one_entry_in_a_valid_feed(
    adapter: FeedAdapter, http: httpx.AsyncClient, clock: Clock
) -> None:
    first = await adapter.deliver(_release(1))
    clock.advance(5)
    again = await adapter.deliver(_release(1))
    assert again == first
    assert first.url == "https://jw.example.gov.cn/releases/pub-0001" and first.external_id == "pub-0001"
    feed = await _feed(http)
    assert feed.tag == f"{A}feed"
    # RFC 4287: a feed has id, title, updated and an author (or every entry has one); each entry id, title, updated.
    assert feed.findtext(f"{A}id") == "tag:jw.example.gov.cn,2026:feed"
    assert feed.findtext(f"{A}title") == "权威发布" and feed.findtext(f"{A}author/{A}name") == "市纪委监委"
    self_link = feed.find(f"{A}link[@rel='self']")
    assert self_link is not None and self_link.get("href") == "https://jw.example.gov.cn/feed.atom"
    [entry] = _entries(feed)
    assert entry.findtext(f"{A}id") == "tag:jw.example.gov.cn,2026:publication/pub-0001"
    assert entry.findtext(f"{A}title") == "情况通报1" and entry.findtext(f"{A}content") == "正文"
    assert entry.findtext(f"{A}published") == "2026-11-30T03:00:00Z" == entry.findtext(f"{A}updated")
    assert feed.findtext(f"{A}updated") == "2026-11-30T03:00:00Z"
    link = entry.find(f"{A}link[@rel='alternate']")
    assert link is not None and link.get("href") == first.url


async def test_entries_are_newest_first(adapter: FeedAdapter, http: httpx.AsyncClient, clock: Clock) -> None:
    for n in (1, 2, 3):
        await adapter.deliver(_release(n))
        clock.advance(10)
    titles = [e.findtext(f"{A}title") for e in _entries(await _feed(http))]
    assert titles == ["情况通报3", "情况通报2", "情况通报1"]


async def test_markup_and_control_characters_are_escaped_or_dropped(
    adapter: FeedAdapter, http: httpx.AsyncClient
) -> None:
    nasty = Delivery("pub-<x>&", "website-feed", '<script>alert("x")</script> & 谣言', "a < b & c > d\x01\x0b end")
    await adapter.deliver(nasty)
    raw = (await http.get("/feed.atom")).text
    assert "<script>" not in raw
    [entry] = _entries(ET.fromstring(raw))
    assert entry.findtext(f"{A}title") == nasty.title
    assert entry.findtext(f"{A}content") == "a < b & c > d end"
    assert entry.findtext(f"{A}id") == "tag:jw.example.gov.cn,2026:publication/pub-%3Cx%3E%26"


async def test_a_retracted_release_leaves_the_feed_with_a_tombstone(
    adapter: FeedAdapter, http: httpx.AsyncClient, clock: Clock
) -> None:
    kept = await adapter.deliver(_release(1))
    gone = await adapter.deliver(_release(2))
    clock.advance(30)
    await adapter.retract(gone.external_id)
    await adapter.retract(gone.external_id)  # twice is not an error
    await adapter.retract("pub-never")  # nor is an unknown one
    feed = await _feed(http)
    assert [e.findtext(f"{A}id") for e in _entries(feed)] == [
        f"tag:jw.example.gov.cn,2026:publication/{kept.external_id}"
    ]
    [tomb] = feed.findall(f"{{{TOMBSTONE_NS}}}deleted-entry")
    assert tomb.get("ref") == "tag:jw.example.gov.cn,2026:publication/pub-0002"
    assert tomb.get("when") == "2026-11-30T03:30:00Z" == feed.findtext(f"{A}updated")
    # The entry landed once, so find still reports it: the worker must not deliver it again.
    assert await adapter.find("pub-0002") == gone


async def test_a_correction_replaces_the_content_and_moves_updated(
    adapter: FeedAdapter, http: httpx.AsyncClient, clock: Clock
) -> None:
    delivered = await adapter.deliver(_release(1, body="初稿"))
    clock.advance(15)
    assert await adapter.correct(delivered.external_id, "更正后的正文") == delivered
    [entry] = _entries(await _feed(http))
    assert entry.findtext(f"{A}content") == "更正后的正文"
    assert entry.findtext(f"{A}published") == "2026-11-30T03:00:00Z"
    assert entry.findtext(f"{A}updated") == "2026-11-30T03:15:00Z"


async def test_correcting_an_unknown_or_retracted_entry_is_invalid(adapter: FeedAdapter) -> None:
    with pytest.raises(ChannelError) as caught:
        await adapter.correct("pub-none", "x")
    assert caught.value.kind is ChannelErrorKind.INVALID
    delivered = await adapter.deliver(_release(1))
    await adapter.retract(delivered.external_id)
    with pytest.raises(ChannelError):
        await adapter.correct(delivered.external_id, "x")


async def test_find_answers_only_for_delivered_publications(adapter: FeedAdapter) -> None:
    assert await adapter.find("pub-0001") is None
    delivered = await adapter.deliver(_release(1))
    assert await adapter.find("pub-0001") == delivered


async def test_the_etag_answers_304_until_the_feed_changes(adapter: FeedAdapter, http: httpx.AsyncClient) -> None:
    await adapter.deliver(_release(1))
    etag = (await http.get("/feed.atom")).headers["etag"]
    assert (await http.get("/feed.atom", headers={"If-None-Match": etag})).status_code == 304
    await adapter.deliver(_release(2))
    changed = await http.get("/feed.atom", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


async def test_the_feed_keeps_the_latest_max_entries(store: InMemoryFeedStore, clock: Clock) -> None:
    small = FeedSettings.model_validate({**SETTINGS.model_dump(), "max_entries": 2})
    adapter = FeedAdapter(small, store, clock=clock)
    for n in range(4):
        await adapter.deliver(_release(n))
        clock.advance(1)
    transport = httpx.ASGITransport(app=feed_app(store, small, clock=clock))
    async with httpx.AsyncClient(transport=transport, base_url="http://feed") as client:
        feed = ET.fromstring((await client.get("/feed.atom")).content)
    assert [e.findtext(f"{A}title") for e in _entries(feed)] == ["情况通报3", "情况通报2"]
