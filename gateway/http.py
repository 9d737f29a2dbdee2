"""The console's HTTP face (Starlette, served by uvicorn in the gateway's event loop).

Routes:

- ``GET /`` and ``/static/*``: the console page (``console/``), plain HTML and JavaScript, no build step;
- ``GET /healthz``: liveness, no token;
- ``GET /api/search/posts`` and ``GET /api/search/events``: ``SearchService`` as JSON. A bearer token
  (``Authorization: Bearer <token>``) is checked against the same access policy and grants as gRPC, with the method
  names of ``SearchService`` (``/qingfeng.v1.SearchService/SearchPosts`` …), and shares the caller's rate limit.

Errors are JSON ``{"error": {"code", "message", ...}}``: 400 malformed, 401 no, unknown or expired token, 403 not
granted, 429 rate limited (or too many failed authentications from the address), 500 search failed on our side,
503 search cluster unavailable. Searches run within the caller's scope (no tips without ``see_tips``). Every call is
written to the ``qingfeng.audit`` logger.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from google.protobuf import json_format
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode
from qingfeng.v1 import common_pb2, search_pb2
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.access import Identity, PolicySource
from gateway.http_guard import HttpError, error_response, guard
from gateway.ratelimit import ConcurrencyLimiter, FailureLimiter, RateLimiter
from gateway.search import Searcher, SearchFailed, SearchRequestError, SearchUnavailable
from gateway.search_aggs import aggregations_request

__all__ = ["CONSOLE_DIR", "create_app"]

audit_log = logging.getLogger("qingfeng.audit")
_tracer = trace.get_tracer("gateway.http")

CONSOLE_DIR: Final = Path(__file__).resolve().parent / "console"

_SEARCH = search_pb2.DESCRIPTOR.services_by_name["SearchService"]
SEARCH_POSTS: Final = f"/{_SEARCH.full_name}/{_SEARCH.methods_by_name['SearchPosts'].name}"
SEARCH_EVENTS: Final = f"/{_SEARCH.full_name}/{_SEARCH.methods_by_name['SearchEvents'].name}"

_ORDERS: Final = {
    "relevance": search_pb2.SEARCH_ORDER_RELEVANCE,
    "newest": search_pb2.SEARCH_ORDER_NEWEST,
    "reach": search_pb2.SEARCH_ORDER_REACH,
}
_LEVELS: Final = {
    "blue": common_pb2.WARNING_LEVEL_BLUE,
    "yellow": common_pb2.WARNING_LEVEL_YELLOW,
    "orange": common_pb2.WARNING_LEVEL_ORANGE,
    "red": common_pb2.WARNING_LEVEL_RED,
}
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})
# The page and its script come from this origin only; highlights are inserted as text nodes, never as markup.
_SECURITY_HEADERS: Final = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


# --- query parameters -> request messages -------------------------------------------------------------------------


def _int(params: QueryParams, name: str) -> int:
    raw = params.get(name, "")
    if not raw:
        return 0
    try:
        return int(raw)
    except ValueError:
        raise SearchRequestError(name, f"must be an integer, got {raw!r}") from None


def _float(params: QueryParams, name: str) -> float:
    raw = params.get(name, "")
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        raise SearchRequestError(name, f"must be a number, got {raw!r}") from None


def _bool(params: QueryParams, name: str) -> bool:
    raw = params.get(name, "").lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SearchRequestError(name, f"must be true or false, got {raw!r}")


def _choice(params: QueryParams, name: str, choices: Mapping[str, int]) -> int:
    raw = params.get(name, "").lower()
    if not raw:
        return 0
    if raw not in choices:
        raise SearchRequestError(name, f"must be one of {', '.join(choices)}, got {raw!r}")
    return choices[raw]


def _time_range(params: QueryParams, after: str, before: str) -> common_pb2.TimeRange | None:
    span = common_pb2.TimeRange()
    for name, target in ((after, span.start_time), (before, span.end_time)):
        raw = params.get(name, "")
        if raw:
            try:
                target.FromJsonString(raw)
            except ValueError:
                raise SearchRequestError(
                    name, f"must be an RFC 3339 time like 2025-06-01T08:00:00Z, got {raw!r}"
                ) from None
    return span if span.HasField("start_time") or span.HasField("end_time") else None


def posts_request(params: QueryParams) -> search_pb2.SearchPostsRequest:
    """``SearchPostsRequest`` from ``?q=&page_size=&page_token=&order=&region_code=&...``."""
    request = search_pb2.SearchPostsRequest(
        query=params.get("q", ""),
        order=_choice(params, "order", _ORDERS),  # type: ignore[arg-type]
        page_size=_int(params, "page_size"),
        page_token=params.get("page_token", ""),
    )
    f = request.filter
    f.region_code = params.get("region_code", "")
    f.source_id = params.get("source_id", "")
    f.event_id = params.get("event_id", "")
    f.min_relevance = _float(params, "min_relevance")
    f.media_only = _bool(params, "media_only")
    f.include_duplicates = _bool(params, "include_duplicates")
    created = _time_range(params, "created_after", "created_before")
    if created is not None:
        f.created.CopyFrom(created)
    charts = aggregations_request(params)  # ?aggs=true&interval=&time_zone=&top= (search_aggs.py)
    if charts is not None:
        request.aggregations.CopyFrom(charts)
    return request


def events_request(params: QueryParams) -> search_pb2.SearchEventsRequest:
    """``SearchEventsRequest`` from ``?q=&page_size=&page_token=&order=&min_level=&region_code=&rising_only=``."""
    request = search_pb2.SearchEventsRequest(
        query=params.get("q", ""),
        order=_choice(params, "order", _ORDERS),  # type: ignore[arg-type]
        page_size=_int(params, "page_size"),
        page_token=params.get("page_token", ""),
    )
    f = request.filter
    f.min_level = _choice(params, "min_level", _LEVELS)  # type: ignore[assignment]
    f.region_code = params.get("region_code", "")
    f.rising_only = _bool(params, "rising_only")
    active = _time_range(params, "active_after", "active_before")
    if active is not None:
        f.active.CopyFrom(active)
    charts = aggregations_request(params)  # ?aggs=true&interval=&time_zone=&top= (search_aggs.py)
    if charts is not None:
        request.aggregations.CopyFrom(charts)
    return request


# --- the application ----------------------------------------------------------------------------------------------


class _AuditMiddleware:
    """A server span and one ``qingfeng.audit`` line per HTTP call (method, path, status, caller), plus the security
    headers. The span continues a ``traceparent`` the browser or a client sent, and the search below joins it."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                # A route that sets its own policy (the sandboxed rapid report) keeps it: two CSPs would intersect.
                present = {name.lower() for name, _ in headers}
                message["headers"] = [*headers, *(h for h in _SECURITY_HEADERS if h[0].lower() not in present)]
            await send(message)

        method, path = str(scope.get("method", "")), str(scope.get("path", ""))
        carrier = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        with _tracer.start_as_current_span(
            f"{method} {path}",
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        ) as span:
            try:
                await self._app(scope, receive, send_with_headers)
            finally:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
                self._audit(state, method, path, status, started)

    @staticmethod
    def _audit(state: dict[str, Any], method: str, path: str, status: int, started: float) -> None:
        identity: Identity | None = state.get("identity")
        # Writes (acknowledge, sign-off, sign-in …) change state and are always logged, like the gRPC guard does.
        changes_state = method not in ("GET", "HEAD", "OPTIONS")
        audit_log.log(
            logging.INFO if status >= 400 or changes_state else logging.DEBUG,
            "http %s %s %d",
            method,
            path,
            status,
            extra={
                "audit": True,
                "http_method": method,
                "path": path,
                "method": state.get("rpc_method"),
                "status": status,
                "principal": identity.name if identity else None,
                "agency": identity.agency if identity else None,
                "state_change": changes_state,
                "duration_ms": round((time.monotonic() - started) * 1000, 2),
            },
        )


