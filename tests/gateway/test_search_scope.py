"""Need-to-know in search, against the real Elasticsearch: a tip is found only by identities with ``see_tips``, and
an identity limited to regions finds nothing outside them, through gRPC and through the HTTP API alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from qingfeng.v1 import common_pb2, search_pb2, search_pb2_grpc

from gateway.app import Gateway
from tests.gateway.search_gateway import indexed_gateway

pytestmark = pytest.mark.integration

POSTS: list[tuple[str, dict[str, Any]]] = [
    (
        "p-tip",
        {
            "title": "线索：某局长公款旅游",
            "text_simplified": "线索：某局长公款旅游，知情人提供行程单",
            "source_kind": "SOURCE_KIND_MANUAL_TIP",
            "source_id": "manual-tip",
            "created_at": "2025-03-01T08:00:00Z",
            "region_codes": ["330000", "330100"],
        },
    ),
    (
        "p-public",
        {
            "title": "网传某局长公款旅游",
            "text_simplified": "网传某局长公款旅游",
            "source_kind": "SOURCE_KIND_WEIBO_API",
            "source_id": "weibo-zj",
            "created_at": "2025-03-01T09:00:00Z",
            "region_codes": ["330000", "330100"],
        },
    ),
    (
        "p-beijing",
        {
            "title": "另一地公款旅游",
            "text_simplified": "另一地公款旅游",
            "source_kind": "SOURCE_KIND_RSS",
            "source_id": "rss-bj",
            "created_at": "2025-03-01T10:00:00Z",
            "region_codes": ["110000", "110101"],
        },
    ),
]
EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("e-zj", {"title": "某局长公款旅游", "level": "WARNING_LEVEL_YELLOW", "region_codes": ["330100"]}),
    ("e-bj", {"title": "另一地公款旅游", "level": "WARNING_LEVEL_YELLOW", "region_codes": ["110101"]}),
]
QUERY = "公款旅游"


@pytest.fixture
async def gateway(es_url: str, policy_file: Path) -> AsyncIterator[tuple[Gateway, grpc.aio.Channel]]:
    documents = {
        family: [(i, {"id": i, **d}) for i, d in docs] for family, docs in (("posts", POSTS), ("events", EVENTS))
    }
    async with indexed_gateway(es_url, policy_file, "scope", documents) as served:
        yield served


def _auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def test_a_tip_is_invisible_over_grpc_to_a_role_that_may_not_see_tips(
    gateway: tuple[Gateway, grpc.aio.Channel], tokens: dict[str, str]
) -> None:
    _, channel = gateway
    stub = search_pb2_grpc.SearchServiceStub(channel)

    async def ids(token: str, **kwargs: Any) -> list[str]:
        request = search_pb2.SearchPostsRequest(query=QUERY, order=search_pb2.SEARCH_ORDER_NEWEST, **kwargs)
        reply = await stub.SearchPosts(request, metadata=_auth(token))
        return [hit.post.id for hit in reply.hits]

    # The office (see_tips, no region limit) finds everything; the reader (no see_tips, Zhejiang only) the public
    # Zhejiang post alone.
    assert await ids(tokens["office"]) == ["p-beijing", "p-public", "p-tip"]
    assert await ids(tokens["reader"]) == ["p-public"]
    tips_only = search_pb2.PostFilter(source_kinds=[common_pb2.SOURCE_KIND_MANUAL_TIP])
    assert await ids(tokens["office"], filter=tips_only) == ["p-tip"]
    assert await ids(tokens["reader"], filter=tips_only) == [], "asking for tips explicitly does not help"
    beijing = search_pb2.PostFilter(region_code="110000")
    assert await ids(tokens["reader"], filter=beijing) == [], "the scope's regions AND the request's"
    reply = await stub.SearchPosts(search_pb2.SearchPostsRequest(query="行程单"), metadata=_auth(tokens["reader"]))
    assert reply.total == 0, "not even the count gives a tip away"

    events = await stub.SearchEvents(search_pb2.SearchEventsRequest(query=QUERY), metadata=_auth(tokens["reader"]))
    assert [hit.event.id for hit in events.hits] == ["e-zj"]


async def test_a_tip_is_invisible_over_http_to_a_role_that_may_not_see_tips(
    gateway: tuple[Gateway, grpc.aio.Channel], tokens: dict[str, str]
) -> None:
    built, _ = gateway
    transport = httpx.ASGITransport(app=built.http_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:

        async def ids(token: str) -> list[str]:
            reply = await client.get(
                "/api/search/posts",
                params={"q": QUERY, "order": "newest"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert reply.status_code == 200, reply.text
            return [hit["post"]["id"] for hit in reply.json().get("hits", [])]

        assert await ids(tokens["office"]) == ["p-beijing", "p-public", "p-tip"]
        assert await ids(tokens["reader"]) == ["p-public"]
