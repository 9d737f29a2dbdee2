"""The gateway's guard: authenticate, authorise, rate-limit and audit every call before any handler runs.

Health checking stays open (probes carry no token). Everything else, reflection included, needs a token that the
access policy grants the method to. The caller's identity is handed to the handler through ``current_identity``
and turned by the proxy into a signed credential for the one upstream method called (``qingfeng.rpc.credentials``).
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable

import grpc
from qingfeng.rpc._wrap import wrap_handler

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

        def enter() -> Callable[[], None]:
            token = current_identity.set(identity)
            return lambda: current_identity.reset(token)

        return wrap_handler(handler, abort=abort, enter=enter, on_done=on_done)
