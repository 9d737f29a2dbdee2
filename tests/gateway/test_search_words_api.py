"""The words-aware post search through the gateway (gRPC and HTTP) against the real Elasticsearch: whole words rank
first, highlights read as text, signed page tokens (a tampered one is INVALID_ARGUMENT), charts on request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from pydantic import SecretStr
from qingfeng.v1 import common_pb2, post_pb2, search_pb2, search_pb2_grpc

from gateway.app import Gateway
from services.collector.indexer import post_document
from tests.gateway.search_gateway import indexed_gateway

pytestmark = pytest.mark.integration

TEXTS = {
    "word": "某局长涉嫌受贿被查",  # 受贿 as a word
    "inside": "他拒绝接受贿赂",  # 受贿 as adjacent characters inside 接受 + 贿赂: found, ranked lower
    "apart": "他受到表扬，贿选传闻不实",  # 受…贿 apart: no match
    "other": "城东道路施工，请市民绕行",
}


def _post(key: str, text: str, day: int) -> post_pb2.Post:
    post = post_pb2.Post(id=f"p-{key}", source_id="s", source_kind=common_pb2.SOURCE_KIND_RSS, text=text)
    post.text_simplified = text
    post.created_at.FromJsonString(f"2025-03-0{day}T08:00:00Z")
    post.author.id = f"u-{key}"
    post.author.name = f"作者{key}"
    return post


@pytest.fixture
async def gateway(es_url: str, policy_file: Path) -> AsyncIterator[tuple[Gateway, grpc.aio.Channel]]:
    docs = [(f"p-{k}", post_document(_post(k, t, n + 1))) for n, (k, t) in enumerate(TEXTS.items())]
    async with indexed_gateway(
        es_url, policy_file, "words", {"posts": docs}, merge=True, search_page_token_key=SecretStr("k" * 32)
    ) as served:
        yield served


def _auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def test_whole_words_rank_first_and_highlight_as_text(
    gateway: tuple[Gateway, grpc.aio.Channel], tokens: dict[str, str]
) -> None:
    stub = search_pb2_grpc.SearchServiceStub(gateway[1])
    reply = await stub.SearchPosts(search_pb2.SearchPostsRequest(query="受贿"), metadata=_auth(tokens["office"]))
    assert [h.post.id for h in reply.hits] == ["p-word", "p-inside"], "the word first; 受…贿 apart never"
    assert reply.hits[0].score > reply.hits[1].score
    first = {h.field: list(h.fragments) for h in reply.hits[0].highlights}
    assert first["words"] == ["某局长涉嫌<em>受贿</em>被查"], "the word marked, the splitter's spaces gone"
    second = {h.field: list(h.fragments) for h in reply.hits[1].highlights}
    assert second == {"text_simplified": ["他拒绝接<em>受贿</em>赂"]}, "characters matched, marks merged"


async def test_a_tampered_page_token_is_invalid_argument(
    gateway: tuple[Gateway, grpc.aio.Channel], tokens: dict[str, str]
) -> None:
    stub = search_pb2_grpc.SearchServiceStub(gateway[1])
    office = _auth(tokens["office"])
    first = await stub.SearchPosts(search_pb2.SearchPostsRequest(page_size=2), metadata=office)
    assert len(first.hits) == 2 and first.next_page_token
    second = await stub.SearchPosts(search_pb2.SearchPostsRequest(page_size=2, page_token=first.next_page_token),
                                    metadata=office)  # fmt: skip
    assert {h.post.id for h in first.hits} | {h.post.id for h in second.hits} == {f"p-{k}" for k in TEXTS}
    assert not second.next_page_token
    payload, _, signature = first.next_page_token.partition(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    for bad in (f"{flipped}.{signature}", f"{payload}.{signature[::-1]}", "garbage"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SearchPosts(search_pb2.SearchPostsRequest(page_size=2, page_token=bad), metadata=office)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        status = status_pb2.Status.FromString(dict(err.value.trailing_metadata() or ())["grpc-status-details-bin"])
        info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(info) and info.reason == "ERROR_REASON_INVALID_PAGE_TOKEN"


async def test_charts_over_grpc_and_http(gateway: tuple[Gateway, grpc.aio.Channel], tokens: dict[str, str]) -> None:
    built, channel = gateway
    stub = search_pb2_grpc.SearchServiceStub(channel)
    request = search_pb2.SearchPostsRequest(
        page_size=1, aggregations=search_pb2.PostAggregationsRequest(time_zone="UTC")
    )
    reply = await stub.SearchPosts(request, metadata=_auth(tokens["office"]))
    charts = reply.aggregations
    assert [(b.start_time.ToJsonString(), b.count) for b in charts.histogram] == [
        (f"2025-03-0{n}T00:00:00Z", 1) for n in range(1, 5)
    ]
    assert [(b.key, b.count) for b in charts.source_kinds] == [("SOURCE_KIND_RSS", 4)]
    assert {(b.key, b.label) for b in charts.authors} == {(f"u-{k}", f"作者{k}") for k in TEXTS}
    # Later pages carry no charts and their token does not depend on having asked for them.
    later = await stub.SearchPosts(
        search_pb2.SearchPostsRequest(page_size=1, page_token=reply.next_page_token), metadata=_auth(tokens["office"])
    )
    assert len(later.hits) == 1 and not later.HasField("aggregations")

    transport = httpx.ASGITransport(app=built.http_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        headers = {"Authorization": f"Bearer {tokens['office']}"}
        found = await client.get("/api/search/posts", params={"q": "受贿", "aggs": "true"}, headers=headers)
        assert found.status_code == 200, found.text
        body = found.json()
        assert body["aggregations"]["source_kinds"] == [{"key": "SOURCE_KIND_RSS", "count": "2"}]
        bad = await client.get("/api/search/posts", params={"aggs": "true", "interval": "3w"}, headers=headers)
        assert bad.status_code == 400
        events = await client.get("/api/search/events", params={"aggs": "true"}, headers=headers)
        assert events.status_code == 200 and "aggregations" in events.json()
