"""HTML: any markup becomes text, list pages and articles become posts and dead letters, or the extractor says
``TooDeep`` (nesting that would make parsing slow) or ``RulesError`` (a selector that is not CSS); each within a
second of CPU, deep nesting included; one bad item among 20 on a list page costs only itself."""

from __future__ import annotations

import html
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from qingfeng.v1 import common_pb2, source_pb2

from services.collector.sources.base import post_id
from services.collector.sources.html_extract import HtmlRules, RulesError, extract_article, parse_list_page
from services.collector.sources.text import TooDeep, html_to_text
from tests.property._posts import check_items, posts_of
from tests.property._support import fewer, run
from tests.property.strategies import HOSTILE_STRINGS, NOW, any_text, time_texts

SOURCE = common_pb2.SOURCE_KIND_HTML
SITE = source_pb2.Source(id="bbs", kind=SOURCE, url="https://bbs.example/list")
PAGE = "https://bbs.example/list"

PIECES = (
    "<div>", "</div>", "<div/>", "<DIV\n>", "<p>", "</p>", "<span>", "</span>", "<dl>", "<dt>", "<dd>", "<ul>", "<li>",
    "</ul>", "<table>", "<tr>", "<td>", "</table>", "<svg>", "<path d='1'/>", "</svg>", "<math>", "<mi>",
    "<template>", "</template>", "<script>", "</script>", "<style>", "<!--", "-->", "<a href=\"/t/1\">",
    "<a href='http://[x'>", "</a>", "<b>", "<i>", "<u>", "<br>", "<img src=x>", "<div a=\"<\">", "<select>",
    "<option>", "<textarea>", "<title>", "<frameset>", "<noscript>", "<object>", "<h1>", "<button>", "<form>",
    "<plaintext>", "<table><td>", "<a<a", "<", ">", "&nbsp;", "&#0;", "&#xD800;", "&amp", "正文", " ", "\n",
)  # fmt: skip
_pieces = st.one_of(st.sampled_from(PIECES), st.sampled_from(HOSTILE_STRINGS), any_text)


# Up to 1 MB of markup. Parsing is linear in size once nesting is bounded, but not free: 10 MB of flat markup (the
# fetcher's body limit) takes lexbor about 2.5 s of CPU, which a size limit, not this property, has to bound.
MAX_MARKUP_CHARS = 1_000_000


