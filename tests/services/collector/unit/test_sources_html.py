from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.fetch import decode_body
from services.collector.ports import FetchState
from services.collector.sources import HtmlRules, HtmlSource, SourceContext
from services.collector.sources.html_extract import RulesError, extract_article, parse_list_page
from tests.services.collector.fakes import Collected, FakeTime, fixture_bytes, make_source, mock_fetcher

SITE = "https://bbs.qinghe.example.cn"
NOW = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
CONFIG = source_pb2.HtmlConfig(
    item_selector="li.thread",
    link_selector="a.title",
    title_selector="h1.subject",
    body_selector=".content",
    author_selector=".meta .author",
    time_selector=".meta .time",
    pagination=source_pb2.Pagination(next_selector=".pages a.next", max_pages=5),
)
RULES = HtmlRules(
    **{
        **HtmlRules.from_config(CONFIG).__dict__,
        "comment_selector": ".comments .comment",
        "comment_author_selector": ".user",
        "comment_body_selector": ".body",
        "comment_time_selector": ".time",
    }
)


def _source() -> source_pb2.Source:
    return make_source(common_pb2.SOURCE_KIND_HTML, "qh-bbs", f"{SITE}/bbs/list_1.html", html=CONFIG)


def _page(name: str) -> str:
    text, encoding = decode_body(fixture_bytes(f"html/{name}"), "text/html")
    assert encoding == "gb18030"  # declared gb2312/gbk in <meta>, decoded with the superset
    return text


def test_gbk_article_with_comments() -> None:
    url = f"{SITE}/bbs/article_1.html"
    article, first, second, empty = extract_article(_page("article_1.html"), url, RULES, _source(), collected_at=NOW)
    assert isinstance(article, post_pb2.Post)
    assert article.title == "反映清河县某局长公款吃喝问题"
    # 镕 is outside GB2312: a page labelled gb2312 still decodes it (GB18030 superset).
    assert article.text == "本人实名反映：清河县某局局长王镕多次在高档酒店公款吃喝。\n希望纪委调查处理。"
    assert article.author.name == "清河老百姓" and not article.author.is_media  # a forum
    assert article.created_at.ToDatetime(UTC) == datetime(2024, 5, 1, 1, 12, tzinfo=UTC)
    assert article.comments == 2 and article.url == url and article.platform == "bbs.qinghe.example.cn"
    assert isinstance(first, post_pb2.Post) and isinstance(second, post_pb2.Post)
    assert first.text == "强烈要求彻查！" and first.author.name == "网友甲"
    assert second.author.name == "堃哥" and second.created_at.ToDatetime(UTC) == datetime(2024, 5, 1, 2, 20, tzinfo=UTC)
    assert first.parent_id == article.id == second.root_id
    assert first.native_id == f"{url}#c-101" and second.native_id == f"{url}#102"
    assert len({article.id, first.id, second.id}) == 3
    assert isinstance(empty, post_pb2.Post) is False
    assert empty.reason == post_pb2.DEAD_LETTER_REASON_INVALID and empty.message == "comment has no text"  # type: ignore[union-attr]


def test_ids_are_stable_across_fetches() -> None:
    url = f"{SITE}/bbs/article_1.html"
    once = extract_article(_page("article_1.html"), url, RULES, _source(), collected_at=NOW)
    again = extract_article(_page("article_1.html"), url, RULES, _source(), collected_at=datetime.now(UTC))
    assert [p.id for p in once if isinstance(p, post_pb2.Post)] == [p.id for p in again if isinstance(p, post_pb2.Post)]


def test_broken_html_still_yields_the_text() -> None:
    url = f"{SITE}/bbs/article_2.html"
    (article,) = extract_article(_page("article_2.html"), url, RULES, _source(), collected_at=NOW)
    assert isinstance(article, post_pb2.Post)
    assert article.text == "每逢下雨，小区门口积水没过脚踝\n请有关部门尽快处理"
    assert article.created_at.ToDatetime(UTC) == datetime(2024, 5, 1, 3, 0, tzinfo=UTC)


def test_page_without_configured_body_is_rejected_with_the_page() -> None:
    url = f"{SITE}/bbs/article_4.html"
    (reject,) = extract_article(_page("article_4.html"), url, RULES, _source(), collected_at=NOW)
    assert not isinstance(reject, post_pb2.Post)
    assert reject.reason == post_pb2.DEAD_LETTER_REASON_INVALID
    assert reject.message == "article body '.content' not found" and reject.origin == url
    assert "正文换了位置" in reject.payload.decode()


