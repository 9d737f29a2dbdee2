"""RSS 2.0, RSS 1.0 (RDF) and Atom: any document is a feed's posts and dead letters or a ``FeedError`` (not a feed),
``parse_feed`` never raises, and a feed with one bad item among 20 yields the 19 good posts."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

from hypothesis import example, given
from hypothesis import strategies as st
from qingfeng.v1 import common_pb2, source_pb2

from services.collector.sources.base import post_id
from services.collector.sources.rss import FeedError, parse_feed, read_feed
from tests.property._posts import check_items, posts_of
from tests.property._support import fewer, run
from tests.property.strategies import DELETE, HOSTILE_STRINGS, NOW, any_text, time_texts, xml_text

SOURCE = common_pb2.SOURCE_KIND_RSS
FEED = source_pb2.Source(id="news", kind=SOURCE, url="https://news.example/feed.xml")
NAMESPACES = (
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:slash="http://purl.org/rss/1.0/modules/slash/" xmlns:media="http://search.yahoo.com/mrss/"'
)


class Raw(str):
    """A value written into the document as it is, unescaped: markup, entities, broken CDATA."""


def good_item(i: int) -> dict[str, Any]:
    return {
        "title": f"标题{i}",
        "link": f"/a/{i}.html",
        "guid": f"good-{i}",
        "pubDate": "Wed, 01 May 2024 12:00:00 +0800",
        "description": f"<p>正文{i}</p>",
        "dc:creator": "记者",
        "slash:comments": "3",
        "enclosure@url": f"https://img.example/{i}.jpg",
        "media:content@url": "/m.png",
    }


def good_entry(i: int) -> dict[str, Any]:
    return {
        "id": f"good-{i}",
        "title": f"标题{i}",
        "link@href": f"https://news.example/a/{i}",
        "published": "2024-05-01T12:00:00+08:00",
        "content@type": "html",
        "content": f"<p>正文{i}</p>",
        "author/name": "记者",
    }


def _element(fields: dict[str, Any]) -> str:
    """The children of one item: "a@b" is attribute b of child a, "a/b" a grandchild, ``Raw`` values unescaped."""
    attributes: dict[str, list[str]] = {}
    texts: dict[str, str] = {}
    for key, value in fields.items():
        text = value if isinstance(value, Raw) else escape(str(value))
        if "@" in key:
            tag, attribute = key.split("@", 1)
            attributes.setdefault(tag, []).append(f"{attribute}={quoteattr(str(value))}")
            texts.setdefault(tag, "")
        else:
            texts[key] = texts.get(key, "") + text
    parts = []
    for tag, text in texts.items():
        parent, _, child = tag.partition("/")
        inner = f"<{child}>{text}</{child}>" if child else text
        parts.append(f"<{parent} {' '.join(attributes.get(tag, []))}>{inner}</{parent}>")
    return "".join(parts)


def rss(items: list[dict[str, Any]]) -> str:
    body = "".join(f"<item>{_element(item)}</item>" for item in items)
    head = f'<?xml version="1.0" encoding="gbk"?><rss version="2.0" {NAMESPACES}>'
    return f"{head}<channel><title>新闻</title>{body}</channel></rss>"


def atom(entries: list[dict[str, Any]]) -> str:
    body = "".join(f"<entry>{_element(entry)}</entry>" for entry in entries)
    return f'<feed xmlns="http://www.w3.org/2005/Atom"><title>新闻</title>{body}</feed>'


def rdf(items: list[dict[str, Any]]) -> str:
    body = "".join(
        f"<item rdf:about={quoteattr(str(item.get('guid', '')))}>{_element(_mutate(item, [('guid', DELETE)]))}</item>"
        for item in items
    )
    return (
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" '
        f"{NAMESPACES}><channel><title>新闻</title></channel>{body}</rdf:RDF>"
    )


_raw = st.sampled_from(
    [
        Raw("<![CDATA[<p>正文</p>]]>"),
        Raw("&nbsp;&middot;"),
        Raw("&bogus;"),
        Raw("<div>" * 30),
        Raw("]]>"),
        Raw("<b>x</b>"),
    ]
)
_values = st.one_of(xml_text, time_texts.map(lambda t: t.replace("\x00", "")), _raw, st.just(DELETE))


def _mutate(fields: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(fields)
    for key, value in changes:
        if value is DELETE:
            out.pop(key, None)
        else:
            out[key] = value
    return out


_ITEM_KEYS = [
    *good_item(0),
    "comments",
    "author",
    "content:encoded",
    "dc:date",
    "guid@isPermaLink",
    "media:thumbnail@url",
]
_ENTRY_KEYS = [*good_entry(0), "updated", "summary", "link@rel", "content@type"]


def _items(good: Any, keys: list[str], first: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda i, changes: _mutate(good(i), changes),
        st.integers(first, first + 30),
        st.lists(st.tuples(st.sampled_from(keys), _values), max_size=4),
    )


documents = st.one_of(
    st.lists(_items(good_item, _ITEM_KEYS), max_size=3).map(rss),
    st.lists(_items(good_item, _ITEM_KEYS), max_size=3).map(rdf),
    st.lists(_items(good_entry, _ENTRY_KEYS), max_size=3).map(atom),
    st.builds(
        lambda doc, at, junk: doc[:at] + junk + doc[at:], st.just(rss([good_item(1)])), st.integers(0, 600), any_text
    ),
    st.sampled_from(HOSTILE_STRINGS),
    any_text,
)


@given(documents)
@example(rss([{**good_item(1), "link": "http://[x"}]))
@example(rss([{**good_item(1), "pubDate": "今天 24:00"}]))
@example(rss([{**good_item(1), "slash:comments": "²"}]))
@example(rss([{**good_item(1), "enclosure@url": "http://h:99999/"}]))
@example(atom([{**good_entry(1), "published": "10000-01-01T00:00:00Z"}]))
@example('<!DOCTYPE r [<!ENTITY a "aaaa">]><rss><channel><item><title>&a;</title></item></channel></rss>')
@example("<rss>" + "<x>" * 50_000 + "</x>" * 50_000 + "</rss>")
@example("\ud800")
def test_any_document_is_a_feed_or_a_feed_error(text: str) -> None:
    items, error = run("rss.read_feed", read_feed, text, FEED, collected_at=NOW, errors=(FeedError,))
    if error is None:
        check_items(items)
    items, _ = run("rss.parse_feed", parse_feed, text, FEED, collected_at=NOW)
    assert check_items(items) or error is None


@fewer(2_000)
@given(st.integers(0, 19), _items(good_item, _ITEM_KEYS, first=99))
@example(7, {**good_item(99), "link": "http://[x"})
@example(0, {**good_item(99), "pubDate": "999999999天前"})
@example(19, {**good_item(99), "description": Raw("<div>" * 50_000 + "x")})
def test_one_bad_item_among_20_costs_only_itself(bad_at: int, bad: dict[str, Any]) -> None:
    items = [good_item(i) for i in range(20)]
    items[bad_at] = bad
    parsed, error = run("rss.read_feed", read_feed, rss(items), FEED, collected_at=NOW, errors=(FeedError,))
    if error is not None:  # the bad item broke the XML itself (raw markup): the document is not a feed
        assert any(isinstance(v, Raw) for v in bad.values()), error
        return
    posts = posts_of(check_items(parsed))
    for i in range(20):
        if i != bad_at:
            post = posts[post_id(SOURCE, "news", f"good-{i}")]
            assert (post.title, post.text, post.url) == (f"标题{i}", f"正文{i}", f"https://news.example/a/{i}.html")
