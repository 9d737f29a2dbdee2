"""SearchService against the real Elasticsearch, through the gateway's gRPC server and its HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from qingfeng.v1 import common_pb2, post_pb2, search_pb2, search_pb2_grpc

from gateway.app import Gateway
from tests.gateway.search_gateway import indexed_gateway

pytestmark = pytest.mark.integration

POSTS: list[tuple[str, dict[str, Any]]] = [
    (
        "p-bribe",
        {
            "title": "某县住建局局长涉嫌受贿",
            "text": "網友實名舉報某縣住建局局長涉嫌受賄，收受開發商好處費。",
            "text_simplified": "某县住建局局长涉嫌受贿\n网友实名举报某县住建局局长涉嫌受贿，收受开发商好处费。",
            "source_kind": "SOURCE_KIND_WEIBO_API",
            "platform": "weibo.com",
            "author": {"id": "u1", "name": "热心网友", "followers": 1200},
            "created_at": "2025-03-01T08:30:00Z",
            "reposts": 120,
            "region_codes": ["330000", "330100"],
            "region_names": ["浙江省", "杭州市"],
            "corruption_terms": ["受贿", "好处费"],
            "corruption_categories": ["CORRUPTION_CATEGORY_BRIBERY"],
            "relevance": 0.92,
        },
    ),
    (
        "p-bribe-repost",
        {
            "title": "",
            "text_simplified": "转发：某县住建局局长涉嫌受贿",
            "created_at": "2025-03-01T09:00:00Z",
            "reposts": 2,
            "duplicate_of": "p-bribe",
            "region_codes": ["330000", "330100"],
        },
    ),
    (
        "p-praise",
        {
            "title": "表扬与传闻",
            "text_simplified": "他受到表扬，贿选传闻不实",
            "created_at": "2025-03-02T10:00:00Z",
            "reposts": 5,
            "region_codes": ["110000", "110101"],
        },
    ),
    (
        "p-road",
        {
            "title": "城东道路施工",
            "text_simplified": "城东道路施工，请市民绕行。",
            "created_at": "2025-03-03T10:00:00Z",
            "region_codes": ["330000", "330100"],
        },
    ),
]

EVENTS: list[tuple[str, dict[str, Any]]] = [
    (
        "e-bribe",
        {
            "title": "某县住建局局长受贿举报",
            "keywords": ["住建局", "受贿"],
            "level": "WARNING_LEVEL_ORANGE",
            "post_count": 42,
            "last_seen_at": "2025-03-01T12:00:00Z",
            "rising": True,
            "region_codes": ["330100"],
        },
    ),
    (
        "e-canteen",
        {
            "title": "某局食堂公款吃喝",
            "keywords": ["公款吃喝"],
            "level": "WARNING_LEVEL_BLUE",
            "post_count": 300,
            "last_seen_at": "2025-03-02T12:00:00Z",
        },
    ),
    (
        "e-merged",
        {"title": "住建局局长受贿（旧）", "level": "WARNING_LEVEL_RED", "merged_into": "e-bribe"},
    ),
]


@pytest.fixture
async def gateway(es_url: str, policy_file: Path) -> AsyncIterator[tuple[Gateway, grpc.aio.Channel]]:
    documents = {
        family: [(i, {"id": i, **d}) for i, d in docs] for family, docs in (("posts", POSTS), ("events", EVENTS))
    }
    async with indexed_gateway(es_url, policy_file, "gw", documents) as served:
        yield served


def _auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def test_grpc_search_posts_finds_the_bribery_post_with_a_highlight(
    gateway: tuple[Gateway, grpc.aio.Channel], tokens: dict[str, str]
) -> None:
    _, channel = gateway
    stub = search_pb2_grpc.SearchServiceStub(channel)
    reply = await stub.SearchPosts(search_pb2.SearchPostsRequest(query="受贿"), metadata=_auth(tokens["office"]))
    assert [hit.post.id for hit in reply.hits] == ["p-bribe"], "the repost is a duplicate; 受到…贿选 is no match"
    assert reply.total == 1 and not reply.next_page_token
    hit = reply.hits[0]
    assert hit.score > 0
    assert hit.post.source_kind == common_pb2.SOURCE_KIND_WEIBO_API
    assert hit.post.author.name == "热心网友"
    assert hit.post.created_at.ToJsonString() == "2025-03-01T08:30:00Z"
    assert [r.code for r in hit.post.enrichment.regions] == ["330000", "330100"]
    fragments = {h.field: list(h.fragments) for h in hit.highlights}
    assert any("<em>受贿</em>" in f for f in fragments["text_simplified"])
    assert fragments["title"] == ["某县住建局局长涉嫌<em>受贿</em>"]


async def test_newest_first_matches_and_marks_as_relevance_order_does(
    gateway: tuple[Gateway, grpc.aio.Channel], tokens: dict[str, str]
) -> None:
    # Ordered by a field, the search runs unscored (filter context): the posts found and the words marked stay.
    stub = search_pb2_grpc.SearchServiceStub(gateway[1])
    office = _auth(tokens["office"])
    found = {}
    for order in (search_pb2.SEARCH_ORDER_RELEVANCE, search_pb2.SEARCH_ORDER_NEWEST):
        request = search_pb2.SearchPostsRequest(
            query="受贿 局长", order=order, filter=search_pb2.PostFilter(include_duplicates=True)
        )
        reply = await stub.SearchPosts(request, metadata=office)
        found[order] = {hit.post.id: sorted(f for h in hit.highlights for f in h.fragments) for hit in reply.hits}
    assert found[search_pb2.SEARCH_ORDER_NEWEST] == found[search_pb2.SEARCH_ORDER_RELEVANCE]
    assert "p-bribe" in found[search_pb2.SEARCH_ORDER_NEWEST]
    assert any("<em>受贿</em>" in f for f in found[search_pb2.SEARCH_ORDER_NEWEST]["p-bribe"])


async def test_traditional_query_and_filters(gateway: tuple[Gateway, grpc.aio.Channel], tokens: dict[str, str]) -> None:
    _, channel = gateway
    stub = search_pb2_grpc.SearchServiceStub(channel)
    office = _auth(tokens["office"])

    async def ids(**kwargs: Any) -> list[str]:
        reply = await stub.SearchPosts(search_pb2.SearchPostsRequest(**kwargs), metadata=office)
        return [hit.post.id for hit in reply.hits]

    assert await ids(query="受賄") == ["p-bribe"]
    assert set(await ids(query="受贿", filter=search_pb2.PostFilter(include_duplicates=True))) == {
        "p-bribe",
        "p-bribe-repost",
    }
    assert await ids(query='"住建局局长" 受贿', filter=search_pb2.PostFilter(region_code="330100")) == ["p-bribe"]
    assert await ids(query='"住建局局长" 受贿', filter=search_pb2.PostFilter(region_code="110000")) == []
    assert await ids(query="局长住建局") == [], "a word keeps its characters in order"
    assert await ids(filter=search_pb2.PostFilter(region_code="330000"), order=search_pb2.SEARCH_ORDER_NEWEST) == [
        "p-road",
        "p-bribe",
    ]
    assert await ids(order=search_pb2.SEARCH_ORDER_REACH) == ["p-bribe", "p-praise", "p-road"]
    categories = search_pb2.PostFilter(categories=[post_pb2.CORRUPTION_CATEGORY_BRIBERY])
    assert await ids(filter=categories) == ["p-bribe"]


async def test_paging_walks_every_hit_once(gateway: tuple[Gateway, grpc.aio.Channel], tokens: dict[str, str]) -> None:
    _, channel = gateway
    stub = search_pb2_grpc.SearchServiceStub(channel)
    seen: list[str] = []
    token = ""
    for _ in range(10):
        request = search_pb2.SearchPostsRequest(page_size=1, page_token=token, order=search_pb2.SEARCH_ORDER_NEWEST)
        reply = await stub.SearchPosts(request, metadata=_auth(tokens["office"]))
        seen += [hit.post.id for hit in reply.hits]
        token = reply.next_page_token
        if not token:
            break
    assert seen == ["p-road", "p-praise", "p-bribe"]


async def test_bad_requests_are_invalid_argument_with_details(
    gateway: tuple[Gateway, grpc.aio.Channel], tokens: dict[str, str]
) -> None:
    _, channel = gateway
    stub = search_pb2_grpc.SearchServiceStub(channel)
    first = await stub.SearchPosts(search_pb2.SearchPostsRequest(page_size=1), metadata=_auth(tokens["office"]))
    replayed = search_pb2.SearchPostsRequest(query="受贿", page_size=1, page_token=first.next_page_token)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SearchPosts(replayed, metadata=_auth(tokens["office"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in (err.value.details() or "")
    details = dict(err.value.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("ERROR_REASON_INVALID_PAGE_TOKEN", "qingfeng.v1")

    with pytest.raises(grpc.aio.AioRpcError) as err:
        bad_region = search_pb2.SearchPostsRequest(filter=search_pb2.PostFilter(region_code="33"))
        await stub.SearchPosts(bad_region, metadata=_auth(tokens["office"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "filter.region_code" in (err.value.details() or "")


async def test_search_needs_a_grant(gateway: tuple[Gateway, grpc.aio.Channel], tokens: dict[str, str]) -> None:
    _, channel = gateway
    stub = search_pb2_grpc.SearchServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SearchPosts(search_pb2.SearchPostsRequest(query="受贿"), metadata=_auth(tokens["police"]))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_grpc_search_events(gateway: tuple[Gateway, grpc.aio.Channel], tokens: dict[str, str]) -> None:
    _, channel = gateway
    stub = search_pb2_grpc.SearchServiceStub(channel)
    office = _auth(tokens["office"])
    reply = await stub.SearchEvents(search_pb2.SearchEventsRequest(query="受贿"), metadata=office)
    assert [hit.event.id for hit in reply.hits] == ["e-bribe"], "merged events are hidden"
    assert reply.hits[0].event.level == common_pb2.WARNING_LEVEL_ORANGE
    assert any("<em>" in f for h in reply.hits[0].highlights for f in h.fragments)
    reach = await stub.SearchEvents(
        search_pb2.SearchEventsRequest(order=search_pb2.SEARCH_ORDER_REACH), metadata=office
    )
    assert [hit.event.id for hit in reach.hits] == ["e-bribe", "e-canteen"], "level first, then post_count"
    orange = search_pb2.SearchEventsRequest(filter=search_pb2.EventFilter(min_level=common_pb2.WARNING_LEVEL_ORANGE))
    assert [h.event.id for h in (await stub.SearchEvents(orange, metadata=office)).hits] == ["e-bribe"]


async def test_http_api_searches_with_a_bearer_token(
    gateway: tuple[Gateway, grpc.aio.Channel], tokens: dict[str, str]
) -> None:
    built, _ = gateway
    transport = httpx.ASGITransport(app=built.http_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        anonymous = await client.get("/api/search/posts", params={"q": "受贿"})
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "UNAUTHENTICATED"
        assert anonymous.headers["www-authenticate"].startswith("Bearer")

        police = await client.get(
            "/api/search/posts", params={"q": "受贿"}, headers={"Authorization": f"Bearer {tokens['police']}"}
        )
        assert police.status_code == 403

        office = {"Authorization": f"Bearer {tokens['office']}"}
        reply = await client.get("/api/search/posts", params={"q": "受贿"}, headers=office)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert [hit["post"]["id"] for hit in body["hits"]] == ["p-bribe"]
        assert any("<em>受贿</em>" in f for h in body["hits"][0]["highlights"] for f in h["fragments"])

        events = await client.get("/api/search/events", params={"q": "受贿", "min_level": "orange"}, headers=office)
        assert [hit["event"]["id"] for hit in events.json()["hits"]] == ["e-bribe"]

        bad = await client.get("/api/search/posts", params={"page_size": "-1"}, headers=office)
        assert bad.status_code == 400
        assert bad.json()["error"]["field"] == "page_size"
