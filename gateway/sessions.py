"""Console sign-in: an identity's bearer token exchanged for a short server-side session.

``POST /api/session`` with ``{"token": "..."}`` (JSON only, so a cross-site form cannot post it) checks the token
against the access policy and answers with a session cookie and a CSRF token:

- the cookie ``__Host-qf_session`` is ``HttpOnly`` (page scripts cannot read it), ``Secure``, ``SameSite=Strict``
  and ``Path=/``; it holds a random id only, never the token;
- the session ends after ``idle_s`` without a call or ``max_s`` after sign-in, whichever comes first, and on
  ``DELETE /api/session`` (logout);
- every write (any method but GET/HEAD/OPTIONS) carried by the cookie must send the session's CSRF token in
  ``X-CSRF-Token``; without it, or with a wrong one, the call is refused with 403 before any route runs.

The session keeps the token in memory and ``SessionMiddleware`` hands it to the routes as an ``Authorization``
header, so every call is authenticated and authorised again against the *current* policy exactly like a gRPC call:
a revoked or expired identity loses its open sessions at once. A request that brings its own ``Authorization``
header is left alone (scripts and the gRPC-style API keep working); the cookie is then ignored.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.cookies import SimpleCookie
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.access import Identity, NotAuthenticated, PolicySource, authenticate, current_policy
from gateway.http_guard import peer as peer_of
from gateway.ratelimit import FailureLimiter

__all__ = ["COOKIE_NAME", "CSRF_HEADER", "Session", "SessionMiddleware", "SessionStore", "session_routes"]

COOKIE_NAME: Final = "__Host-qf_session"
CSRF_HEADER: Final = "x-csrf-token"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_BODY_BYTES: Final = 4096


@dataclass(frozen=True)
class Session:
    id: str
    token: str
    csrf: str
    identity_name: str
    created_at: float
    last_seen_at: float


class SessionStore:
    """Sessions in the gateway's memory (a restart signs everybody out); ``clock`` is monotonic seconds."""

    def __init__(
        self,
        *,
        idle_s: float = 900.0,
        max_s: float = 8 * 3600.0,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s = idle_s
        self.max_s = max_s
        self._max_sessions = max_sessions
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def create(self, token: str, identity: Identity) -> Session:
        now = self._clock()
        self._purge(now)
        if len(self._sessions) >= self._max_sessions:  # the oldest goes: memory stays bounded under a flood
            oldest = min(self._sessions.values(), key=lambda s: s.last_seen_at)
            del self._sessions[oldest.id]
        session = Session(
            id=secrets.token_urlsafe(32),
            token=token,
            csrf=secrets.token_urlsafe(32),
            identity_name=identity.name,
            created_at=now,
            last_seen_at=now,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> Session | None:
        """The live session (its idle clock restarted), or None when unknown or expired."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if self._expired(session, now):
            del self._sessions[session.id]
            return None
        touched = replace(session, last_seen_at=now)
        self._sessions[session.id] = touched
        return touched

    def delete(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def expires_in_s(self, session: Session) -> float:
        now = self._clock()
        return max(0.0, min(session.last_seen_at + self.idle_s, session.created_at + self.max_s) - now)

    def _expired(self, session: Session, now: float) -> bool:
        return now >= session.last_seen_at + self.idle_s or now >= session.created_at + self.max_s

    def _purge(self, now: float) -> None:
        for session in [s for s in self._sessions.values() if self._expired(s, now)]:
            del self._sessions[session.id]

    def __len__(self) -> int:
        return len(self._sessions)


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
    """Turns a live session cookie into the identity's ``Authorization`` header; refuses writes without CSRF."""

    def __init__(self, app: ASGIApp, store: SessionStore) -> None:
        self._app = app
        self._store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _header(scope, b"authorization") is not None:
            await self._app(scope, receive, send)
            return
        session_id = _cookie(scope)
        session = self._store.get(session_id) if session_id else None
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
            store.delete(previous)  # a fresh id at every sign-in (no session fixation)
        session = store.create(token, identity)
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
            store.delete(session.id)
            return _refuse(401, "UNAUTHENTICATED", str(exc))
        request.state.identity = identity
        return JSONResponse(_identity_body(identity, session, store), headers={"Cache-Control": "no-store"})

    async def sign_out(request: Request) -> Response:
        # Reached only with the right CSRF token (the middleware refused the rest) or without a session at all.
        session: Session | None = request.scope.get("state", {}).get("session")
        if session is not None:
            store.delete(session.id)
        response = JSONResponse({"signed_out": session is not None})
        set_cookie(response, "", max_age=0)
        return response

    return [
        Route("/api/session", sign_in, methods=["POST"]),
        Route("/api/session", who, methods=["GET"]),
        Route("/api/session", sign_out, methods=["DELETE"]),
    ]
