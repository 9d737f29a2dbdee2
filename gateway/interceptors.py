"""The gateway's guard: authenticate, authorise, rate-limit and audit every call before any handler runs.

Health checking stays open (probes carry no token). Everything else, reflection included, needs a token that the
access policy grants the method to. The caller's identity is handed to the handler through ``current_identity``
and forwarded upstream as ``x-qingfeng-*`` metadata by the proxy.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from gateway.access import AccessDenied, AccessPolicy, Identity, NotAuthenticated, authenticate, authorize
from gateway.ratelimit import RateLimiter

__all__ = ["GuardInterceptor", "current_identity"]

audit_log = logging.getLogger("qingfeng.audit")

current_identity: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("current_identity", default=None)

_OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
# Read-only verbs by the buf naming rules; every other method changes state and is audited at INFO.
_READ_VERBS = ("Get", "List", "Search", "Explain", "Validate", "Verify", "Check", "Watch")


def _token(details: grpc.HandlerCallDetails) -> str | None:
    for key, value in details.invocation_metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :].strip()
    return None


def _wrap(
    handler: grpc.RpcMethodHandler,
    abort: tuple[grpc.StatusCode, str] | None,
    on_done: Callable[[grpc.StatusCode], None],
    identity: Identity | None,
) -> grpc.RpcMethodHandler:
    """A handler of the same arity as ``handler`` that either aborts or runs it with the identity set."""

    async def _run_unary(behaviour: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if abort is not None:
            on_done(abort[0])
            await context.abort(abort[0], abort[1])
        token = current_identity.set(identity)
        code = grpc.StatusCode.OK
        try:
            result = behaviour(request, context)
            return await result if inspect.isawaitable(result) else result
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            current_identity.reset(token)
            on_done(code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN)

    async def _run_stream(behaviour: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if abort is not None:
            on_done(abort[0])
            await context.abort(abort[0], abort[1])
        token = current_identity.set(identity)
        code = grpc.StatusCode.OK
        try:
            items = behaviour(request, context)
            if hasattr(items, "__aiter__"):
                async for item in items:
                    yield item
            else:
                for item in items:
                    yield item
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            current_identity.reset(token)
            on_done(code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN)

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    # grpc.aio awaits a handler only if it is a coroutine function (or iterates it if it is an async generator
    # function); a lambda returning a coroutine would be run as a sync handler, so each arity gets a real one.
    if handler.unary_unary or handler.stream_unary:
        inner_unary = handler.unary_unary or handler.stream_unary

        async def unary_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await _run_unary(inner_unary, request, context)

        make = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
        return make(unary_response, **kwargs)
    inner_stream = handler.unary_stream or handler.stream_stream

    async def stream_response(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for item in _run_stream(inner_stream, request, context):
            yield item

    make = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
    return make(stream_response, **kwargs)


class GuardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authentication, per-method authorisation, per-identity rate limits and an audit line for every call."""

    def __init__(self, policy: AccessPolicy, limiter: RateLimiter) -> None:
        self._policy = policy
        self._limiter = limiter

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = details.method
        handler = await continuation(details)
        if handler is None or method.startswith(_OPEN_PREFIXES):
            return handler
        started = time.monotonic()
        identity: Identity | None = None
        abort: tuple[grpc.StatusCode, str] | None = None
        try:
            identity = authenticate(self._policy, _token(details))
            authorize(identity, method)
            if not self._limiter.allow(identity.name):
                abort = (grpc.StatusCode.RESOURCE_EXHAUSTED, f"rate limit exceeded for {identity.name}")
        except NotAuthenticated as exc:
            abort = (grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except AccessDenied as exc:
            abort = (grpc.StatusCode.PERMISSION_DENIED, str(exc))

        def on_done(code: grpc.StatusCode) -> None:
            verb = method.rsplit("/", 1)[-1]
            changes_state = not verb.startswith(_READ_VERBS)
            level = logging.INFO if changes_state or code != grpc.StatusCode.OK else logging.DEBUG
            audit_log.log(
                level,
                "call %s %s",
                method,
                code.name,
                extra={
                    "audit": True,
                    "method": method,
                    "status": code.name,
                    "principal": identity.name if identity else None,
                    "agency": identity.agency if identity else None,
                    "state_change": changes_state,
                    "duration_ms": round((time.monotonic() - started) * 1000, 2),
                },
            )

        return _wrap(handler, abort, on_done, identity)
