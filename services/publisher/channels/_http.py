"""What every HTTP channel adapter shares: timeouts, the client, the wait a channel asks for, transport failures.

Each adapter keeps its own mapping from the channel's statuses and error codes to ``ChannelErrorKind``; only the
parts that mean the same on every channel live here.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.publisher.ports import ChannelError, ChannelErrorKind

__all__ = ["ChannelUrl", "HttpTimeouts", "new_client", "retry_after_s", "transport_error", "until_s"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _channel_url(value: str) -> str:
    """An absolute http(s) URL without query or fragment; plain http only to loopback, because the request carries
    a token or a signature that must not cross a network in clear."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not carry a query, a fragment or credentials")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError("must use https (plain http only to 127.0.0.1, ::1 or localhost)")
    return value


ChannelUrl = Annotated[str, AfterValidator(_channel_url)]


class HttpTimeouts(BaseModel):
    """Per-phase timeouts of one channel, in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    connect_s: float = Field(default=5.0, gt=0)
    # Waiting for the channel's answer; a POST that times out here may still have landed (see ``find``).
    read_s: float = Field(default=15.0, gt=0)
    write_s: float = Field(default=10.0, gt=0)
    pool_s: float = Field(default=5.0, gt=0)

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect_s, read=self.read_s, write=self.write_s, pool=self.pool_s)


def new_client(
    base_url: str, timeouts: HttpTimeouts, *, user_agent: str = "qingfeng-publisher/0.1"
) -> httpx.AsyncClient:
    """One client per channel, so connections are reused; redirects are not followed (a POST must not be replayed)."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeouts.to_httpx(),
        follow_redirects=False,
        headers={"User-Agent": user_agent},
        # Never pick up proxies from the environment: the channel's address is configuration, nothing else.
        trust_env=False,
    )


def until_s(when: datetime, now: datetime) -> float:
    return max(0.0, (when - now).total_seconds())


def retry_after_s(headers: httpx.Headers, now: datetime | None = None) -> float | None:
    """Seconds the channel asked us to wait: ``Retry-After`` (delta-seconds or HTTP date), else Mastodon's
    ``X-RateLimit-Reset`` (an ISO 8601 time, or epoch seconds on some APIs). None when it said nothing readable."""
    now = now or datetime.now(UTC)
    value = headers.get("Retry-After", "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            return until_s(when if when.tzinfo else when.replace(tzinfo=UTC), now)
    reset = headers.get("X-RateLimit-Reset", "").strip()
    if reset:
        try:
            # Epoch seconds (Twitter-style APIs); a plain number below 10^9 would be a delta, not a time.
            number = float(reset)
        except ValueError:
            number = None
        if number is not None:
            return until_s(datetime.fromtimestamp(number, UTC), now) if number > 1e9 else max(0.0, number)
        try:
            when = datetime.fromisoformat(reset.replace("Z", "+00:00"))
        except ValueError:
            return None
        return until_s(when if when.tzinfo else when.replace(tzinfo=UTC), now)
    return None


def transport_error(channel: str, operation: str, err: httpx.TransportError) -> ChannelError:
    """Timeouts, refused or dropped connections: the channel is unavailable for now, so the worker may retry.

    After a write the outcome is unknown (the channel may have accepted before the connection broke); the worker
    asks ``find`` before it retries, and the adapters make a retried ``deliver`` safe on their own too.
    """
    what = "timed out" if isinstance(err, httpx.TimeoutException) else f"failed ({type(err).__name__})"
    return ChannelError(ChannelErrorKind.UNAVAILABLE, f"{channel} {operation} {what}: {err}".rstrip(": "))
