"""The gateway's guard: authenticate, authorise, limit and audit every call before any handler runs.

Health checking stays open (probes carry no token). Everything else, reflection included, needs a bearer token or
a client certificate (mutual TLS) that the access policy grants the method to. The decision is made inside the
call (``wrap_handler(check=...)``), because only the call's context knows the peer and its TLS certificate.

In order: a peer with too many recent failed authentications is refused (RESOURCE_EXHAUSTED) without looking at
what it sent; then authentication (UNAUTHENTICATED, counted as a failure of the peer), authorisation
(PERMISSION_DENIED), the identity's rate limit and the concurrency limits (RESOURCE_EXHAUSTED). The caller's
identity is handed to the handler through ``current_identity`` and turned by the proxy into a signed credential for
the one upstream method called (``qingfeng.rpc.credentials``).
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable

import grpc
from qingfeng.rpc._wrap import wrap_handler

from gateway.access import (
    AccessDenied,
    Identity,
    NotAuthenticated,
    PolicySource,
    authenticate,
    authorize,
    certificate_sha256,
    current_policy,
)
from gateway.ratelimit import ConcurrencyLimiter, FailureLimiter, RateLimiter

__all__ = ["GuardInterceptor", "current_identity", "peer_address"]

audit_log = logging.getLogger("qingfeng.audit")

current_identity: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("current_identity", default=None)

_OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
# Read-only verbs by the buf naming rules; every other method changes state and is audited at INFO.
_READ_VERBS = ("Get", "List", "Search", "Explain", "Validate", "Verify", "Check", "Watch")

Refusal = tuple[grpc.StatusCode, str]


def _token(details: grpc.HandlerCallDetails) -> str | None:
    for key, value in details.invocation_metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :].strip()
    return None


def peer_address(peer: str) -> str:
    """``ipv4:10.1.2.3:5555`` -> ``ipv4:10.1.2.3``; failures count per address, not per connection's port."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6") and ":" in rest:
        return f"{kind}:{rest.rsplit(':', 1)[0]}"
    return peer


def _client_certificate(context: grpc.aio.ServicerContext) -> str | None:
    """SHA-256 of the DER client certificate the TLS handshake verified, if any."""
    try:
        pems = context.auth_context().get("x509_pem_cert") or []
    except (AttributeError, ValueError):
        return None
    return certificate_sha256(pems[0]) if pems else None


class GuardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authentication, per-method authorisation, abuse limits and an audit line for every call."""

    def __init__(
        self,
        policy: PolicySource,
        limiter: RateLimiter,
        *,
        failures: FailureLimiter | None = None,
        concurrency: ConcurrencyLimiter | None = None,
    ) -> None:
        self._policy = policy
        self._limiter = limiter
        self._failures = failures or FailureLimiter(max_failures=20, window_s=60.0)
        self._concurrency = concurrency or ConcurrencyLimiter(per_identity=64, streams_per_identity=8, per_server=1024)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = details.method
        handler = await continuation(details)
        if handler is None or method.startswith(_OPEN_PREFIXES):
            return handler
        stream = bool(handler.request_streaming or handler.response_streaming)
        started = time.monotonic()
        identity: Identity | None = None
        admitted = False

        def check(context: grpc.aio.ServicerContext) -> Refusal | None:
            nonlocal identity, admitted
            peer = peer_address(context.peer() or "")
            if self._failures.blocked(peer):
                return (grpc.StatusCode.RESOURCE_EXHAUSTED, "too many failed authentications from this address")
            try:
                identity = authenticate(
                    current_policy(self._policy), _token(details), cert_sha256=_client_certificate(context)
                )
                authorize(identity, method)
            except NotAuthenticated as exc:
                self._failures.record_failure(peer)
                return (grpc.StatusCode.UNAUTHENTICATED, str(exc))
            except AccessDenied as exc:
                return (grpc.StatusCode.PERMISSION_DENIED, str(exc))
            if not self._limiter.allow(identity.name):
                return (grpc.StatusCode.RESOURCE_EXHAUSTED, f"rate limit exceeded for {identity.name}")
            full = self._concurrency.acquire(identity.name, stream=stream)
            if full is not None:
                return (grpc.StatusCode.RESOURCE_EXHAUSTED, full)
            admitted = True
            return None

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

            def leave() -> None:
                current_identity.reset(token)
                if admitted and identity is not None:
                    self._concurrency.release(identity.name, stream=stream)

            return leave

        return wrap_handler(handler, abort=None, enter=enter, on_done=on_done, check=check)
