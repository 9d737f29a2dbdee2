"""Deeply nested markup costs only its page or item, quickly, and off the event loop (issue #13: 40,000 nested
``<div>``s took the parser about 4 s)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx
import pytest
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.sources import HtmlRules, HtmlSource, SourceContext, rss
from services.collector.sources.text import MAX_NESTING_COST, TooDeep, html_to_text, nesting_cost, parse_html
from tests.services.collector.fakes import FIXTURES, Collected, FakeTime, make_source, mock_fetcher

NOW = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
SITE = "https://bbs.example"
NESTED = "<div>" * 40_000 + "深层内容" + "</div>" * 40_000


def test_normal_pages_are_far_below_the_limit() -> None:
    for page in sorted((FIXTURES / "html").glob("*.html")):
        assert nesting_cost(page.read_bytes().decode("gb18030")) < MAX_NESTING_COST // 100, page.name
    # Flat or unclosed runs (which the parser handles quickly) cost nothing or little.
    assert nesting_cost("<p>x" * 40_000) == 0
    assert nesting_cost("<br/><img src=x>" * 10_000) == 0
    assert nesting_cost("<a<a<a" * 50_000) == 0  # no quadratic scan on unterminated tags


@pytest.mark.parametrize("depth", [40_000, 200_000])
def test_deep_nesting_is_refused_before_parsing_and_text_still_read(depth: int) -> None:
    markup = "<div>" * depth + "深层内容 &amp; 更多" + "</div>" * depth
    started = time.perf_counter()
    with pytest.raises(TooDeep):
        parse_html(markup)
    assert html_to_text(markup) == "深层内容 & 更多"
    assert time.perf_counter() - started < 1.0


def test_a_feed_item_with_nested_markup_keeps_its_neighbours() -> None:
    from xml.sax.saxutils import escape

    items = "".join(
        f"<item><title>第{i}条</title><link>https://news.example/{i}</link>"
        f"<description>{escape(NESTED if i == 3 else '正文')}</description></item>"
        for i in range(20)
    )
    feed = f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>'
    source = make_source(common_pb2.SOURCE_KIND_RSS, "rss", "https://news.example/feed.xml")
    started = time.perf_counter()
    parsed = rss.read_feed(feed, source, collected_at=NOW)
    assert time.perf_counter() - started < 2.0
    posts = [p for p in parsed if isinstance(p, post_pb2.Post)]
    assert len(posts) == 20 and posts[3].text == "深层内容"


async def test_a_page_nested_too_deeply_is_one_dead_letter_and_the_loop_stays_free() -> None:
    rules = HtmlRules(item_selector="li", link_selector="a", title_selector="h1", body_selector=".body")
    listing = "<ul>" + "".join(f'<li><a href="/t/{i}">t{i}</a></li>' for i in range(5)) + "</ul>"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/list":
            return httpx.Response(200, text=listing, headers={"content-type": "text/html; charset=utf-8"})
        if request.url.path == "/t/2":
            return httpx.Response(200, text=NESTED, headers={"content-type": "text/html; charset=utf-8"})
        n = request.url.path.rsplit("/", 1)[1]
        body = f"<h1>帖子{n}</h1><div class='body'>内容{n}</div>"
        return httpx.Response(200, text=body, headers={"content-type": "text/html; charset=utf-8"})

    source = make_source(
        common_pb2.SOURCE_KIND_HTML, "bbs", f"{SITE}/list", html=source_pb2.HtmlConfig(item_selector="li")
    )
    gaps: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    collected = Collected()
    beat = asyncio.create_task(heartbeat())
    async with mock_fetcher(handler, FakeTime()) as fetcher:
        adapter = HtmlSource(SourceContext(fetcher, now=lambda: NOW), rules={"bbs": rules})
        outcome = await adapter.collect(source, None, collected)
    done.set()
    await beat
    assert sorted(p.title for p in collected.posts) == ["帖子0", "帖子1", "帖子3", "帖子4"]
    (dead,) = collected.rejected
    assert dead.reason == post_pb2.DEAD_LETTER_REASON_MALFORMED and "nested too deeply" in dead.message
    assert dead.origin == f"{SITE}/t/2"
    assert outcome.error is not None and "nested too deeply" in outcome.error
    assert max(gaps) < 0.5
