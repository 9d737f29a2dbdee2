"""The console's HTTP/JSON routes beyond search: events, cases, tasks, meetings, instructions, drafts.

Every route maps to exactly one gRPC method of an upstream service (``ROUTES``) and is treated like a gRPC call of
that method: the caller is authenticated (bearer token, or the session cookie turned into one by ``sessions.py``),
authorised with ``authorize(identity, method)`` against the same exact grants, rate-limited and counted against the
same concurrency limits, audited by the HTTP audit middleware under the method's name, and the upstream is called
over the gateway's existing channel with a credential minted for the identity and bound to that method — exactly
what the gRPC proxy does. The upstream decides what the identity may see (a partner's NOT_FOUND stays 404).

Requests are built from path parameters, the query string (GET) or a JSON body (POST) with protobuf's JSON mapping
(field names as in the .proto, enums by name); replies are the response message as JSON with the .proto's field
names. A missing or unfinished upstream (UNAVAILABLE, UNIMPLEMENTED) answers 503/501 with a JSON error the page
shows in place of that part. The rapid report is the coordinator's HTML document served under a sandboxing CSP.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from qingfeng.rpc import CREDENTIAL_HEADER, CredentialSigner
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.access import Identity, PolicySource
from gateway.http_guard import HttpError, error_response, guard
from gateway.ratelimit import ConcurrencyLimiter, FailureLimiter, RateLimiter

__all__ = ["ROUTES", "ConsoleRoute", "console_routes", "http_status"]

log = logging.getLogger("gateway.console_api")

_READY_WAIT_S: Final = 3.0
_MAX_BODY_BYTES: Final = 64 * 1024
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})

_STATUS: Final = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status the console answers for an upstream gRPC status (500 for the rest)."""
    return _STATUS.get(code, 500)


@dataclass(frozen=True)
class ConsoleRoute:
    """One HTTP route and the one gRPC method it stands for.

    ``params`` maps path parameters to request fields; ``query`` lists the request fields a GET may set from the
    query string (a POST takes its JSON body, restricted to ``query`` too); ``html`` serves the reply's
    ``report`` document instead of JSON."""

    path: str
    http_method: str
    service: str  # the service's name in qingfeng.v1, e.g. "GraderService"
    rpc: str
    params: tuple[tuple[str, str], ...] = ()
    query: tuple[str, ...] = ()
    html: bool = False

    @property
    def grpc_method(self) -> str:
        return f"/qingfeng.v1.{self.service}/{self.rpc}"


_PAGE = ("page_size", "page_token")
ROUTES: Final = (
    ConsoleRoute(
        "/api/events",
        "GET",
        "GraderService",
        "ListEvents",
        query=(
            *_PAGE,
            "min_level",
            "region_code",
            "query",
            "rising_only",
            "include_merged",
            "active.start_time",
            "active.end_time",
        ),
    ),
    ConsoleRoute("/api/events/{id}", "GET", "GraderService", "GetEvent", params=(("id", "id"),)),
    ConsoleRoute("/api/events/{id}/explain", "GET", "GraderService", "ExplainGrade", params=(("id", "event_id"),)),
    ConsoleRoute("/api/events/{id}/grades", "GET", "GraderService", "ListEventGrades", params=(("id", "event_id"),)),
    ConsoleRoute(
        "/api/cases",
        "GET",
        "CoordinatorService",
        "ListCases",
        query=(*_PAGE, "status", "min_level", "routed_to", "event_id"),
    ),
    ConsoleRoute("/api/cases/{id}", "GET", "CoordinatorService", "GetCase", params=(("id", "id"),)),
    ConsoleRoute(
        "/api/cases/{id}/acknowledge",
        "POST",
        "CoordinatorService",
        "AcknowledgeCase",
        params=(("id", "case_id"),),
        query=("note",),
    ),
    ConsoleRoute(
        "/api/cases/{id}/escalate",
        "POST",
        "CoordinatorService",
        "EscalateCase",
        params=(("id", "case_id"),),
        query=("level", "reason", "request_id"),
    ),
    ConsoleRoute(
        "/api/cases/{id}/instructions",
        "GET",
        "CoordinatorService",
        "ListInstructions",
        params=(("id", "case_id"),),
        query=_PAGE,
    ),
    ConsoleRoute(
        "/api/cases/{id}/report", "GET", "CoordinatorService", "GetRapidReport", params=(("id", "case_id"),), html=True
    ),
    ConsoleRoute(
        "/api/tasks",
        "GET",
        "CoordinatorService",
        "ListTasks",
        query=(*_PAGE, "case_id", "agency", "status", "overdue_only"),
    ),
    ConsoleRoute("/api/meetings", "GET", "CoordinatorService", "ListMeetings", query=(*_PAGE, "kind", "case_id")),
    ConsoleRoute("/api/drafts", "GET", "PublisherService", "ListDrafts", query=(*_PAGE, "case_id", "status", "kind")),
    ConsoleRoute("/api/drafts/{id}", "GET", "PublisherService", "GetDraft", params=(("id", "id"),)),
    ConsoleRoute(
        "/api/drafts/{id}/signoff",
        "POST",
        "PublisherService",
        "SignOff",
        params=(("id", "draft_id"),),
        query=("decision", "comment", "revision"),
    ),
)


def _error(status: int, code: str, message: str, *, method: str | None = None) -> JSONResponse:
    return error_response(HttpError(status, code, message, **({"method": method} if method else {})))


