"""Extraction from forum and news pages with CSS selectors: list pages, article pages and their comments.

Pure functions over decoded page text; ``html.py`` does the fetching and pagination around them. An article whose
required parts are missing becomes a ``Rejected`` (INVALID) with the page as payload, so a site redesign shows up in
the dead-letter topic instead of as silence.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin, urlsplit

from qingfeng.v1 import post_pb2, source_pb2
from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from services.collector.sources.base import Item, is_news_site, new_post, rejected, set_time
from services.collector.sources.text import node_text, parse_html
from services.collector.sources.timeparse import parse_time

__all__ = ["HtmlRules", "ListPage", "RulesError", "extract_article", "parse_list_page"]

_ID_ATTRIBUTES = ("id", "data-id", "data-pid", "data-cid", "data-comment-id")


class RulesError(ValueError):
    """The configured selectors are not valid CSS."""


@dataclass(frozen=True)
class HtmlRules:
    """The selectors of one HTML source (``HtmlConfig``), plus comment selectors.

    The comment selectors are read from ``HtmlConfig`` when it has them (``comment_selector``,
    ``comment_author_selector``, ``comment_body_selector``, ``comment_time_selector``); until the contract carries
    them they can be given here directly.
    """

    item_selector: str
    link_selector: str = ""
    title_selector: str = ""
    body_selector: str = ""
    author_selector: str = ""
    time_selector: str = ""
    time_format: str = ""
    next_selector: str = ""
    max_pages: int = 1
    encoding: str = ""
    comment_selector: str = ""
    comment_author_selector: str = ""
    comment_body_selector: str = ""
    comment_time_selector: str = ""

    @classmethod
    def from_config(cls, config: source_pb2.HtmlConfig, *, default_max_pages: int = 5) -> HtmlRules:
        next_selector = config.pagination.next_selector
        max_pages = config.pagination.max_pages or (default_max_pages if next_selector else 1)
        return cls(
            item_selector=config.item_selector,
            link_selector=config.link_selector,
            title_selector=config.title_selector,
            body_selector=config.body_selector,
            author_selector=config.author_selector,
            time_selector=config.time_selector,
            time_format=config.time_format,
            next_selector=next_selector,
            max_pages=max(1, max_pages),
            encoding=config.encoding,
            comment_selector=str(getattr(config, "comment_selector", "")),
            comment_author_selector=str(getattr(config, "comment_author_selector", "")),
            comment_body_selector=str(getattr(config, "comment_body_selector", "")),
            comment_time_selector=str(getattr(config, "comment_time_selector", "")),
        )


def _select_first(node: LexborNode | LexborHTMLParser, selector: str) -> LexborNode | None:
    if not selector:
        return None
    try:
        return node.css_first(selector)
    except (SelectolaxError, ValueError) as err:  # ValueError: a selector UTF-8 cannot carry (a lone surrogate)
        raise RulesError(f"invalid CSS selector {selector!r}") from err


def _select_all(node: LexborNode | LexborHTMLParser, selector: str) -> list[LexborNode]:
    try:
        return list(node.css(selector))
    except (SelectolaxError, ValueError) as err:
        raise RulesError(f"invalid CSS selector {selector!r}") from err


def _text_of(node: LexborNode | LexborHTMLParser, selector: str) -> str:
    found = _select_first(node, selector)
    return node_text(found) if found is not None else ""


def _element_id(node: LexborNode) -> str:
    for name in _ID_ATTRIBUTES:
        value = node.attributes.get(name)
        if value:
            return value
    return ""


@dataclass(frozen=True)
class ListPage:
    """What a list page holds: article links (resolved, in page order), inline items, rejects and the next page."""

    links: list[str]
    inline: list[Item]
    rejects: list[Item]
    next_url: str


def parse_list_page(
    text: str, page_url: str, rules: HtmlRules, source: source_pb2.Source, *, collected_at: datetime
) -> ListPage:
    """Split a list page into article links (with ``link_selector``) or inline posts (without it)."""
    tree = parse_html(text)
    links: list[str] = []
    inline: list[Item] = []
    rejects: list[Item] = []
    for node in _select_all(tree, rules.item_selector):
        if not rules.link_selector:
            inline.append(_inline_post(node, page_url, rules, source, collected_at))
            continue
        anchor = _select_first(node, rules.link_selector)
        href = (anchor.attributes.get("href") or "").strip() if anchor is not None else ""
        if not href or href.startswith(("javascript:", "#")):
            message = f"list item has no link matching {rules.link_selector!r}"
            rejects.append(rejected(source, post_pb2.DEAD_LETTER_REASON_INVALID, message, node.html or "", page_url))
            continue
        link = _absolute(page_url, href)
        if link is None:
            message = f"list item has an invalid link {href[:200]!r}"
            rejects.append(rejected(source, post_pb2.DEAD_LETTER_REASON_INVALID, message, node.html or "", page_url))
            continue
        links.append(link)
    next_node = _select_first(tree, rules.next_selector)
    next_href = (next_node.attributes.get("href") or "").strip() if next_node is not None else ""
    next_url = _absolute(page_url, next_href) if next_href and not next_href.startswith("javascript:") else ""
    return ListPage(list(dict.fromkeys(links)), inline, rejects, next_url or "")


def _absolute(base: str, href: str) -> str | None:
    """``href`` resolved against ``base``; None when it does not parse as a URL (``http://[x``, a bad port)."""
    try:
        url = urljoin(base, href)
        urlsplit(url).port  # noqa: B018 - parsing the port is part of the check
    except ValueError:
        return None
    return url


def _when(
    node: LexborNode | LexborHTMLParser, selector: str, rules: HtmlRules, collected_at: datetime
) -> datetime | str:
    """The publication time under ``selector``: collected_at when there is none, the raw text when unreadable."""
    found = _select_first(node, selector)
    if found is None:
        return collected_at
    raw = (found.attributes.get("datetime") or "") or node_text(found)
    if not raw:
        return collected_at
    parsed = parse_time(raw, fmt=rules.time_format, now=collected_at)
    return parsed if parsed is not None else raw


def _fill(post: post_pb2.Post, *, author: str, created_at: datetime, is_media: bool) -> None:
    set_time(post.created_at, created_at)
    post.author.id = author or post.platform
    post.author.name = author or post.platform
    post.author.is_media = is_media


def _inline_post(
    node: LexborNode, page_url: str, rules: HtmlRules, source: source_pb2.Source, collected_at: datetime
) -> Item:
    """A post that lives on the list page itself (forum floors, news flashes)."""
    payload = node.html or ""
    title = _text_of(node, rules.title_selector)
    text = _text_of(node, rules.body_selector) if rules.body_selector else node_text(node)
    if not text and not title:
        return rejected(source, post_pb2.DEAD_LETTER_REASON_INVALID, "list item has no text", payload, page_url)
    when = _when(node, rules.time_selector, rules, collected_at)
    if isinstance(when, str):
        message = f"list item has an unreadable time {when!r}"
        return rejected(source, post_pb2.DEAD_LETTER_REASON_INVALID, message, payload, page_url)
    author = _text_of(node, rules.author_selector)
    element_id = _element_id(node)
    native = element_id or hashlib.sha1(f"{author}\n{title}\n{text}".encode()).hexdigest()
    post = new_post(source, native_id=f"{page_url}#{native}", url=page_url, collected_at=collected_at)
    post.title, post.text = title, text
    _fill(post, author=author, created_at=when, is_media=is_news_site(source.url))
    return post


def _comments(
    tree: LexborHTMLParser, article: post_pb2.Post, rules: HtmlRules, source: source_pb2.Source, collected_at: datetime
) -> list[Item]:
    items: list[Item] = []
    if not rules.comment_selector:
        return items
    for node in _select_all(tree, rules.comment_selector):
        payload = node.html or ""
        text = _text_of(node, rules.comment_body_selector) if rules.comment_body_selector else node_text(node)
        if not text:
            message = "comment has no text"
            items.append(rejected(source, post_pb2.DEAD_LETTER_REASON_INVALID, message, payload, article.url))
            continue
        author = _text_of(node, rules.comment_author_selector)
        when = _when(node, rules.comment_time_selector, rules, collected_at)
        if isinstance(when, str):
            message = f"comment has an unreadable time {when!r}"
            items.append(rejected(source, post_pb2.DEAD_LETTER_REASON_INVALID, message, payload, article.url))
            continue
        # Element ids are unique within one page only, so the comment's identity includes the article URL.
        key = _element_id(node) or hashlib.sha1(f"{author}\n{when.isoformat()}\n{text}".encode()).hexdigest()
        comment = new_post(source, native_id=f"{article.url}#{key}", url=article.url, collected_at=collected_at)
        comment.text = text
        comment.parent_id = article.id
        comment.root_id = article.id
        # Commenters are readers, whatever the site is.
        _fill(comment, author=author, created_at=when, is_media=False)
        items.append(comment)
    return items


def extract_article(
    text: str, url: str, rules: HtmlRules, source: source_pb2.Source, *, collected_at: datetime
) -> list[Item]:
    """The article on a page followed by its comments; a page without the configured body is one ``Rejected``."""
    tree = parse_html(text)
    invalid = post_pb2.DEAD_LETTER_REASON_INVALID
    title = _text_of(tree, rules.title_selector) if rules.title_selector else _text_of(tree, "title")
    body_node = _select_first(tree, rules.body_selector or "article") or (None if rules.body_selector else tree.body)
    body = node_text(body_node) if body_node is not None else ""
    if not body:
        return [rejected(source, invalid, f"article body {rules.body_selector!r} not found", text, url)]
    when = _when(tree, rules.time_selector, rules, collected_at)
    if isinstance(when, str):
        return [rejected(source, invalid, f"article has an unreadable time {when!r}", text, url)]
    post = new_post(source, native_id="", url=url, collected_at=collected_at)
    post.title, post.text = title, body
    _fill(post, author=_text_of(tree, rules.author_selector), created_at=when, is_media=is_news_site(source.url))
    comments = _comments(tree, post, rules, source, collected_at)
    post.comments = sum(isinstance(c, post_pb2.Post) for c in comments)
    return [post, *comments]