def create_app(
    *,
    policy: PolicySource,
    limiter: RateLimiter,
    searcher: Searcher,
    failures: FailureLimiter | None = None,
    concurrency: ConcurrencyLimiter | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    inner_middleware: Sequence[Middleware] = (),
) -> Starlette:
    """The console application; ``searcher`` is shared with the gRPC ``SearchService`` (and ``limiter``,
    ``failures`` and ``concurrency`` with the gRPC guard). ``extra_routes`` (the console API, sign-in) come before
    the static files; ``inner_middleware`` (sessions) runs inside the audit middleware, so its refusals are audited."""
    failed = failures or FailureLimiter(max_failures=20, window_s=60.0)
    in_flight = concurrency or ConcurrencyLimiter(per_identity=64, streams_per_identity=8, per_server=1024)

    def check(request: Request, method: str) -> Identity:
        return guard(request, method, policy=policy, failures=failed, limiter=limiter)

    def api(method: str, run: Callable[[QueryParams, Identity], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                identity = check(request, method)
                full = in_flight.acquire(identity.name, stream=False)
                if full is not None:
                    raise HttpError(429, "RESOURCE_EXHAUSTED", full)
                try:
                    reply = await run(request.query_params, identity)
                finally:
                    in_flight.release(identity.name, stream=False)
            except HttpError as err:
                return error_response(err)
            except SearchRequestError as err:
                extra = {"reason": err.reason, "field": err.field}
                return error_response(HttpError(400, "INVALID_ARGUMENT", str(err), **extra))
            except SearchUnavailable as err:
                return error_response(HttpError(503, "UNAVAILABLE", str(err)))
            except SearchFailed as err:
                return error_response(HttpError(500, "INTERNAL", str(err)))
            body = json_format.MessageToDict(reply, preserving_proto_field_name=True)
            return JSONResponse(body, headers={"Cache-Control": "no-store"})

        return endpoint

    async def search_posts(params: QueryParams, identity: Identity) -> search_pb2.SearchPostsResponse:
        return await searcher.search_posts(posts_request(params), identity.search_scope)

    async def search_events(params: QueryParams, identity: Identity) -> search_pb2.SearchEventsResponse:
        return await searcher.search_events(events_request(params), identity.search_scope)

    async def index(request: Request) -> Response:
        return FileResponse(CONSOLE_DIR / "index.html", media_type="text/html; charset=utf-8")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/api/search/posts", api(SEARCH_POSTS, search_posts), methods=["GET"]),
            Route("/api/search/events", api(SEARCH_EVENTS, search_events), methods=["GET"]),
            *extra_routes,
            Mount("/static", StaticFiles(directory=CONSOLE_DIR), name="static"),
        ],
    )
    for layer in reversed(inner_middleware):
        app.add_middleware(layer.cls, *layer.args, **layer.kwargs)
    app.add_middleware(_AuditMiddleware)
    return app
