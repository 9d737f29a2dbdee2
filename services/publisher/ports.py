"""The seam between the publisher and the official channels it delivers to (Mastodon, Weibo-style, webhook, feed).

A channel adapter turns one ``Delivery`` (one approved release for one channel) into one item on that channel and
answers with where it landed (``Delivered``). The publisher owns everything around it: sign-off, checks, retries with
backoff, dead letters and the exactly-once bookkeeping. An adapter only has to keep these promises:

- ``deliver`` posts at most one item per ``publication_id`` *as far as the channel allows*: send the id as the
  idempotency key where the channel has one (Mastodon ``Idempotency-Key``), and carry it in the item otherwise so
  ``find`` can recognise it later.
- ``find`` answers "did an earlier attempt for this publication land?" from the channel itself. The worker asks it
  before retrying an attempt whose outcome is unknown (timeout, crash between the channel's acceptance and our
  database update), so a channel without idempotency keys still never gets a second post.
- Every failure is a ``ChannelError`` with a ``kind``; only RATE_LIMITED and UNAVAILABLE are retried. Anything else
  raised (a bug, a timeout the adapter did not classify) is treated by the worker as an unknown outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

__all__ = [
    "ChannelAdapter",
    "ChannelConfig",
    "ChannelError",
    "ChannelErrorKind",
    "ChannelFactory",
    "Delivered",
    "Delivery",
]


@dataclass(frozen=True)
class Delivery:
    """One publication of one approved release to one channel."""

    # Stable across every attempt and restart: also the idempotency key on the channel.
    publication_id: str
    channel_id: str
    title: str
    # Already checked (length, forbidden words) and masked (ID-card and phone numbers) by the publisher.
    body: str
    # Where the release lives on the official website, when the channel wants a link; None when unknown.
    url_hint: str | None = None


@dataclass(frozen=True)
class Delivered:
    """Where a delivery landed on the channel."""

    # The channel's id of the item (status id, article id, feed entry id).
    external_id: str
    # Public URL of the item.
    url: str


class ChannelErrorKind(Enum):
    # 429 and the like: retry later (after retry_after_s when the channel said so).
    RATE_LIMITED = "rate_limited"
    # 401/403: credentials wrong or revoked; retrying cannot help.
    UNAUTHORISED = "unauthorised"
    # 4xx other than the above (e.g. 422): the channel refuses this content; retrying cannot help.
    INVALID = "invalid"
    # 5xx, connection refused, DNS: the channel is down; retry later.
    UNAVAILABLE = "unavailable"


RETRYABLE = frozenset({ChannelErrorKind.RATE_LIMITED, ChannelErrorKind.UNAVAILABLE})


class ChannelError(Exception):
    """A channel refused or failed an operation, classified so the worker knows whether to retry."""

    def __init__(self, kind: ChannelErrorKind, message: str, retry_after_s: float | None = None) -> None:
        self.kind = kind
        self.message = message
        # The channel's own hint (e.g. Retry-After), in seconds; None when it gave none.
        self.retry_after_s = retry_after_s
        super().__init__(f"{kind.value}: {message}")

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


class ChannelAdapter(Protocol):
    """One configured channel. Implementations live in ``services/publisher/channels/``."""

    # Which kind of channel: "mastodon", "weibo", "webhook", "feed".
    kind: str

    async def deliver(self, delivery: Delivery) -> Delivered:
        """Post the release; raises ChannelError."""
        ...

    async def find(self, publication_id: str) -> Delivered | None:
        """The item an earlier attempt for this publication left on the channel, or None if none landed."""
        ...

    async def retract(self, external_id: str) -> None:
        """Withdraw (delete) the item; retracting an item already gone is not an error. Raises ChannelError."""
        ...

    async def correct(self, external_id: str, text: str) -> Delivered:
        """Publish a correction of the item (edit in place or a linked notice); returns where it is."""
        ...


@dataclass(frozen=True)
class ChannelConfig:
    """One channel as configured in ``policies/channels.yaml`` (validated before any adapter is built)."""

    id: str
    # Selects the adapter: "mastodon", "weibo", "webhook", "feed".
    kind: str
    # Adapter-specific settings from the YAML ``options:`` mapping (base URL, account, feed path …). Secrets are not
    # written there: an option ending in ``_env`` names the environment variable that holds the secret.
    options: Mapping[str, Any] = field(default_factory=dict)


class ChannelFactory(Protocol):
    """Builds the adapter of one channel. ``services/publisher/channels/__init__.py`` exports one as
    ``build_channel``; ``app.py`` calls it once per enabled channel at start (ValueError for a bad config)."""

    def __call__(self, config: ChannelConfig) -> ChannelAdapter: ...
