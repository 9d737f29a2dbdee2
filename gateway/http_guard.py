"""What every HTTP route of the gateway does before it runs, in one place: take the bearer token, refuse an address
with too many failed authentications, authenticate, authorise the one gRPC method the route stands for, apply the
identity's rate limit; and the JSON error every refusal becomes (``{"error": {"code", "message", …}}``).

The failed-authentication key is the gRPC guard's (``ipv4:1.2.3.4``, ``ipv6:[::1]``), so guesses over HTTP and gRPC
count together.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.access import (
    AccessDenied,
    Identity,
    NotAuthenticated,
    PolicySource,
    authenticate,
    authorize,
    current_policy,
)
from gateway.ratelimit import FailureLimiter, RateLimiter

__all__ = ["HttpError", "bearer", "error_response", "guard", "peer"]


class HttpError(Exception):
    """A refusal with its HTTP status, gRPC-style code name and any extra fields for the error body."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra


def error_response(err: HttpError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="qingfeng"'} if err.status == 401 else None
    body = {"error": {"code": err.code, "message": str(err), **err.extra}}
    return JSONResponse(body, status_code=err.status, headers=headers)


def bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def peer(request: Request) -> str:
    host = request.client.host if request.client else "unknown"
    return f"ipv6:[{host}]" if ":" in host else f"ipv4:{host}"


def guard(
    request: Request, method: str, *, policy: PolicySource, failures: FailureLimiter, limiter: RateLimiter
) -> Identity:
    """The identity calling ``method`` (full gRPC path), or ``HttpError`` 429/401/403; recorded on ``request.state``
    for the audit line."""
    request.state.rpc_method = method
    address = peer(request)
    if failures.blocked(address):
        raise HttpError(429, "RESOURCE_EXHAUSTED", "too many failed authentications from this address")
    try:
        identity = authenticate(current_policy(policy), bearer(request))
        request.state.identity = identity
        authorize(identity, method)
    except NotAuthenticated as exc:
        failures.record_failure(address)
        raise HttpError(401, "UNAUTHENTICATED", str(exc)) from None
    except AccessDenied as exc:
        raise HttpError(403, "PERMISSION_DENIED", str(exc)) from None
    if not limiter.allow(identity.name):
        raise HttpError(429, "RESOURCE_EXHAUSTED", f"rate limit exceeded for {identity.name}")
    return identity
