"""Console sign-in: the token is exchanged for a short HttpOnly/Secure/SameSite=Strict session; writes need the
session's CSRF token; sessions expire (idle and absolute) and end on logout or when the identity is revoked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from qingfeng.v1 import search_pb2
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.access import AccessPolicy, PolicyFile, hash_token
from gateway.http import create_app
from gateway.ratelimit import FailureLimiter, RateLimiter
from gateway.sessions import COOKIE_NAME, SessionMiddleware, SessionStore, session_routes


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Searcher:
    async def search_posts(self, request: search_pb2.SearchPostsRequest, scope: Any = None) -> Any:
        return search_pb2.SearchPostsResponse(total=7)


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def store(clock: _Clock) -> SessionStore:
    return SessionStore(idle_s=60.0, max_s=300.0, clock=clock)


@pytest.fixture
async def client(policy: AccessPolicy, store: SessionStore) -> AsyncIterator[httpx.AsyncClient]:
    writes: list[str] = []

    async def write(request: Request) -> JSONResponse:
        # Stands for any write route: reached only past the CSRF check, with the session's bearer header.
        writes.append(request.headers.get("authorization", ""))
        return JSONResponse({"written": True})

    app = create_app(
        policy=policy,
        limiter=RateLimiter(rate_per_s=100.0, burst=100),
        searcher=_Searcher(),  # type: ignore[arg-type]
        extra_routes=[
            *session_routes(store, policy, FailureLimiter(max_failures=3, window_s=60.0)),
            Route("/api/test-write", write, methods=["POST"]),
        ],
        inner_middleware=[Middleware(SessionMiddleware, store=store)],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gateway") as http:
        http.app_writes = writes  # type: ignore[attr-defined]
        yield http


async def _sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/session", json={"token": token})


async def test_sign_in_sets_a_strict_http_only_secure_cookie(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    reply = await _sign_in(client, tokens["office"])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["identity"]["name"] == "office-1" and body["identity"]["agency"] == "opinion_office"
    assert len(body["csrf_token"]) >= 32 and 0 < body["expires_in_s"] <= 60
    cookie = reply.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert {"httponly", "secure", "path"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
    assert tokens["office"] not in cookie, "the cookie holds a random id, never the token"
    who = await client.get("/api/session")
    assert who.status_code == 200 and who.json()["identity"]["name"] == "office-1"
    assert who.json()["csrf_token"] == body["csrf_token"]


async def test_the_session_authenticates_api_calls(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    assert (await client.get("/api/search/posts", params={"q": "受贿"})).status_code == 401
    await _sign_in(client, tokens["office"])
    reply = await client.get("/api/search/posts", params={"q": "受贿"})
    assert reply.status_code == 200 and reply.json()["total"] == "7"


async def test_a_session_keeps_the_identitys_grants(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    await _sign_in(client, tokens["police"])  # police may not search
    reply = await client.get("/api/search/posts", params={"q": "受贿"})
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "PERMISSION_DENIED"


@pytest.mark.parametrize("header", [None, "", "wrong-token"])
async def test_a_write_without_the_right_csrf_token_is_refused(
    client: httpx.AsyncClient, tokens: dict[str, str], header: str | None
) -> None:
    await _sign_in(client, tokens["office"])
    headers = {} if header is None else {"X-CSRF-Token": header}
    reply = await client.post("/api/test-write", json={}, headers=headers)
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "CSRF_REFUSED"
    assert client.app_writes == []  # type: ignore[attr-defined]


async def test_a_write_with_the_csrf_token_goes_through(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    csrf = (await _sign_in(client, tokens["office"])).json()["csrf_token"]
    reply = await client.post("/api/test-write", json={}, headers={"X-CSRF-Token": csrf})
    assert reply.status_code == 200
    assert client.app_writes == [f"Bearer {tokens['office']}"]  # type: ignore[attr-defined]


async def test_logout_needs_csrf_ends_the_session_and_clears_the_cookie(
    client: httpx.AsyncClient, tokens: dict[str, str], store: SessionStore
) -> None:
    csrf = (await _sign_in(client, tokens["office"])).json()["csrf_token"]
    assert (await client.delete("/api/session")).status_code == 403
    assert await store.count() == 1
    reply = await client.delete("/api/session", headers={"X-CSRF-Token": csrf})
    assert reply.status_code == 200 and reply.json() == {"signed_out": True}
    assert "max-age=0" in reply.headers["set-cookie"].lower()
    assert await store.count() == 0
    assert (await client.get("/api/session")).status_code == 401


async def test_sessions_expire_when_idle_and_after_their_maximum(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: _Clock
) -> None:
    await _sign_in(client, tokens["office"])
    clock.now += 59
    assert (await client.get("/api/session")).status_code == 200  # the idle clock restarts
    clock.now += 59
    assert (await client.get("/api/session")).status_code == 200
    clock.now += 61
    assert (await client.get("/api/session")).status_code == 401, "idle for longer than idle_s"
    await _sign_in(client, tokens["office"])
    for _ in range(6):  # active all along, but the absolute maximum (300 s) ends it
        clock.now += 55
        status = (await client.get("/api/session")).status_code
    assert status == 401


async def test_a_bad_token_gets_no_session_and_guesses_are_limited(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        reply = await _sign_in(client, "forged")
        assert reply.status_code == 401 and "set-cookie" not in reply.headers
    assert (await _sign_in(client, "forged")).status_code == 429


async def test_sign_in_takes_json_only(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    reply = await client.post("/api/session", data={"token": tokens["office"]})
    assert reply.status_code == 415 and "set-cookie" not in reply.headers


async def test_a_revoked_identity_loses_its_session(
    tokens: dict[str, str], policy_text: str, tmp_path: Path, clock: _Clock
) -> None:
    path = tmp_path / "access.yaml"
    path.write_text(policy_text, encoding="utf-8")
    policy = PolicyFile(path, check_interval_s=0.0)
    store = SessionStore(clock=clock)
    app = create_app(
        policy=policy,
        limiter=RateLimiter(rate_per_s=100.0, burst=100),
        searcher=_Searcher(),  # type: ignore[arg-type]
        extra_routes=session_routes(store, policy, FailureLimiter(max_failures=3, window_s=60.0)),
        inner_middleware=[Middleware(SessionMiddleware, store=store, policy=policy)],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gateway") as http:
        assert (await _sign_in(http, tokens["office"])).status_code == 200
        assert (await http.get("/api/search/posts", params={"q": "受贿"})).status_code == 200
        # The session holds the token, not a verdict: once the policy drops the token, the next call is refused.
        path.write_text(policy_text.replace(hash_token(tokens["office"]), "f" * 64), encoding="utf-8")
        policy.reload()
        assert (await http.get("/api/search/posts", params={"q": "受贿"})).status_code == 401
        assert (await http.get("/api/session")).status_code == 401
    assert await store.count() == 0
