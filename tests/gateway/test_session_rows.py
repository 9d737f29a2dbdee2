"""Console sessions in the shared SQL store, on SQLite and on PostgreSQL: a session opened on one gateway instance is
accepted by a second one over the same database and after a restart; expired and tampered cookies are refused; the
table holds neither a live session id nor a token; sign-out and a revoked token end sessions for every instance."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from qingfeng.storage import build_engine
from qingfeng.v1 import search_pb2
from sqlalchemy import select, update
from starlette.middleware import Middleware

from gateway.access import PolicyFile, hash_token
from gateway.http import create_app
from gateway.ratelimit import FailureLimiter, RateLimiter
from gateway.session_rows import SqlRows, sessions_t
from gateway.sessions import COOKIE_NAME, SessionMiddleware, SessionStore, session_routes
from tests.libs.storage.conftest import pg_admin_url, pg_database_url

__all__ = ["pg_admin_url", "pg_database_url"]  # fixtures of the throwaway PostgreSQL cluster


class _Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class _Searcher:
    async def search_posts(self, request: search_pb2.SearchPostsRequest, scope: Any = None) -> Any:
        return search_pb2.SearchPostsResponse(total=7)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    return str(request.getfixturevalue("pg_database_url"))


@pytest.fixture
def policy(tmp_path: Path, policy_text: str) -> PolicyFile:
    path = tmp_path / "access.yaml"
    path.write_text(policy_text, encoding="utf-8")
    return PolicyFile(path, check_interval_s=0.0)


class Instance:
    """One gateway's console app over the shared database (its own engine, as a separate process would have)."""

    def __init__(self, url: str, policy: PolicyFile, clock: _Clock) -> None:
        self.rows = SqlRows(url)
        self.store = SessionStore(idle_s=60.0, max_s=300.0, clock=clock, rows=self.rows)
        app = create_app(
            policy=policy,
            limiter=RateLimiter(rate_per_s=100.0, burst=100),
            searcher=_Searcher(),  # type: ignore[arg-type]
            extra_routes=session_routes(self.store, policy, FailureLimiter(max_failures=3, window_s=60.0)),
            inner_middleware=[Middleware(SessionMiddleware, store=self.store, policy=policy)],
        )
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gateway")

    async def call(self, method: str, path: str, cookie: str, **kw: Any) -> httpx.Response:
        self.http.cookies.clear()  # only the cookie handed in: no client-side carry-over between instances
        headers = {"Cookie": f"{COOKIE_NAME}={cookie}", **kw.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kw)

    async def close(self) -> None:
        await self.http.aclose()
        await self.rows.close()


@pytest.fixture
async def two(db_url: str, policy: PolicyFile) -> AsyncIterator[tuple[Instance, Instance, _Clock]]:
    clock = _Clock()
    a, b = Instance(db_url, policy, clock), Instance(db_url, policy, clock)
    try:
        yield a, b, clock
    finally:
        await a.close()
        await b.close()


async def _sign_in(instance: Instance, token: str) -> tuple[str, str]:
    instance.http.cookies.clear()  # a fresh sign-in, not one from inside another session
    reply = await instance.http.post("/api/session", json={"token": token})
    assert reply.status_code == 200, reply.text
    cookie = reply.cookies.get(COOKIE_NAME)
    assert cookie
    return cookie, reply.json()["csrf_token"]


async def test_a_session_works_on_another_instance_and_after_a_restart(
    two: tuple[Instance, Instance, _Clock], tokens: dict[str, str], db_url: str, policy: PolicyFile
) -> None:
    a, b, clock = two
    cookie, csrf = await _sign_in(a, tokens["office"])
    on_b = await b.call("GET", "/api/session", cookie)
    assert on_b.status_code == 200 and on_b.json()["identity"]["name"] == "office-1"
    assert on_b.json()["csrf_token"] == csrf, "the CSRF token is the session's, whichever instance answers"
    assert (await b.call("GET", "/api/search/posts", cookie, params={"q": "受贿"})).json()["total"] == "7"
    # A restart: both instances gone, a new one over the same database.
    await a.close()
    await b.close()
    clock.now += 30
    c = Instance(db_url, policy, clock)
    try:
        assert (await c.call("GET", "/api/session", cookie)).status_code == 200
        # Writes still need the session's CSRF token; sign-out on one instance ends it for all.
        assert (await c.call("DELETE", "/api/session", cookie)).status_code == 403
        assert (await c.call("DELETE", "/api/session", cookie, headers={"X-CSRF-Token": csrf})).status_code == 200
        d = Instance(db_url, policy, clock)
        try:
            assert (await d.call("GET", "/api/session", cookie)).status_code == 401
        finally:
            await d.close()
    finally:
        await c.close()


