"""The official website's feed of releases: delivering records an entry, ``atom.py`` serves them as Atom 1.0.

Delivering is idempotent by publication id (the store inserts once), so a retry or a replay after a crash leaves
one entry. A retraction keeps the entry in the store with its time and the feed drops it (with an RFC 6721
tombstone so readers that cached it can remove it); a correction replaces the content and moves ``updated``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from services.publisher.channels.feed_store import FeedEntry, FeedStore
from services.publisher.ports import ChannelError, ChannelErrorKind, Delivered, Delivery

__all__ = ["FeedAdapter", "FeedSettings"]

_URL = r"^https?://[^/?#]+(/[^?#]*)?$"


class FeedSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # The website's section of releases; a release without a URL of its own links to <site_url>/<publication id>.
    site_url: str = Field(pattern=_URL)
    # Where the feed is served (its rel="self" link); by default /feed.atom on the site's host (feed_app's route).
    self_url: str | None = Field(default=None, pattern=_URL)
    title: str = Field(default="权威发布", min_length=1)
    author: str = Field(default="清风", min_length=1)
    # Authority of the feed's and entries' permanent tag URIs (RFC 4151), "<domain>,<date the feed started>"; by
    # default the site's host and 2026. Never change it once readers have the feed: every entry would look new.
    tag_authority: str | None = Field(default=None, pattern=r"^[A-Za-z0-9.-]+,\d{4}(-\d{2}(-\d{2})?)?$")
    max_entries: int = Field(default=50, ge=1, le=1000)

    def authority(self) -> str:
        return self.tag_authority or f"{urlsplit(self.site_url).hostname},2026"

    def entry_id(self, publication_id: str) -> str:
        return f"tag:{self.authority()}:publication/{quote(publication_id, safe='')}"

    def feed_id(self) -> str:
        return f"tag:{self.authority()}:feed"

    def feed_url(self) -> str:
        parts = urlsplit(self.site_url)
        return self.self_url or f"{parts.scheme}://{parts.netloc}/feed.atom"

    def release_url(self, publication_id: str) -> str:
        return f"{self.site_url.rstrip('/')}/{quote(publication_id, safe='')}"


class FeedAdapter:
    """Records releases in a ``FeedStore``; the feed app serves them."""

    kind = "feed"

    def __init__(
        self,
        settings: FeedSettings,
        store: FeedStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = store
        self._clock = clock

    async def aclose(self) -> None:
        return None

    async def deliver(self, delivery: Delivery) -> Delivered:
        now = self._clock()
        url = delivery.url_hint or self.settings.release_url(delivery.publication_id)
        entry = FeedEntry(
            publication_id=delivery.publication_id,
            title=delivery.title,
            body=delivery.body,
            url=url,
            published=now,
            updated=now,
        )
        return _delivered(await self.store.insert_once(entry))

    async def find(self, publication_id: str) -> Delivered | None:
        entry = await self.store.get(publication_id)
        return None if entry is None else _delivered(entry)

    async def retract(self, external_id: str) -> None:
        entry = await self.store.get(external_id)
        if entry is not None and entry.retracted_at is None:
            await self.store.save(entry.retracted(self._clock()))

    async def correct(self, external_id: str, text: str) -> Delivered:
        entry = await self.store.get(external_id)
        if entry is None:
            raise ChannelError(ChannelErrorKind.INVALID, f"no feed entry {external_id}")
        if entry.retracted_at is not None:
            raise ChannelError(ChannelErrorKind.INVALID, f"feed entry {external_id} was retracted")
        if entry.body != text:
            await self.store.save(entry.corrected(text, self._clock()))
        return _delivered(entry)


def _delivered(entry: FeedEntry) -> Delivered:
    return Delivered(external_id=entry.publication_id, url=entry.url)