def _set(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def _field(descriptor: Any, dotted: str) -> FieldDescriptor:
    *parents, leaf = dotted.split(".")
    for part in parents:
        descriptor = descriptor.fields_by_name[part].message_type
    field: FieldDescriptor = descriptor.fields_by_name[leaf]
    return field


def _query_value(field: FieldDescriptor, name: str, raw: str) -> Any:
    if field.type == FieldDescriptor.TYPE_BOOL:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise HttpError(400, "INVALID_ARGUMENT", f"{name}: must be true or false, got {raw!r}")
    return raw  # the JSON mapping parses numbers, enum names and RFC 3339 times from strings


def build_request(
    route: ConsoleRoute,
    message_class: type[Message],
    path_params: Mapping[str, str],
    values: Mapping[str, Any],
    *,
    from_query: bool,
) -> Message:
    """The request message from path parameters and query (or body) values named in ``route.query``."""
    unknown = sorted(set(values) - set(route.query))
    if unknown:
        raise HttpError(400, "INVALID_ARGUMENT", f"unknown parameter {unknown[0]!r}; allowed: {list(route.query)}")
    data: dict[str, Any] = {}
    for name, value in values.items():
        if from_query:
            value = _query_value(_field(message_class.DESCRIPTOR, name), name, str(value))
            if value == "":
                continue
        _set(data, name, value)
    for param, field in route.params:
        data[field] = path_params[param]
    try:
        return json_format.ParseDict(data, message_class())
    except json_format.ParseError as exc:
        raise HttpError(400, "INVALID_ARGUMENT", str(exc)) from None


def console_routes(
    *,
    policy: PolicySource,
    limiter: RateLimiter,
    channels: Mapping[ServiceDescriptor, grpc.aio.Channel],
    signer: CredentialSigner,
    failures: FailureLimiter,
    concurrency: ConcurrencyLimiter,
    timeout_s: float = 10.0,
) -> list[Route]:
    """The Starlette routes of ``ROUTES``, calling upstream over ``channels`` (as built by ``build_gateway``)."""
    by_name = {service.name: (service, channel) for service, channel in channels.items()}

    def endpoint(route: ConsoleRoute) -> Callable[[Request], Any]:
        service, channel = by_name[route.service]
        method_descriptor = service.methods_by_name[route.rpc]
        request_class = GetMessageClass(method_descriptor.input_type)
        response_class = GetMessageClass(method_descriptor.output_type)
        call = channel.unary_unary(
            route.grpc_method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )

        async def read_values(request: Request) -> tuple[Mapping[str, Any], bool]:
            if route.http_method == "GET":
                return dict(request.query_params), True
            raw = await request.body()
            if len(raw) > _MAX_BODY_BYTES:
                raise HttpError(413, "INVALID_ARGUMENT", "request body too large")
            if not raw.strip():
                return {}, False
            try:
                body = json.loads(raw)
            except ValueError:
                raise HttpError(400, "INVALID_ARGUMENT", "body must be a JSON object") from None
            if not isinstance(body, dict):
                raise HttpError(400, "INVALID_ARGUMENT", "body must be a JSON object")
            return body, False

        async def handle(request: Request) -> Response:
            try:
                identity = guard(request, route.grpc_method, policy=policy, failures=failures, limiter=limiter)
                values, from_query = await read_values(request)
                message = build_request(route, request_class, request.path_params, values, from_query=from_query)
                full = concurrency.acquire(identity.name, stream=False)
                if full is not None:
                    raise HttpError(429, "RESOURCE_EXHAUSTED", full)
                try:
                    reply = await _call(channel, call, message, identity, signer, route, timeout_s)
                finally:
                    concurrency.release(identity.name, stream=False)
            except HttpError as err:
                return _error(err.status, err.code, str(err), method=route.grpc_method)
            except grpc.aio.AioRpcError as exc:
                status = http_status(exc.code())
                return _error(status, exc.code().name, exc.details() or "", method=route.grpc_method)
            if route.html:
                return _report(reply)
            body = json_format.MessageToDict(reply, preserving_proto_field_name=True)
            return JSONResponse(body, headers={"Cache-Control": "no-store"})

        return handle

    return [Route(r.path, endpoint(r), methods=[r.http_method]) for r in ROUTES]


async def _call(
    channel: grpc.aio.Channel,
    call: Any,
    message: Message,
    identity: Identity,
    signer: CredentialSigner,
    route: ConsoleRoute,
    timeout_s: float,
) -> Any:
    # A channel in reconnect backoff fails at once; give a (re)starting upstream a moment, as the proxy does.
    if channel.get_state(try_to_connect=True) != grpc.ChannelConnectivity.READY:
        try:
            await asyncio.wait_for(channel.channel_ready(), _READY_WAIT_S)
        except TimeoutError:
            service = route.grpc_method.split("/")[1]
            raise HttpError(503, "UNAVAILABLE", f"{service} is not reachable from the gateway") from None
    token = signer.mint(route.grpc_method, principal=identity.name, agency=identity.agency, roles=identity.roles)
    return await call(message, metadata=((CREDENTIAL_HEADER, token),), timeout=timeout_s)


def _report(reply: Any) -> Response:
    report = reply.report
    if report.content_type.split(";")[0].strip() != "text/html":
        return Response(report.content, media_type=report.content_type or "application/octet-stream")
    # The document is the coordinator's; shown as a page of its own with no script, form or plugin allowed.
    headers = {
        "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:",
        "Cache-Control": "no-store",
    }
    return Response(report.content, media_type="text/html; charset=utf-8", headers=headers)
