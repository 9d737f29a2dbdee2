"""Signed caller credentials for tests: one gateway key, the trust store that believes it, and call metadata.

Tests of a service's gRPC API build the server with ``CredentialInterceptor(TRUST)`` (or ``trust_file(tmp_path)``
for a process) and call it with ``as_caller(method, principal=..., agency=..., roles=...)``, exactly as the gateway
would; a test never sets ``x-qingfeng-*`` metadata and expects it to be believed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives import serialization
from qingfeng.rpc.auth import CredentialInterceptor
from qingfeng.rpc.credentials import (
    CREDENTIAL_HEADER,
    CredentialSigner,
    generate_key,
    parse_trust,
    public_pem,
    trust_yaml,
)

__all__ = [
    "GATEWAY",
    "TRUST",
    "TRUST_YAML",
    "as_caller",
    "signed_channel",
    "signer_key_file",
    "trust_file",
    "trusting_server",
]

_KEY = generate_key()
GATEWAY = CredentialSigner(issuer="gateway", key=_KEY, ttl_s=30.0)
TRUST_YAML = trust_yaml([("gateway", public_pem(_KEY), True, ())])
TRUST = parse_trust(TRUST_YAML, source="tests/identity.py")


def as_caller(
    method: str, *, principal: str = "tester", agency: str | None = "opinion_office", roles: Iterable[str] = ()
) -> tuple[tuple[str, str], ...]:
    """Metadata carrying a gateway credential for one call of ``method`` (full path) by this caller."""
    return GATEWAY.metadata(method, principal=principal, agency=agency, roles=tuple(roles))


def trust_file(directory: Path) -> Path:
    """Write the trust file (believing ``GATEWAY``) into ``directory`` for a service started as a process."""
    path = directory / "trust.yaml"
    path.write_text(TRUST_YAML, encoding="utf-8")
    return path


def signer_key_file(directory: Path) -> Path:
    """Write ``GATEWAY``'s private key (PEM) into ``directory`` for a gateway started as a process."""
    path = directory / "gateway.pem"
    path.write_bytes(
        _KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)
    return path


class _Signing:
    """Adds a gateway credential for the called method unless the call already carries one."""

    def __init__(self, principal: str, agency: str | None, roles: tuple[str, ...]) -> None:
        self._caller = {"principal": principal, "agency": agency, "roles": roles}

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        metadata = list(details.metadata or ())
        if not any(key == CREDENTIAL_HEADER for key, _ in metadata):
            metadata += GATEWAY.metadata(method, **self._caller)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, grpc.aio.Metadata(*metadata), details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _UU(_Signing, grpc.aio.UnaryUnaryClientInterceptor):
    pass


class _US(_Signing, grpc.aio.UnaryStreamClientInterceptor):
    pass


class _SU(_Signing, grpc.aio.StreamUnaryClientInterceptor):
    pass


class _SS(_Signing, grpc.aio.StreamStreamClientInterceptor):
    pass


def signed_channel(
    target: str,
    *,
    principal: str = "analyst",
    agency: str | None = "opinion_office",
    roles: Iterable[str] = ("analyst",),
) -> grpc.aio.Channel:
    """An insecure loopback channel whose calls carry a gateway credential for this caller (unless given one)."""
    role_tuple = tuple(roles)
    interceptors = [cls(principal, agency, role_tuple) for cls in (_UU, _US, _SU, _SS)]
    return grpc.aio.insecure_channel(target, interceptors=interceptors)


@asynccontextmanager
async def trusting_server(add: Callable[[grpc.aio.Server], None]) -> AsyncIterator[str]:
    """A gRPC server on 127.0.0.1 (a free port) that believes ``TRUST``, with what ``add`` registers; its address."""
    server = grpc.aio.server(interceptors=[CredentialInterceptor(TRUST)])
    add(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
