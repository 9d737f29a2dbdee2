"""The connection-level SSRF guard: resolve once, check every address, connect to the checked address.

Checking a URL's host name and then letting the HTTP library resolve it again would leave a window: a name whose DNS
answer changes between the two lookups (DNS rebinding) passes the check with a public address and connects to
10.0.0.1. So the check lives where the connection is made: ``GuardedBackend`` is the httpcore network backend under
the fetcher's HTTP transport. For each new connection it resolves the host once, refuses unless every address passes
``AddressPolicy``, and opens the TCP connection to the checked IP itself. httpcore still does TLS with the original
host name (SNI and certificate check) and the request keeps its Host header, because only the socket address is
pinned. Redirects and ``next`` links open their connections through the same backend, so they are checked too.

A refusal raises ``AddressRefused`` before any packet is sent to that address; the fetcher turns it into a
``Refused`` fetch error (the source's error, or a dead letter for an item's link).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Protocol

import httpcore
import httpx

from services.collector.fetch.addresses import AddressPolicy, IPAddress

__all__ = ["AddressRefused", "GuardedBackend", "Resolver", "SystemResolver", "guarded_transport"]


class AddressRefused(Exception):
    """A connection was refused by the address policy; no connection was attempted."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(reason)
        self.host = host
        self.reason = reason


class Resolver(Protocol):
    """Host name → addresses (an IP literal resolves to itself)."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]: ...


def ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class SystemResolver:
    """The operating system's resolver (getaddrinfo in a worker thread), TCP addresses only."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        literal = ip_literal(host)
        if literal is not None:
            return [literal]
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        found: list[IPAddress] = []
        for family, *_rest, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = ipaddress.ip_address(str(sockaddr[0]))
            if ip not in found:
                found.append(ip)
        return found


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses the policy permits (see the module docstring)."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver or SystemResolver()
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._resolver.resolve(host, port)
        except (OSError, TimeoutError) as err:
            # Maps to httpx.ConnectError: a transport failure the fetcher may retry.
            raise httpcore.ConnectError(f"cannot resolve {host}: {err}") from err
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        # Every address must pass, not just one: a name that answers with a mix is not one to trust.
        for ip in addresses:
            reason = self._policy.refusal(host, ip)
            if reason is not None:
                raise AddressRefused(host, reason)
        last: Exception | None = None
        for ip in addresses:
            try:
                # An IP literal: the inner backend does no DNS lookup of its own.
                return await self._inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                last = err
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend signature
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused(path, "unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connection pool opens connections through a ``GuardedBackend``."""

    def __init__(self, backend: GuardedBackend, *, limits: httpx.Limits, ssl_context: ssl.SSLContext) -> None:
        super().__init__(limits=limits)
        # The base class builds its pool without a backend hook; swap in one with ours (same settings, no proxy:
        # through a proxy the guard would check the proxy's address instead of the target's).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def guarded_transport(
    policy: AddressPolicy,
    *,
    resolver: Resolver | None = None,
    inner: httpcore.AsyncNetworkBackend | None = None,
    limits: httpx.Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncBaseTransport:
    """An HTTP(S) transport that refuses connections the policy does not permit (certificates checked against
    ``ssl_context``, by default httpx's: certifi's CAs)."""
    backend = GuardedBackend(policy, resolver=resolver, inner=inner)
    context = ssl_context or httpx.create_ssl_context()
    return _GuardedTransport(backend, limits=limits or httpx.Limits(), ssl_context=context)
