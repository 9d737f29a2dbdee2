"""The one server interceptor every service installs: no verified credential, no call.

Health and reflection stay open (probes carry no credential; the schema is the public contract). Every other
method needs a credential that the service's trust file accepts for exactly that method; the verified caller is
then available to the handler through ``current_caller()``. ``x-qingfeng-*`` metadata a caller sends is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

import grpc

from qingfeng.rpc._wrap import wrap_handler
from qingfeng.rpc.caller import Caller, reset_caller, use_caller
from qingfeng.rpc.credentials import CREDENTIAL_HEADER, CredentialError, TrustFile, TrustStore

__all__ = ["OPEN_PREFIXES", "CredentialInterceptor"]

log = logging.getLogger("qingfeng.rpc.auth")

OPEN_PREFIXES: Final = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.", "/grpc.reflection.v1.")


def _credential(details: grpc.HandlerCallDetails) -> str | None:
    for key, value in details.invocation_metadata or ():
        if key == CREDENTIAL_HEADER and isinstance(value, str):
            return value
    return None


class CredentialInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuse (UNAUTHENTICATED) every call whose credential the trust store does not verify for its method."""

    def __init__(self, trust: TrustFile | TrustStore) -> None:
        self._trust = trust

    def _store(self) -> TrustStore:
        return self._trust.current() if isinstance(self._trust, TrustFile) else self._trust

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = details.method
        handler = await continuation(details)
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        caller: Caller | None = None
        abort: tuple[grpc.StatusCode, str] | None = None
        try:
            caller = self._store().verify(_credential(details), method)
        except CredentialError as exc:
            log.warning("refused %s: %s", method, exc, extra={"method": method, "reason": str(exc)})
            abort = (grpc.StatusCode.UNAUTHENTICATED, f"{exc}")

        def enter() -> Callable[[], None]:
            token = use_caller(caller)
            return lambda: reset_caller(token)

        return wrap_handler(handler, abort=abort, enter=enter)