async def test_expired_and_tampered_cookies_are_refused(
    two: tuple[Instance, Instance, _Clock], tokens: dict[str, str]
) -> None:
    a, b, clock = two
    cookie, _ = await _sign_in(a, tokens["office"])
    tampered = cookie[:-1] + ("A" if cookie[-1] != "A" else "B")
    assert (await b.call("GET", "/api/session", tampered)).status_code == 401
    assert (await b.call("GET", "/api/session", "x" * 500)).status_code == 401
    assert (await b.call("GET", "/api/session", cookie)).status_code == 200, "the real one still works"
    clock.now += 61  # idle longer than idle_s
    assert (await b.call("GET", "/api/session", cookie)).status_code == 401
    assert (await a.call("GET", "/api/session", cookie)).status_code == 401
    assert await a.store.count() == 0, "the expired row is gone"
    # The absolute maximum ends a session in use all along.
    cookie, _ = await _sign_in(a, tokens["office"])
    statuses = []
    for _ in range(6):
        clock.now += 55
        statuses.append((await b.call("GET", "/api/session", cookie)).status_code)
    assert statuses == [200, 200, 200, 200, 200, 401]


async def test_the_table_holds_no_live_id_or_token_and_rows_cannot_be_swapped(
    two: tuple[Instance, Instance, _Clock], tokens: dict[str, str], db_url: str
) -> None:
    a, b, _ = two
    office, _ = await _sign_in(a, tokens["office"])
    police, _ = await _sign_in(a, tokens["police"])
    engine = build_engine(db_url)
    try:
        async with engine.begin() as conn:
            rows = (await conn.execute(select(sessions_t))).all()
            dump = repr(rows)
            for secret in (office, police, tokens["office"], tokens["police"]):
                assert secret not in dump and secret.encode() not in b"".join(r.sealed_token for r in rows)
            by_id = {r.id_sha256: r for r in rows}
            office_key = hashlib.sha256(office.encode()).hexdigest()
            police_key = hashlib.sha256(police.encode()).hexdigest()
            assert set(by_id) == {office_key, police_key}
            assert by_id[office_key].token_sha256 == hash_token(tokens["office"])
            # Someone with write access copies the office's sealed token into the police session's row.
            await conn.execute(
                update(sessions_t)
                .where(sessions_t.c.id_sha256 == police_key)
                .values(sealed_token=by_id[office_key].sealed_token)
            )
    finally:
        await engine.dispose()
    assert (await b.call("GET", "/api/session", police)).status_code == 401, "a token sealed for another session"
    assert (await b.call("GET", "/api/session", office)).status_code == 200


async def test_a_revoked_token_ends_its_sessions_on_every_instance(
    two: tuple[Instance, Instance, _Clock], tokens: dict[str, str], policy: PolicyFile, policy_text: str
) -> None:
    a, b, _ = two
    first, _ = await _sign_in(a, tokens["office"])
    second, _ = await _sign_in(b, tokens["office"])
    other, _ = await _sign_in(a, tokens["police"])
    assert await a.store.count() == 3
    policy.path.write_text(policy_text.replace(hash_token(tokens["office"]), "f" * 64), encoding="utf-8")
    policy.reload()
    assert (await b.call("GET", "/api/search/posts", first, params={"q": "受贿"})).status_code == 401
    assert await a.store.count() == 1, "both sessions of the revoked token are gone, the police's stays"
    assert (await a.call("GET", "/api/session", second)).status_code == 401
    assert (await a.call("GET", "/api/session", other)).status_code == 200
