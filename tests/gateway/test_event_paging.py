"""Event searches page with a point in time, ``search_after`` and signed page tokens, against the real Elasticsearch
through the gateway's gRPC server and HTTP API: every event once, none repeated or skipped while events arrive and
change; a forged, tampered or foreign token is INVALID_ARGUMENT (HTTP 400) with ERROR_REASON_INVALID_PAGE_TOKEN.

The event documents are the grader's own (``services/grader/convert.event_document`` over Event messages)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from pydantic import SecretStr
from qingfeng.elastic import bulk_index, create_client
from qingfeng.settings import ElasticsearchSettings
from qingfeng.v1 import common_pb2, event_pb2, search_pb2, search_pb2_grpc

from gateway.app import Gateway
from services.grader.convert import event_document
from tests.gateway.search_gateway import indexed_gateway

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
EVENTS = 40
LEVELS = (common_pb2.WARNING_LEVEL_BLUE, common_pb2.WARNING_LEVEL_YELLOW, common_pb2.WARNING_LEVEL_ORANGE)
KEY = SecretStr("event-paging-key-" + "k" * 16)


def _event(event_id: str, n: int, *, at: datetime) -> tuple[str, dict[str, Any]]:
    event = event_pb2.Event(
        id=event_id, title=f"某县征地补偿纠纷 第{n}起", keywords=["征地", "补偿"], post_count=10 + n % 7, version=1
    )
    event.level = LEVELS[n % len(LEVELS)]
    event.grade.level = event.level
    event.grade.reasons.add(criterion="posts", message=f"1小时内帖子数 {10 + n} ≥ 10")
    event.first_seen_at.FromDatetime(at - timedelta(hours=1))
    event.last_seen_at.FromDatetime(at)
    event.updated_at.FromDatetime(at)
    return event_id, event_document(event)


def _stored() -> list[tuple[str, dict[str, Any]]]:
    # Some share a last_seen_at: the id tie-break keeps their order total.
    return [_event(f"ev-{n:03d}", n, at=T0 + timedelta(minutes=n // 3)) for n in range(EVENTS)]


@pytest.fixture
async def gateway(es_url: str, policy_file: Path) -> AsyncIterator[tuple[Gateway, grpc.aio.Channel, str]]:
    """The gateway over the stored events, and the events write alias (found by this run's own tag)."""
    tag = f"evpage-{uuid.uuid4().hex[:8]}"
    async with indexed_gateway(es_url, policy_file, tag, {"events": _stored()}, search_page_token_key=KEY) as served:
        es = create_client(ElasticsearchSettings(url=es_url))
        try:
            aliases = (await es.indices.get_alias(name=f"qftest-{tag}-*-events")).body
        finally:
            await es.close()
        [write] = {alias for index in aliases.values() for alias in index["aliases"] if alias.endswith("-events")}
        yield served[0], served[1], write


def _auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def _reason(err: grpc.aio.AioRpcError) -> str:
    status = status_pb2.Status.FromString(dict(err.trailing_metadata() or ())["grpc-status-details-bin"])
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return str(info.reason)


async def _walk(
    stub: search_pb2_grpc.SearchServiceStub, request: search_pb2.SearchEventsRequest, metadata: Any
) -> list[str]:
    seen: list[str] = []
    token = ""
    for _ in range(100):
        page = search_pb2.SearchEventsRequest()
        page.CopyFrom(request)
        page.page_token = token
        reply = await stub.SearchEvents(page, metadata=metadata)
        seen += [h.event.id for h in reply.hits]
        token = reply.next_page_token
        if not token:
            return seen
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("order", [search_pb2.SEARCH_ORDER_RELEVANCE, search_pb2.SEARCH_ORDER_NEWEST])
async def test_event_pages_hold_every_event_once_with_signed_tokens(
    gateway: tuple[Gateway, grpc.aio.Channel, str], tokens: dict[str, str], order: int
) -> None:
    stub = search_pb2_grpc.SearchServiceStub(gateway[1])
    request = search_pb2.SearchEventsRequest(query="征地", page_size=7, order=order)  # type: ignore[arg-type]
    first = await stub.SearchEvents(request, metadata=_auth(tokens["office"]))
    assert first.total == EVENTS and len(first.hits) == 7
    payload, dot, signature = first.next_page_token.partition(".")
    assert dot and payload and signature, "a signed token, not an offset"
    seen = await _walk(stub, request, _auth(tokens["office"]))
    assert len(seen) == EVENTS and set(seen) == {f"ev-{n:03d}" for n in range(EVENTS)}
    if order == search_pb2.SEARCH_ORDER_NEWEST:
        assert seen[0] == f"ev-{EVENTS - 1:03d}", "newest first (the only one of the last minute)"


async def test_a_forged_tampered_or_foreign_event_page_token_is_invalid_argument(
    gateway: tuple[Gateway, grpc.aio.Channel, str], tokens: dict[str, str]
) -> None:
    built, channel, _ = gateway
    stub = search_pb2_grpc.SearchServiceStub(channel)
    office = _auth(tokens["office"])
    first = await stub.SearchEvents(search_pb2.SearchEventsRequest(query="征地", page_size=5), metadata=office)
    token = first.next_page_token
    payload, _, signature = token.partition(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    offset_token = "NTo" + "x" * 10  # the old kind: base64 of "<offset>:<fingerprint>"
    for bad in (f"{flipped}.{signature}", f"{payload}.{signature[::-1]}", "garbage", offset_token):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SearchEvents(search_pb2.SearchEventsRequest(query="征地", page_size=5, page_token=bad),
                                    metadata=office)  # fmt: skip
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert _reason(err.value) == "ERROR_REASON_INVALID_PAGE_TOKEN"
        assert "page_token" in (err.value.details() or "")
    # A genuine token replayed with another query, or on the post search, is refused too.
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await stub.SearchEvents(search_pb2.SearchEventsRequest(query="补偿", page_token=token), metadata=office)
    assert other.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as posts:
        await stub.SearchPosts(search_pb2.SearchPostsRequest(query="征地", page_token=token), metadata=office)
    assert posts.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The page size may change between pages; the token still continues the same search.
    later = await stub.SearchEvents(
        search_pb2.SearchEventsRequest(query="征地", page_size=3, page_token=token), metadata=office
    )
    assert len(later.hits) == 3 and not {h.event.id for h in later.hits} & {h.event.id for h in first.hits}

    transport = httpx.ASGITransport(app=built.http_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        headers = {"Authorization": f"Bearer {tokens['office']}"}
        reply = await client.get("/api/search/events", params={"q": "征地", "page_token": f"{flipped}.{signature}"},
                                 headers=headers)  # fmt: skip
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert error["reason"] == "ERROR_REASON_INVALID_PAGE_TOKEN" and "page_token" in error["message"]
        params = {"q": "征地", "page_size": "5"}
        opened = (await client.get("/api/search/events", params=params, headers=headers)).json()
        following = await client.get(
            "/api/search/events", params={**params, "page_token": opened["next_page_token"]}, headers=headers
        )
        assert following.status_code == 200 and len(following.json()["hits"]) == 5
        assert not {h["event"]["id"] for h in opened["hits"]} & {h["event"]["id"] for h in following.json()["hits"]}


@pytest.mark.parametrize("order", [search_pb2.SEARCH_ORDER_RELEVANCE, search_pb2.SEARCH_ORDER_NEWEST])
async def test_paging_events_while_events_arrive_and_change_neither_repeats_nor_skips(
    gateway: tuple[Gateway, grpc.aio.Channel, str], tokens: dict[str, str], es_url: str, order: int
) -> None:
    _, channel, write = gateway
    stub = search_pb2_grpc.SearchServiceStub(channel)
    office = _auth(tokens["office"])
    request = search_pb2.SearchEventsRequest(query="征地", page_size=4, order=order)  # type: ignore[arg-type]
    before = {f"ev-{n:03d}" for n in range(EVENTS)}
    es = create_client(ElasticsearchSettings(url=es_url))
    # Newer events arrive (they would sort first) and stored ones are re-graded (newer, more posts) between pages:
    # with offsets, every page after would shift.
    arrivals = [_event(f"ev-new-{n:03d}", n, at=T0 + timedelta(days=1, minutes=n)) for n in range(EVENTS)]
    updates = [_event(f"ev-{n:03d}", n + 1, at=T0 + timedelta(days=2, minutes=n)) for n in range(0, EVENTS, 3)]
    reply = await stub.SearchEvents(request, metadata=office)
    seen = [h.event.id for h in reply.hits]
    token = reply.next_page_token
    arrived: list[str] = []
    stop = asyncio.Event()

    async def arrive() -> None:
        batches = [arrivals[i : i + 4] + updates[i // 4 : i // 4 + 1] for i in range(0, len(arrivals), 4)]
        for batch in batches:
            result = await bulk_index(es, write, batch, refresh=True)
            assert result.ok, result.failed
            arrived.extend(i for i, _ in batch if i.startswith("ev-new"))
            if stop.is_set():
                return

    writer = asyncio.create_task(arrive())
    pages = 1
    try:
        while token:
            pages += 1
            page = search_pb2.SearchEventsRequest()
            page.CopyFrom(request)
            page.page_token = token
            reply = await stub.SearchEvents(page, metadata=office)
            seen += [h.event.id for h in reply.hits]
            token = reply.next_page_token
            await asyncio.sleep(0.05)  # let events arrive between pages
        during = len(arrived)
    finally:
        stop.set()
        await writer
        await es.close()
    assert pages >= 8 and during >= 8, f"{during} events arrived during {pages} pages"
    duplicates = [i for i, n in Counter(seen).items() if n > 1]
    assert not duplicates, duplicates
    assert set(seen) == before, "the pages hold the events of the first page's moment, each once"
    again = await _walk(stub, search_pb2.SearchEventsRequest(query="征地", page_size=100), office)
    assert set(arrived) <= set(again), "the arrivals are there for the next search"