def _markup(max_repeat: int) -> st.SearchStrategy[str]:
    runs = st.tuples(_pieces, st.one_of(st.just(1), st.integers(1, max_repeat)))
    return st.lists(runs, max_size=6).map(
        lambda parts: "".join(piece * min(count, MAX_MARKUP_CHARS // max(1, len(piece))) for piece, count in parts)
    )


SELECTORS = (
    "", "div", ".post", ".body", "#x", "a", "li > a", "*", "time", "article", "h2", "span.time", "a.next",
    "[[", "div >", ":nth-child(", "a[href", "<", "\x00", "\ud800", "div:has(", "::after", "#", ".", "a,,b",
)  # fmt: skip
_selectors = st.one_of(st.sampled_from(SELECTORS), any_text)
_rules = st.builds(
    HtmlRules,
    item_selector=_selectors,
    link_selector=_selectors,
    title_selector=_selectors,
    body_selector=_selectors,
    author_selector=_selectors,
    time_selector=_selectors,
    time_format=st.sampled_from(["", "%Y-%m-%d %H:%M", "%", "%z"]),
    next_selector=_selectors,
    comment_selector=_selectors,
    comment_body_selector=_selectors,
    comment_time_selector=_selectors,
)
# The page URL is the fetcher's (never empty); hostile ones are what a redirect could name.
_urls = st.one_of(st.just(PAGE), st.sampled_from(["http://[x", "http://h:99999/", "not a url", "\ud800"]))


@given(_markup(300))
@example("<div>" * 40_000 + "x")
@example("<div/>" * 40_000 + "x")
@example('<div a="<">' * 40_000 + "x")
@example("<div></span>" * 40_000 + "x")
@example("<dl><dt>" * 40_000 + "x")
@example("<ul><li>" * 40_000 + "x")
@example("<div>" * 200_000 + "x" + "</div>" * 200_000)
@example("x\ud800y")
def test_any_markup_becomes_text(markup: str) -> None:
    text, _ = run("text.html_to_text", html_to_text, markup)
    assert isinstance(text, str)


@fewer(300)
@given(_markup(100_000))
def test_deep_and_long_markup_becomes_text_within_a_second(markup: str) -> None:
    text, _ = run("text.html_to_text (deep)", html_to_text, markup)
    assert isinstance(text, str)


@fewer(2_000)  # the HTML parser's main property is the one above; this one adds the selectors around it
@given(_markup(200), _rules, _urls)
@example("<div class=post><span class=time>今天 24:00</span>x</div>", HtmlRules(".post", time_selector=".time"), PAGE)
@example("<div class=post><a href='http://[x'>t</a></div>", HtmlRules(".post", link_selector="a"), PAGE)
@example("<div>" * 40_000, HtmlRules("div"), PAGE)
@example("<p>x</p>", HtmlRules("[["), PAGE)
@example("²", HtmlRules("*"), "\ud800")  # a page URL that is not valid Unicode: the post's url and id still build
def test_any_page_is_posts_and_dead_letters_or_a_page_error(markup: str, rules: HtmlRules, url: str) -> None:
    page, _ = run(
        "html_extract.parse_list_page",
        parse_list_page,
        markup,
        url,
        rules,
        SITE,
        collected_at=NOW,
        errors=(RulesError, TooDeep),
    )
    if page is not None:
        check_items([*page.inline, *page.rejects])
        assert all(isinstance(link, str) and link for link in page.links)
    items, _ = run(
        "html_extract.extract_article",
        extract_article,
        markup,
        url,
        rules,
        SITE,
        collected_at=NOW,
        errors=(RulesError, TooDeep),
    )
    if items is not None:
        check_items(items)


def good_floor(i: int, **parts: Any) -> str:
    fields = {
        "id": f"good-{i}",
        "title": f"标题{i}",
        "body": f"正文{i}",
        "time": "2024-05-01 12:00",
        "author": "网友",
        **parts,
    }
    return (
        f'<div class="post" id="{fields["id"]}"><h2>{fields["title"]}</h2><div class="body">{fields["body"]}</div>'
        f'<span class="time">{fields["time"]}</span><span class="author">{fields["author"]}</span></div>'
    )


FLOOR_RULES = HtmlRules(".post", title_selector="h2", body_selector=".body", time_selector=".time",
                        author_selector=".author")  # fmt: skip
# What a forum renders from a hostile post: its text escaped, parts missing, or nesting that closes again. (Markup left
# open, like an unclosed <template> or <textarea>, takes the rest of the page with it in any HTML parser, a browser's
# too; that is the page's problem, which the properties above cover.)
_floor_values = st.one_of(
    st.one_of(time_texts, any_text).map(html.escape),
    st.just(""),
    st.integers(1, 2_000).map(lambda n: "<div>" * n + "深" + "</div>" * n),
)
_bad_floors = st.builds(
    lambda changes: good_floor(99, **dict(changes)),
    st.lists(st.tuples(st.sampled_from(["id", "title", "body", "time", "author"]), _floor_values), max_size=3),
)


@fewer(1_000)
@given(st.integers(0, 19), _bad_floors)
@example(3, good_floor(99, time="今天 24:00"))
@example(0, good_floor(99, body=""))
@example(19, good_floor(99, body="<div>" * 3_000))
def test_one_bad_floor_among_20_costs_only_itself(bad_at: int, bad: str) -> None:
    floors = [good_floor(i) for i in range(20)]
    floors[bad_at] = bad
    page, _ = run(
        "html_extract.parse_list_page", parse_list_page, "".join(floors), PAGE, FLOOR_RULES, SITE, collected_at=NOW
    )
    assert page is not None
    posts = posts_of(check_items(page.inline))
    for i in range(20):
        if i != bad_at:
            post = posts[post_id(SOURCE, "bbs", f"{PAGE}#good-{i}")]
            assert (post.title, post.text) == (f"标题{i}", f"正文{i}")
