"""Console sign-in: an identity's bearer token exchanged for a short session, stored where every replica finds it.

``POST /api/session`` with ``{"token": "..."}`` (JSON only, so a cross-site form cannot post it) checks the token
against the access policy and answers with a session cookie and a CSRF token:

- the cookie ``__Host-qf_session`` is ``HttpOnly`` (page scripts cannot read it), ``Secure``, ``SameSite=Strict``
  and ``Path=/``; it holds a random id only (256 bits), never the token;
- the session ends after ``idle_s`` without a call or ``max_s`` after sign-in, whichever comes first, and on
  ``DELETE /api/session`` (logout); the idle clock is written at most every ``touch_every_s``, so a busy page does
  not write on every call (a session may end up to that much early, never late);
- every write (any method but GET/HEAD/OPTIONS) carried by the cookie must send the session's CSRF token in
  ``X-CSRF-Token``; without it, or with a wrong one, the call is refused with 403 before any route runs.

Sessions are rows of ``session_rows.py``: in SQL (SQLite on one node, PostgreSQL shared by replicas) they survive a
restart and work behind any replica. A row is keyed by the hash of the id and holds the token sealed under a key
derived from the id, so the table alone opens no session. ``SessionMiddleware`` hands the token to the routes as an
``Authorization`` header, so every call is authenticated and authorised again against the *current* policy exactly
like a gRPC call; given the policy, it also ends every session of a token the policy no longer accepts (revoked or
expired) at the first call that finds it so. A request that brings its own ``Authorization`` header is left alone
(scripts and the gRPC-style API keep working); the cookie is then ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.access import Identity, NotAuthenticated, PolicySource, authenticate, current_policy
from gateway.http_guard import peer as peer_of
from gateway.ratelimit import FailureLimiter
from gateway.session_rows import MemoryRows, Row, SessionRows, csrf_of, id_hash, open_token, seal_token

__all__ = ["COOKIE_NAME", "CSRF_HEADER", "Session", "SessionMiddleware", "SessionStore", "session_routes"]

COOKIE_NAME: Final = "__Host-qf_session"
CSRF_HEADER: Final = "x-csrf-token"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_BODY_BYTES: Final = 4096
_MAX_COOKIE_CHARS: Final = 128


@dataclass(frozen=True)
class Session:
    id: str
    token: str
    csrf: str
    identity_name: str
    created_at: float
    last_seen_at: float


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()  # as the access policy stores it


class SessionStore:
    """Creates, finds and ends sessions over ``rows`` (default: this process's memory); ``clock`` is wall-clock
    seconds, since rows outlive the process and are shared between hosts."""

    def __init__(
        self,
        *,
        idle_s: float = 900.0,
        max_s: float = 8 * 3600.0,
        max_sessions: int = 10_000,
        touch_every_s: float | None = None,
        clock: Callable[[], float] = time.time,
        rows: SessionRows | None = None,
    ) -> None:
        self.idle_s = idle_s
        self.max_s = max_s
        self.rows: SessionRows = rows if rows is not None else MemoryRows()
        self._max_sessions = max_sessions
        self._touch_every_s = min(30.0, idle_s / 10) if touch_every_s is None else touch_every_s
        self._clock = clock

    async def create(self, token: str, identity: Identity) -> Session:
        now = self._clock()
        await self.rows.purge(idle_before=now - self.idle_s, created_before=now - self.max_s)
        session_id = secrets.token_urlsafe(32)
        row = Row(id_hash(session_id), _token_hash(token), seal_token(session_id, token), identity.name, now, now)
        await self.rows.put(row, max_rows=self._max_sessions)  # the least recently seen goes: bounded under a flood
        return Session(session_id, token, csrf_of(session_id), identity.name, now, now)

    async def get(self, session_id: str) -> Session | None:
        """The live session (its idle clock restarted), or None when unknown, expired or not sealed for this id."""
        if not session_id or len(session_id) > _MAX_COOKIE_CHARS:
            return None
        key = id_hash(session_id)
        row = await self.rows.get(key)
        if row is None:
            return None
        now = self._clock()
        token = open_token(session_id, row.sealed_token)
        if token is None or now >= row.last_seen_at + self.idle_s or now >= row.created_at + self.max_s:
            await self.rows.delete(key)
            return None
        seen = row.last_seen_at
        if now - seen >= self._touch_every_s:
            await self.rows.touch(key, now)
            seen = now
        return Session(session_id, token, csrf_of(session_id), row.identity_name, row.created_at, seen)

    async def delete(self, session_id: str) -> None:
        await self.rows.delete(id_hash(session_id))

    async def end_token(self, token: str) -> int:
        """End every session opened with ``token`` (revoked or expired in the policy); how many."""
        return await self.rows.delete_token(_token_hash(token))

    def expires_in_s(self, session: Session) -> float:
        now = self._clock()
        return max(0.0, min(session.last_seen_at + self.idle_s, session.created_at + self.max_s) - now)

    async def count(self) -> int:
        return await self.rows.count()


def _cookie(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is no session
                return None
            morsel = jar.get(COOKIE_NAME)
            if morsel is not None:
                return morsel.value
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _refuse(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class SessionMiddleware:
    """Turns a live session cookie into the identity's ``Authorization`` header; refuses writes without CSRF. With
    ``policy``, a session whose token the policy no longer accepts ends (with every other session of that token)."""

    def __init__(self, app: ASGIApp, store: SessionStore, policy: PolicySource | None = None) -> None:
        self._app = app
        self._store = store
        self._policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _header(scope, b"authorization") is not None:
            await self._app(scope, receive, send)
            return
        session_id = _cookie(scope)
        session = await self._store.get(session_id) if session_id else None
        if session is not None and self._policy is not None:
            try:
                authenticate(current_policy(self._policy), session.token)
            except NotAuthenticated:
                await self._store.end_token(session.token)
                session = None
        if session is not None:
            if scope.get("method", "GET") not in _SAFE_METHODS:
                sent = _header(scope, CSRF_HEADER.encode()) or ""
                if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                    response = _refuse(403, "CSRF_REFUSED", "missing or wrong X-CSRF-Token for this session")
                    await response(scope, receive, send)
                    return
            scope = dict(scope)
            scope["headers"] = [*scope["headers"], (b"authorization", f"Bearer {session.token}".encode())]
            scope.setdefault("state", {})["session"] = session
        await self._app(scope, receive, send)


def _identity_body(identity: Identity, session: Session, store: SessionStore) -> dict[str, Any]:
    return {
        "identity": {
            "name": identity.name,
            "agency": identity.agency,
            "roles": list(identity.roles),
            "grants": sorted(identity.grants),
        },
        "csrf_token": session.csrf,
        "expires_in_s": round(store.expires_in_s(session)),
    }


def session_routes(store: SessionStore, policy: PolicySource, failures: FailureLimiter) -> list[Route]:
    """``/api/session``: POST signs in, GET says who is signed in, DELETE signs out."""

    def set_cookie(response: Response, value: str, max_age: int) -> None:
        response.set_cookie(
            COOKIE_NAME, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict"
        )

    async def sign_in(request: Request) -> Response:
        peer = peer_of(request)
        if failures.blocked(peer):
            return _refuse(429, "RESOURCE_EXHAUSTED", "too many failed authentications from this address")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _refuse(415, "INVALID_ARGUMENT", "send the token as application/json")
        raw = await request.body()
        if len(raw) > _MAX_BODY_BYTES:
            return _refuse(413, "INVALID_ARGUMENT", "request body too large")
        try:
            body = json.loads(raw)
            token = body["token"].strip()
        except (ValueError, KeyError, TypeError, AttributeError):
            return _refuse(400, "INVALID_ARGUMENT", 'body must be {"token": "<bearer token>"}')
        try:
            identity = authenticate(current_policy(policy), token or None)
        except NotAuthenticated as exc:
            failures.record_failure(peer)
            return _refuse(401, "UNAUTHENTICATED", str(exc))
        request.state.identity = identity
        previous = _cookie(request.scope)
        if previous:
            await store.delete(previous)  # a fresh id at every sign-in (no session fixation)
        session = await store.create(token, identity)
        response = JSONResponse(_identity_body(identity, session, store), headers={"Cache-Control": "no-store"})
        set_cookie(response, session.id, max_age=round(store.max_s))
        return response

    async def who(request: Request) -> Response:
        session: Session | None = request.scope.get("state", {}).get("session")
        if session is None:
            return _refuse(401, "UNAUTHENTICATED", "not signed in")
        try:
            identity = authenticate(current_policy(policy), session.token)
        except NotAuthenticated as exc:
            await store.end_token(session.token)
            return _refuse(401, "UNAUTHENTICATED", str(exc))
        request.state.identity = identity
        return JSONResponse(_identity_body(identity, session, store), headers={"Cache-Control": "no-store"})

    async def sign_out(request: Request) -> Response:
        # Reached only with the right CSRF token (the middleware refused the rest) or without a session at all.
        session: Session | None = request.scope.get("state", {}).get("session")
        if session is not None:
            await store.delete(session.id)
        response = JSONResponse({"signed_out": session is not None})
        set_cookie(response, "", max_age=0)
        return response

    return [
        Route("/api/session", sign_in, methods=["POST"]),
        Route("/api/session", who, methods=["GET"]),
        Route("/api/session", sign_out, methods=["DELETE"]),
    ]
