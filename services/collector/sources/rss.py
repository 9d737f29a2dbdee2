"""RSS 2.0, RSS 1.0 (RDF) and Atom feeds of portals and local news, optionally with each item's full article.

Feed items become posts attributed to the outlet (``Author.is_media``); an item without a link or an id, without any
text, or with a publication time that cannot be read becomes a ``Rejected`` with the item's XML as payload.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from qingfeng.v1 import post_pb2, source_pb2
from selectolax.lexbor import SelectolaxError

from services.collector.fetch import FetchError, Politeness
from services.collector.ports import FetchState
from services.collector.sources._xml import MalformedXml, parse_xml
from services.collector.sources.base import (
    Emit,
    Item,
    Outcome,
    SourceContext,
    emit_all,
    is_news_site,
    new_post,
    platform_of,
    rejected,
    rejected_for_fetch_error,
    set_time,
)
from services.collector.sources.text import TooDeep, clean_text, html_to_text, node_text, parse_html
from services.collector.sources.timeparse import parse_time

__all__ = ["FeedError", "RssSource", "parse_feed", "read_feed"]

_ATOM = "{http://www.w3.org/2005/Atom}"
_RSS1 = "{http://purl.org/rss/1.0/}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
_MEDIA = "{http://search.yahoo.com/mrss/}"
_SLASH = "{http://purl.org/rss/1.0/modules/slash/}"


def _text(element: ET.Element | None) -> str:
    return "".join(element.itertext()).strip() if element is not None else ""


def _first(element: ET.Element, *paths: str) -> str:
    for path in paths:
        value = _text(element.find(path))
        if value:
            return value
    return ""


def _author_name(raw: str) -> str:
    """RSS <author> is "email (Name)"; keep the name when there is one."""
    if "(" in raw and raw.endswith(")"):
        return raw[raw.index("(") + 1 : -1].strip()
    return raw


def _atom_content(entry: ET.Element) -> str:
    for tag in ("content", "summary"):
        element = entry.find(_ATOM + tag)
        if element is None:
            continue
        kind = element.get("type", "text")
        if kind == "xhtml":
            for node in element.iter():  # <html:p> would not be a paragraph to the HTML parser
                if isinstance(node.tag, str):
                    node.tag = node.tag.rpartition("}")[2]
            markup = "".join(ET.tostring(child, encoding="unicode") for child in element)
            return html_to_text(markup)
        return html_to_text(_text(element)) if "html" in kind else clean_text(_text(element))
    return ""


def _atom_link(entry: ET.Element) -> str:
    for link in entry.findall(_ATOM + "link"):
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return link.get("href", "")
    return ""


def _absolute(base: str, link: str) -> str | None:
    """``link`` resolved against ``base``; None when either does not parse as a URL (``http://[x``)."""
    try:
        url = urljoin(base, link)
        urlsplit(url).port  # noqa: B018 - parsing the port is what refuses "http://h:99999" and "http://[x"
    except ValueError:
        return None
    return url


def _media_urls(item: ET.Element, base: str) -> list[str]:
    urls = [e.get("url", "") for e in item.findall("enclosure")]
    urls += [e.get("url", "") for e in item.findall(_MEDIA + "content")]
    urls += [e.get("url", "") for e in item.findall(_MEDIA + "thumbnail")]
    resolved = (_absolute(base, u) for u in urls if u)
    return list(dict.fromkeys(u for u in resolved if u))


def _to_post(
    item: ET.Element,
    source: source_pb2.Source,
    *,
    atom: bool,
    channel_title: str,
    feed_url: str,
    collected_at: datetime,
) -> Item:
    payload = ET.tostring(item, encoding="utf-8")
    invalid = post_pb2.DEAD_LETTER_REASON_INVALID
    if atom:
        native = _first(item, _ATOM + "id")
        link = _atom_link(item)
        title = html_to_text(_first(item, _ATOM + "title"))
        text = _atom_content(item)
        when = _first(item, _ATOM + "published", _ATOM + "updated")
        author = _first(item, f"{_ATOM}author/{_ATOM}name")
    else:
        guid = item.find("guid")
        native = _text(guid) or item.get(_RDF + "about", "")
        link = _first(item, "link", _RSS1 + "link")
        if not link and guid is not None and guid.get("isPermaLink", "true") != "false" and native.startswith("http"):
            link = native
        title = html_to_text(_first(item, "title", _RSS1 + "title"))
        text = html_to_text(_first(item, _CONTENT + "encoded", "description", _RSS1 + "description"))
        when = _first(item, "pubDate", _DC + "date")
        author = _author_name(_first(item, _DC + "creator", "author"))
    url = _absolute(feed_url, link) if link else ""
    if url is None:
        return rejected(source, invalid, f"feed item has an invalid link {link[:200]!r}", payload, feed_url)
    if not native and not url:
        return rejected(source, invalid, "feed item has neither link nor id", payload, feed_url)
    if not title and not text:
        return rejected(source, invalid, "feed item has no title and no text", payload, url)
    created_at = collected_at
    if when:
        parsed = parse_time(when, now=collected_at)
        if parsed is None:
            message = f"feed item has an unreadable time {when!r}"
            return rejected(source, invalid, message, payload, url or feed_url)
        created_at = parsed
    post = new_post(source, native_id=native or url, url=url, collected_at=collected_at, platform=platform_of(feed_url))
    post.title = title
    post.text = text
    set_time(post.created_at, created_at)
    outlet = channel_title or post.platform
    post.author.id = author or post.platform
    post.author.name = author or outlet
    post.author.is_media = is_news_site(feed_url)
    comments = _first(item, _SLASH + "comments")
    # ASCII digits only ("²".isdigit() is true) and within int64.
    post.comments = int(comments) if comments.isascii() and comments.isdigit() and len(comments) <= 18 else 0
    post.media_urls.extend(_media_urls(item, url or feed_url))
    return post


class FeedError(ValueError):
    """The document is not a readable feed."""


def read_feed(text: str, source: source_pb2.Source, *, collected_at: datetime, feed_url: str = "") -> list[Item]:
    """Posts (and rejected items) of an RSS or Atom document; raises ``FeedError`` when it is not a feed at all."""
    feed_url = feed_url or source.url
    try:
        root = parse_xml(text)
    except MalformedXml as err:
        raise FeedError(f"malformed feed: {err}") from err
    if root.tag == _ATOM + "feed":
        atom, channel_title, entries = True, _first(root, _ATOM + "title"), root.findall(_ATOM + "entry")
    elif root.tag == "rss":
        atom, channel_title, entries = False, _first(root, "channel/title"), root.findall("channel/item")
    elif root.tag == _RDF + "RDF":
        atom, channel_title, entries = False, _first(root, f"{_RSS1}channel/{_RSS1}title"), root.findall(_RSS1 + "item")
    else:
        raise FeedError(f"malformed feed: root element <{root.tag}> is not rss, RDF or Atom feed")
    return [
        _guarded(e, source, atom=atom, channel_title=channel_title, feed_url=feed_url, collected_at=collected_at)
        for e in entries
    ]


def _guarded(item: ET.Element, source: source_pb2.Source, *, feed_url: str, **kw: Any) -> Item:
    """``_to_post``, with any value error it did not foresee costing this item only (a dead letter saying so)."""
    try:
        return _to_post(item, source, feed_url=feed_url, **kw)
    except (ValueError, OverflowError, TypeError) as err:
        payload = ET.tostring(item, encoding="utf-8")
        message = f"feed item could not be read: {type(err).__name__}: {err}"
        return rejected(source, post_pb2.DEAD_LETTER_REASON_INVALID, message, payload, feed_url)


def parse_feed(text: str, source: source_pb2.Source, *, collected_at: datetime, feed_url: str = "") -> list[Item]:
    """Like ``read_feed``, but a document that is not a feed becomes one ``Rejected`` (MALFORMED) with its text."""
    try:
        return read_feed(text, source, collected_at=collected_at, feed_url=feed_url)
    except FeedError as err:
        reason = post_pb2.DEAD_LETTER_REASON_MALFORMED
        return [rejected(source, reason, str(err), text, feed_url or source.url)]


class RssSource:
    """``SourceAdapter`` for ``SOURCE_KIND_RSS``."""

    def __init__(self, context: SourceContext) -> None:
        self._ctx = context

    async def collect(self, source: source_pb2.Source, state: FetchState | None, emit: Emit) -> Outcome:
        polite = Politeness.for_source(source)
        body = b""
        try:
            response = await self._ctx.fetcher.get(source.url, state=state, politeness=polite)
            if response.not_modified:
                return Outcome(not_modified=True)
            body = response.body
            text = response.text()
        except FetchError as err:
            reject = rejected_for_fetch_error(source, err, body)
            if reject is not None:
                await emit([reject])
            return Outcome(error=str(err), emitted=int(reject is not None))
        try:
            items = read_feed(text, source, collected_at=self._ctx.now(), feed_url=response.url)
        except FeedError as err:
            await emit([rejected(source, post_pb2.DEAD_LETTER_REASON_MALFORMED, str(err), body, response.url)])
            return Outcome(error=str(err), emitted=1)
        failures: list[str] = []
        if source.rss.fetch_full_text:
            failures = await self._add_full_text(items, source, polite)
        await emit_all(emit, items, self._ctx.batch_size)
        if failures:
            # Some articles are incomplete: clear the validators so the next fetch re-reads the whole feed.
            summary = f"{len(failures)} article page(s) failed, first: {failures[0]}"
            return Outcome(fetch_state=FetchState(), error=summary, emitted=len(items))
        return Outcome(fetch_state=response.fetch_state(), emitted=len(items))

    async def _add_full_text(self, items: Sequence[Item], source: source_pb2.Source, polite: Politeness) -> list[str]:
        """Replace each post's summary with the article body found by ``article_selector``; returns failures."""
        selector = source.rss.article_selector or "article"
        failures: list[str] = []
        for post in items:
            if not isinstance(post, post_pb2.Post) or not post.url:
                continue
            try:
                page = await self._ctx.fetcher.get(post.url, politeness=polite)
                node = parse_html(page.text()).css_first(selector)
            except (FetchError, TooDeep) as err:
                failures.append(str(err))
                continue
            except SelectolaxError:
                return [f"invalid article_selector {selector!r}"]
            body = node_text(node) if node is not None else ""
            if body:
                post.text = body
        return failures
