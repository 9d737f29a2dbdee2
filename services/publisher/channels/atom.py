"""The website feed over HTTP: ``GET /feed.atom`` answers the latest releases as Atom 1.0 (RFC 4287), newest first.

Retracted releases are not entries any more; each leaves an ``at:deleted-entry`` tombstone (RFC 6721) so a reader
that already has it can take it down. The XML is built with ``xml.etree``, which escapes every text and attribute;
characters XML 1.0 forbids (control characters from a pasted text) are dropped rather than break the document.
The answer carries an ETag, and a matching ``If-None-Match`` gets 304.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.publisher.channels.feed import FeedSettings
from services.publisher.channels.feed_store import FeedEntry, FeedStore

__all__ = ["ATOM_NS", "TOMBSTONE_NS", "feed_app", "render_atom"]

ATOM_NS = "http://www.w3.org/2005/Atom"
TOMBSTONE_NS = "http://purl.org/atompub/tombstones/1.0"
MEDIA_TYPE = "application/atom+xml; charset=utf-8"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("", value)


def _time(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _child(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: _text(v) for k, v in attributes.items()})
    if text is not None:
        element.text = _text(text)
    return element


def render_atom(entries: Sequence[FeedEntry], settings: FeedSettings, *, now: datetime) -> bytes:
    """The feed document for ``entries`` (any order; retracted ones become tombstones)."""
    ordered = sorted(entries, key=lambda e: (e.published, e.publication_id), reverse=True)
    live = [e for e in ordered if e.retracted_at is None]
    gone = [(e, e.retracted_at) for e in ordered if e.retracted_at is not None]
    changes = [e.updated for e in live] + [when for _, when in gone]
    feed = ET.Element("feed", {"xmlns": ATOM_NS, "xmlns:at": TOMBSTONE_NS})
    _child(feed, "id", settings.feed_id())
    _child(feed, "title", settings.title)
    _child(feed, "updated", _time(max(changes) if changes else now))
    _child(feed, "link", rel="self", type="application/atom+xml", href=settings.feed_url())
    _child(feed, "link", rel="alternate", type="text/html", href=settings.site_url)
    author = _child(feed, "author")
    _child(author, "name", settings.author)
    for entry in live:
        item = _child(feed, "entry")
        _child(item, "id", settings.entry_id(entry.publication_id))
        _child(item, "title", entry.title)
        _child(item, "published", _time(entry.published))
        _child(item, "updated", _time(entry.updated))
        _child(item, "link", rel="alternate", type="text/html", href=entry.url)
        _child(item, "content", entry.body, type="text")
    for entry, when in gone:
        tomb = _child(feed, "at:deleted-entry", ref=settings.entry_id(entry.publication_id), when=_time(when))
        _child(tomb, "at:comment", "已撤回")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="unicode").encode("utf-8")


def feed_app(
    store: FeedStore, settings: FeedSettings, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Starlette:
    """An ASGI app serving ``/feed.atom`` from ``store``; mount it or run it with uvicorn."""

    async def feed(request: Request) -> Response:
        body = render_atom(await store.latest(settings.max_entries), settings, now=clock())
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "public, max-age=60"}
        wanted = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
        if etag in wanted or "*" in wanted:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=MEDIA_TYPE, headers=headers)

    return Starlette(routes=[Route("/feed.atom", feed, methods=["GET", "HEAD"])])
