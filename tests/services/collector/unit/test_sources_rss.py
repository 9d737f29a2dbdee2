from __future__ import annotations

from datetime import UTC, datetime

import httpx
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.ports import FetchState, Rejected
from services.collector.sources import RssSource, SourceContext
from services.collector.sources.rss import parse_feed
from tests.services.collector.fakes import Collected, FakeTime, fixture_bytes, make_source, mock_fetcher

NOW = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
FEED_URL = "https://news.qinghe.example.cn/rss.xml"


def _source(**fields: object) -> source_pb2.Source:
    return make_source(common_pb2.SOURCE_KIND_RSS, "qh-daily", FEED_URL, **fields)


def _parse(name: str, url: str = FEED_URL) -> list[post_pb2.Post | Rejected]:
    return parse_feed(fixture_bytes(name).decode("utf-8"), _source(), collected_at=NOW, feed_url=url)


def test_rss2_items_become_posts_with_author_time_and_counts() -> None:
    items = _parse("feeds/rss2.xml")
    posts = [i for i in items if isinstance(i, post_pb2.Post)]
    first, second = posts
    assert first.id == "rss:qh-daily:qh-1001"
    assert first.native_id == "qh-1001"
    assert first.url == "https://news.qinghe.example.cn/2024/05/01/1001.html"
    assert first.title == "清河县住建局局长接受纪律审查和监察调查"
    assert first.text == "据清河县纪委监委消息，县住建局局长王某涉嫌严重违纪违法。"
    assert first.created_at.ToDatetime(UTC) == datetime(2024, 5, 1, 1, 30, tzinfo=UTC)
    assert first.collected_at.ToDatetime(UTC) == NOW
    assert first.author.name == "记者 李明"
    assert first.author.is_media
    assert first.platform == "news.qinghe.example.cn"
    assert first.comments == 12
    assert list(first.media_urls) == ["https://news.qinghe.example.cn/img/1001.jpg"]
    # No guid: the id is derived from the (resolved) link; content:encoded wins over the summary.
    assert second.url == "https://news.qinghe.example.cn/2024/05/01/1002.html"
    assert second.id.startswith("rss:qh-daily:") and second.native_id == second.url
    assert second.text == "会议要求各部门 落实防汛责任。\n第二段。"
    assert second.author.name == "清河日报 本地新闻"  # the outlet, when the item names no author


def test_rss2_bad_items_are_rejected_with_reason_and_payload() -> None:
    rejects = [i for i in _parse("feeds/rss2.xml") if isinstance(i, Rejected)]
    assert [r.reason for r in rejects] == [post_pb2.DEAD_LETTER_REASON_INVALID] * 2
    assert "neither link nor id" in rejects[0].message
    assert "没有链接也没有编号的条目" in rejects[0].payload.decode()
    assert "unreadable time '上周某天'" in rejects[1].message
    assert rejects[1].origin == "https://news.qinghe.example.cn/2024/05/01/1004.html"
    assert all(r.source_id == "qh-daily" for r in rejects)


def test_atom_entries_with_html_and_xhtml_content() -> None:
    first, second = _parse("feeds/atom.xml", "https://gov.dongling.example.cn/atom.xml")
    assert isinstance(first, post_pb2.Post) and isinstance(second, post_pb2.Post)
    assert first.native_id == "tag:gov.dongling.example.cn,2024:2001"
    assert first.url == "https://gov.dongling.example.cn/tb/2001.html"
    assert first.title == "关于公车私用问题的通报"
    assert first.text == "近日，东岭县纪委通报一起公车私用问题。"
    assert first.author.name == "东岭县纪委"
    assert first.created_at.ToDatetime(UTC) == datetime(2024, 5, 2, 1, 15, tzinfo=UTC)  # published, not updated
    assert second.text == "第一段\n第二段 加粗"
    assert second.created_at.ToDatetime(UTC) == datetime(2024, 5, 2, 11, 0, tzinfo=UTC)


def test_malformed_feed_is_one_rejected_with_the_parser_position() -> None:
    (reject,) = _parse("feeds/malformed.xml")
    assert isinstance(reject, Rejected)
    assert reject.reason == post_pb2.DEAD_LETTER_REASON_MALFORMED
    assert reject.message.startswith("malformed feed: mismatched tag: line 8")
    assert reject.payload == fixture_bytes("feeds/malformed.xml")
    assert reject.origin == FEED_URL


def test_entity_declarations_are_refused() -> None:
    (reject,) = _parse("feeds/entities.xml")
    assert isinstance(reject, Rejected)
    assert reject.reason == post_pb2.DEAD_LETTER_REASON_MALFORMED
    assert "entity declaration 'lol' is not allowed" in reject.message


def test_not_a_feed_is_rejected() -> None:
    (reject,) = parse_feed("<html><body>hi</body></html>", _source(), collected_at=NOW)
    assert isinstance(reject, Rejected) and "root element <html>" in reject.message


def test_default_regions_travel_with_each_post() -> None:
    source = _source(default_regions=[common_pb2.Region(code="330100", name="杭州市")])
    items = parse_feed(fixture_bytes("feeds/atom.xml").decode(), source, collected_at=NOW)
    assert [r.code for r in items[0].enrichment.regions] == ["330100"]  # type: ignore[union-attr]


async def test_adapter_full_text_and_conditional_state() -> None:
    time = FakeTime()
    article = "<html><body><div class='body'><p>全文第一段</p><p>全文第二段</p></div></body></html>"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/rss.xml":
            headers = {"ETag": '"f1"', "Content-Type": "application/rss+xml"}
            return httpx.Response(200, content=fixture_bytes("feeds/atom.xml"), headers=headers)
        if request.url.path.endswith("2001.html"):
            return httpx.Response(200, text=article)
        return httpx.Response(404)

    source = _source(rss=source_pb2.RssConfig(fetch_full_text=True, article_selector=".body"))
    collected = Collected()
    async with mock_fetcher(handler, time) as fetcher:
        outcome = await RssSource(SourceContext(fetcher, now=time.now)).collect(source, None, collected)
    first, second = collected.posts
    assert first.text == "全文第一段\n全文第二段"
    assert second.text == "第一段\n第二段 加粗"  # its page failed: the feed's text stays
    assert outcome.error is not None and "1 article page(s) failed" in outcome.error and "HTTP 404" in outcome.error
    # Incomplete: the validators are cleared so the next fetch is unconditional.
    assert outcome.fetch_state == FetchState()


async def test_adapter_not_modified_and_fetch_errors() -> None:
    time = FakeTime()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304)
        return httpx.Response(500)

    collected = Collected()
    async with mock_fetcher(handler, time) as fetcher:
        adapter = RssSource(SourceContext(fetcher, now=time.now))
        unchanged = await adapter.collect(_source(), FetchState(etag='"v1"'), collected)
        failed = await adapter.collect(_source(max_attempts=2), None, collected)
    assert unchanged.not_modified and unchanged.error is None and unchanged.fetch_state is None
    assert failed.error == f"HTTP 500: gave up after 2 attempt(s) ({FEED_URL})"
    assert collected.items == []
