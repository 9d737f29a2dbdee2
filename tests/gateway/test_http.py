"""The console's HTTP app without a cluster: auth, errors, audit, headers, the page, and uvicorn in the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from qingfeng.v1 import common_pb2, post_pb2, search_pb2

from gateway.access import AccessPolicy
from gateway.app import bind_http, http_loop
from gateway.http import create_app
from gateway.ratelimit import ConcurrencyLimiter, FailureLimiter, RateLimiter
from gateway.search import SearchFailed, SearchRequestError, SearchUnavailable
from gateway.search_query import SearchScope
from gateway.settings import HttpSettings


class _StubSearcher:
    """Stands in for ``Searcher``: records requests, answers one hit, fails on demand."""

    def __init__(self) -> None:
        self.posts: list[search_pb2.SearchPostsRequest] = []
        self.events: list[search_pb2.SearchEventsRequest] = []
        self.fail: Exception | None = None
        self.trace_ids: list[int] = []
        self.scopes: list[SearchScope | None] = []

    async def search_posts(
        self, request: search_pb2.SearchPostsRequest, scope: SearchScope | None = None
    ) -> search_pb2.SearchPostsResponse:
        self.posts.append(request)
        self.scopes.append(scope)
        self.trace_ids.append(trace.get_current_span().get_span_context().trace_id)
        if self.fail:
            raise self.fail
        hit = search_pb2.PostHit(
            post=post_pb2.Post(id="p1", title="某局长涉嫌受贿"),
            score=1.5,
            highlights=[search_pb2.Highlight(field="title", fragments=["某局长涉嫌<em>受贿</em>"])],
        )
        return search_pb2.SearchPostsResponse(hits=[hit], total=1)

    async def search_events(
        self, request: search_pb2.SearchEventsRequest, scope: SearchScope | None = None
    ) -> search_pb2.SearchEventsResponse:
        self.events.append(request)
        self.scopes.append(scope)
        return search_pb2.SearchEventsResponse(total=0)


@pytest.fixture
def searcher() -> _StubSearcher:
    return _StubSearcher()


@pytest.fixture
async def client(policy: AccessPolicy, searcher: _StubSearcher) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(policy=policy, limiter=RateLimiter(rate_per_s=0.001, burst=5), searcher=searcher)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
        yield http


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_healthz_and_console_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    page = await client.get("/")
    assert page.status_code == 200 and "清风" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    script = await client.get("/static/console.js")
    assert script.status_code == 200 and "sessionStorage" in script.text


@pytest.mark.parametrize("header", [{}, {"Authorization": "Bearer forged"}, {"Authorization": "Basic b2ZmaWNl"}])
async def test_api_without_a_valid_token_is_401(client: httpx.AsyncClient, header: dict[str, str]) -> None:
    reply = await client.get("/api/search/posts", params={"q": "受贿"}, headers=header)
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "UNAUTHENTICATED"
    assert reply.headers["www-authenticate"].startswith("Bearer")


async def test_api_without_the_grant_is_403(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    reply = await client.get("/api/search/events", headers=_auth(tokens["newspaper"]))
    assert reply.status_code == 403
    assert "may not call /qingfeng.v1.SearchService/SearchEvents" in reply.json()["error"]["message"]


async def test_api_maps_parameters_and_answers_json(
    client: httpx.AsyncClient, searcher: _StubSearcher, tokens: dict[str, str]
) -> None:
    params = {
        "q": "受贿",
        "page_size": "5",
        "order": "newest",
        "region_code": "330100",
        "media_only": "true",
        "created_after": "2025-03-01T00:00:00Z",
    }
    reply = await client.get("/api/search/posts", params=params, headers=_auth(tokens["office"]))
    assert reply.status_code == 200
    assert reply.headers["cache-control"] == "no-store"
    body = reply.json()
    assert body["hits"][0]["post"]["id"] == "p1"
    assert body["hits"][0]["highlights"][0]["fragments"] == ["某局长涉嫌<em>受贿</em>"]
    [request] = searcher.posts
    assert (request.query, request.page_size, request.order) == ("受贿", 5, search_pb2.SEARCH_ORDER_NEWEST)
    assert request.filter.region_code == "330100" and request.filter.media_only
    assert request.filter.created.start_time.ToJsonString() == "2025-03-01T00:00:00Z"

    events = await client.get("/api/search/events", params={"min_level": "orange"}, headers=_auth(tokens["office"]))
    assert events.status_code == 200
    assert searcher.events[0].filter.min_level == common_pb2.WARNING_LEVEL_ORANGE


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page_size": "many"}, "page_size"),
        ({"order": "random"}, "order"),
        ({"media_only": "perhaps"}, "media_only"),
        ({"created_before": "yesterday"}, "created_before"),
    ],
)
async def test_malformed_parameters_are_400(
    client: httpx.AsyncClient, tokens: dict[str, str], params: dict[str, str], field: str
) -> None:
    reply = await client.get("/api/search/posts", params=params, headers=_auth(tokens["office"]))
    assert reply.status_code == 400
    assert reply.json()["error"]["field"] == field


async def test_searcher_errors_map_to_400_and_503(
    client: httpx.AsyncClient, searcher: _StubSearcher, tokens: dict[str, str]
) -> None:
    searcher.fail = SearchRequestError("page_token", "bad", reason="ERROR_REASON_INVALID_PAGE_TOKEN")
    reply = await client.get("/api/search/posts", headers=_auth(tokens["office"]))
    assert reply.status_code == 400 and reply.json()["error"]["reason"] == "ERROR_REASON_INVALID_PAGE_TOKEN"
    searcher.fail = SearchUnavailable("search cluster unavailable")
    assert (await client.get("/api/search/posts", headers=_auth(tokens["office"]))).status_code == 503
    searcher.fail = SearchFailed("search failed on the server side; the gateway logged the cause")
    reply = await client.get("/api/search/posts", headers=_auth(tokens["office"]))
    assert reply.status_code == 500 and reply.json()["error"]["code"] == "INTERNAL"


async def test_each_search_runs_in_the_callers_scope(
    client: httpx.AsyncClient, searcher: _StubSearcher, tokens: dict[str, str]
) -> None:
    assert (await client.get("/api/search/posts", headers=_auth(tokens["reader"]))).status_code == 200
    assert (await client.get("/api/search/events", headers=_auth(tokens["reader"]))).status_code == 200
    assert (await client.get("/api/search/posts", headers=_auth(tokens["office"]))).status_code == 200
    reader = SearchScope(see_tips=False, region_codes=("330000",))
    assert searcher.scopes == [reader, reader, SearchScope(see_tips=True)]


async def test_failed_authentications_are_limited_per_address(
    policy: AccessPolicy, searcher: _StubSearcher, tokens: dict[str, str]
) -> None:
    failures = FailureLimiter(max_failures=3, window_s=60.0)
    app = create_app(
        policy=policy,
        limiter=RateLimiter(rate_per_s=100.0, burst=100),
        searcher=searcher,  # type: ignore[arg-type]
        failures=failures,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
        guesses = [(await http.get("/api/search/posts", headers=_auth(f"guess-{i}"))).status_code for i in range(5)]
        assert guesses == [401, 401, 401, 429, 429]
        # Even the right token waits out the window: a guesser cannot tell a hit from the refusal.
        assert (await http.get("/api/search/posts", headers=_auth(tokens["office"]))).status_code == 429
    # Keyed like the gRPC guard's peers, so guesses over HTTP and gRPC from one address count together.
    assert failures.blocked("ipv4:127.0.0.1")


async def test_the_callers_trace_continues(
    client: httpx.AsyncClient, searcher: _StubSearcher, tokens: dict[str, str]
) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = {**_auth(tokens["office"]), "traceparent": traceparent}
    assert (await client.get("/api/search/posts", headers=headers)).status_code == 200
    assert searcher.trace_ids == [0x4BF92F3577B34DA6A3CE929D0E0E4736]


async def test_rate_limit_is_429(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    codes = [(await client.get("/api/search/posts", headers=_auth(tokens["office"]))).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]


async def test_every_call_is_audited(
    client: httpx.AsyncClient, tokens: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="qingfeng.audit"):
        await client.get("/api/search/posts", headers=_auth(tokens["office"]))
        await client.get("/api/search/posts")
        await client.get("/healthz")
    lines: list[dict[str, Any]] = [r.__dict__ for r in caplog.records if r.name == "qingfeng.audit"]
    assert [(x["path"], x["status"], x["principal"]) for x in lines] == [
        ("/api/search/posts", 200, "office-1"),
        ("/api/search/posts", 401, None),
        ("/healthz", 200, None),
    ]
    assert lines[0]["method"] == "/qingfeng.v1.SearchService/SearchPosts"
    assert [r.levelno for r in caplog.records if r.name == "qingfeng.audit"][1] == logging.INFO


async def test_uvicorn_serves_in_the_event_loop_until_stop(policy: AccessPolicy, searcher: _StubSearcher) -> None:
    sock = bind_http(HttpSettings(port=0))
    port = sock.getsockname()[1]
    app = create_app(policy=policy, limiter=RateLimiter(rate_per_s=1.0, burst=1), searcher=searcher)  # type: ignore[arg-type]
    stop = asyncio.Event()
    serving = asyncio.create_task(http_loop(app, sock, grace_s=1.0)(stop))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for _ in range(50):
            try:
                reply = await http.get("/healthz")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
        assert reply.status_code == 200
    stop.set()
    await asyncio.wait_for(serving, timeout=10)
    assert sock.fileno() == -1, "the socket is closed on stop"


def test_a_taken_port_names_the_variable() -> None:
    first = bind_http(HttpSettings(port=0))
    first.listen()
    try:
        with pytest.raises(ValueError, match="QF_GATEWAY_HTTP__PORT"):
            bind_http(HttpSettings(port=first.getsockname()[1]))
    finally:
        first.close()


async def test_concurrent_searches_are_bounded_per_identity(
    policy: AccessPolicy, searcher: _StubSearcher, tokens: dict[str, str]
) -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()

    class _Slow(_StubSearcher):
        async def search_posts(
            self, request: search_pb2.SearchPostsRequest, scope: SearchScope | None = None
        ) -> search_pb2.SearchPostsResponse:
            entered.set()
            await gate.wait()
            return search_pb2.SearchPostsResponse()

    in_flight = ConcurrencyLimiter(per_identity=1, streams_per_identity=1, per_server=10)
    app = create_app(
        policy=policy,
        limiter=RateLimiter(rate_per_s=100.0, burst=100),
        searcher=_Slow(),  # type: ignore[arg-type]
        concurrency=in_flight,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
        first = asyncio.create_task(http.get("/api/search/posts", headers=_auth(tokens["office"])))
        await asyncio.wait_for(entered.wait(), 5)
        second = await http.get("/api/search/posts", headers=_auth(tokens["office"]))
        assert second.status_code == 429 and "1 calls in flight" in second.json()["error"]["message"]
        gate.set()
        assert (await first).status_code == 200
    assert in_flight.in_flight() == 0
