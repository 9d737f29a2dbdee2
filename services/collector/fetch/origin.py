"""Origins (scheme, host, port) and the credentials bound to one.

A source's token is meant for the source's own API. The fetcher attaches ``Credentials`` only to requests whose origin
is the one they were issued for, so a redirect or a ``next`` link to another host never carries the token there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

__all__ = ["Credentials", "origin_of"]

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str | httpx.URL) -> Origin:
    """``(scheme, host, port)`` with the scheme's default port filled in; raises httpx.InvalidURL."""
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    scheme = parsed.scheme.lower()
    return scheme, parsed.host.lower(), parsed.port or _DEFAULT_PORTS.get(scheme, 0)


@dataclass(frozen=True)
class Credentials:
    """Secret headers (``Authorization``…) sent only to ``origin``."""

    origin: Origin
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_url(cls, url: str, headers: Mapping[str, str]) -> Credentials:
        """Credentials for the origin of ``url`` (normally the source's own URL)."""
        return cls(origin_of(url), dict(headers))

    def for_request(self, url: str | httpx.URL) -> Mapping[str, str]:
        """The headers to add to a request for ``url``: all of them on the own origin, none elsewhere."""
        try:
            return self.headers if origin_of(url) == self.origin else {}
        except httpx.InvalidURL:
            return {}
