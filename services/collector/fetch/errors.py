"""Why a fetch failed. Every error carries the URL and a message fit for ``SourceStatus.last_error``.

FetchError
├── Disallowed        robots.txt forbids the URL; no request was sent
├── Refused           the URL, a redirect or robots.txt would connect to a non-public address (SSRF guard)
├── TooLarge          the body passed the size limit; the download was aborted
├── HttpStatusError   a status that is not success (after retries for 429 and 5xx)
├── TransportFailure  connection, timeout or protocol errors after every attempt
└── Undecodable       the body is not text in any encoding tried
"""

from __future__ import annotations

__all__ = ["Disallowed", "FetchError", "HttpStatusError", "Refused", "TooLarge", "TransportFailure", "Undecodable"]


class FetchError(Exception):
    """A fetch that produced no usable response."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{message} ({url})")
        self.url = url
        self.message = message


class Disallowed(FetchError):
    def __init__(self, url: str) -> None:
        super().__init__(url, "disallowed by robots.txt")


class Refused(FetchError):
    """No connection was made: the address is not public and not allowlisted (``reason`` says which)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, f"refused: {reason}")
        self.reason = reason


class TooLarge(FetchError):
    def __init__(self, url: str, limit: int, head: bytes = b"") -> None:
        super().__init__(url, f"response larger than {limit} bytes")
        self.limit = limit
        # The first bytes received, kept for the dead letter so an operator can see what the thing was.
        self.head = head


class HttpStatusError(FetchError):
    def __init__(self, url: str, status: int, detail: str = "") -> None:
        super().__init__(url, f"HTTP {status}" + (f": {detail}" if detail else ""))
        self.status = status


class TransportFailure(FetchError):
    def __init__(self, url: str, detail: str, attempts: int) -> None:
        super().__init__(url, f"{detail} after {attempts} attempt(s)")
        self.attempts = attempts


class Undecodable(FetchError):
    def __init__(self, url: str, tried: list[str]) -> None:
        super().__init__(url, "body is not text in any of " + ", ".join(tried))
        self.tried = tried