def test_list_page_links_rejects_and_next() -> None:
    page = parse_list_page(_page("list_1.html"), f"{SITE}/bbs/list_1.html", RULES, _source(), collected_at=NOW)
    assert page.links == [f"{SITE}/bbs/article_1.html", f"{SITE}/bbs/article_2.html"]
    assert page.next_url == f"{SITE}/bbs/list_2.html"
    (reject,) = page.rejects
    assert "list item has no link" in reject.message  # type: ignore[union-attr]


def test_inline_items_and_invalid_selectors() -> None:
    rules = HtmlRules(item_selector=".floor", body_selector=".msg", author_selector=".who", time_selector=".at")
    html = """<div class="floor" id="f1"><b class="who">甲</b><i class="at">3分钟前</i><p class="msg">一楼</p></div>
              <div class="floor"><b class="who">乙</b><p class="msg">二楼</p></div>"""
    page = parse_list_page(html, f"{SITE}/t/9.html", rules, _source(), collected_at=NOW)
    first, second = page.inline
    assert isinstance(first, post_pb2.Post) and isinstance(second, post_pb2.Post)
    assert (first.text, first.author.name, first.native_id) == ("一楼", "甲", f"{SITE}/t/9.html#f1")
    assert first.created_at.ToDatetime(UTC) == datetime(2024, 5, 3, 11, 57, tzinfo=UTC)
    assert second.created_at.ToDatetime(UTC) == NOW  # no time on the page: collected_at
    with pytest.raises(RulesError):
        parse_list_page(html, SITE, HtmlRules(item_selector="div[["), _source(), collected_at=NOW)


def _site(broken: set[str] | None = None) -> tuple[list[str], object]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        seen.append(path)
        if path in (broken or set()):
            return httpx.Response(404)
        if path == "/bbs/list_1.html" and request.headers.get("if-none-match") == '"l1"':
            return httpx.Response(304)
        name = path.rsplit("/", 1)[-1]
        headers = (
            {"Content-Type": "text/html", "ETag": '"l1"'} if name == "list_1.html" else {"Content-Type": "text/html"}
        )
        return httpx.Response(200, content=fixture_bytes(f"html/{name}"), headers=headers)

    return seen, handler


async def test_adapter_walks_pages_follows_links_once_and_keeps_state() -> None:
    seen, handler = _site()
    time = FakeTime()
    collected = Collected()
    async with mock_fetcher(handler, time) as fetcher:  # type: ignore[arg-type]
        adapter = HtmlSource(SourceContext(fetcher, now=time.now), rules={"qh-bbs": RULES})
        outcome = await adapter.collect(_source(), None, collected)
        unchanged = await adapter.collect(_source(), FetchState(etag='"l1"'), Collected())
    assert seen[:7] == [
        "/bbs/list_1.html",
        "/bbs/article_1.html",
        "/bbs/article_2.html",
        "/bbs/list_2.html",
        "/bbs/article_3.html",
        "/bbs/article_4.html",
        "/bbs/list_1.html",
    ]
    titles = [p.title for p in collected.posts if not p.parent_id]
    assert titles == ["反映清河县某局长公款吃喝问题", "小区门口道路积水严重", "陶喆演唱会门票黄牛"]
    assert len([p for p in collected.posts if p.parent_id]) == 2
    assert sorted(r.message for r in collected.rejected) == [
        "article body '.content' not found",
        "comment has no text",
        "list item has no link matching 'a.title'",
    ]
    assert outcome.error is None and outcome.fetch_state == FetchState(etag='"l1"')
    assert outcome.emitted == len(collected.items) == 8
    assert unchanged.not_modified and len(seen) == 7  # 304 on the first list page: nothing else fetched


async def test_adapter_partial_failure_clears_state() -> None:
    _, handler = _site(broken={"/bbs/article_3.html"})
    time = FakeTime()
    collected = Collected()
    async with mock_fetcher(handler, time) as fetcher:  # type: ignore[arg-type]
        adapter = HtmlSource(SourceContext(fetcher, now=time.now), rules={"qh-bbs": RULES})
        outcome = await adapter.collect(_source(), None, collected)
    assert outcome.error is not None and outcome.error.startswith("1 page(s) failed, first: HTTP 404")
    assert outcome.fetch_state == FetchState()
    assert len(collected.posts) == 4  # the rest still arrived
