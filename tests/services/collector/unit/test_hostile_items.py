"""Hostile items cost only themselves (issue #13): each parser gets 20 items, one of them hostile, and must return
the 19 good posts plus, for the bad one, a post (the value absorbed) or one dead letter with a reason; never an
exception, never a post protobuf cannot serialise, never more than a second.

Property-style without hypothesis: tables of known-bad values, each planted in every field it could arrive in, plus a
seeded generator of a few thousand random hostile values per parser (same seed, same cases: a failure reproduces).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

import httpx
import pytest
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.fetch.robots import RobotsCache, RobotsFile
from services.collector.ports import Rejected
from services.collector.sources import MastodonSource, RssSource, SourceContext, WeiboSource, mastodon, rss, weibo
from services.collector.sources._json import loads
from services.collector.sources.jsonl import parse_jsonl_line
from services.collector.sources.timeparse import parse_time
from tests.services.collector.fakes import Collected, FakeTime, make_source, mock_fetcher

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GOOD, BAD = 20, 7  # items per document, and the index of the hostile one
Item = post_pb2.Post | Rejected

# Values that have broken parsers: superscript digits pass str.isdigit(); 2**63 does not fit int64; a lone
# surrogate cannot be UTF-8; "今天 24:00" and "999999999天前" are times past what datetime holds.
HOSTILE_NUMBERS: list[Any] = ["²", "²³", 2**63, "9" * 30, 10**45, -1, "-1", 1.5, "1e3", True, [], {}, "\ud800", "", " "]
HOSTILE_TIMES: list[Any] = [
    "今天 24:00",
    "昨天 99:99",
    "999999999天前",
    "99999999999999天前",
    "²²²²²²²²²²",
    "9999-12-31T23:59:59-10:00",
    "0001-01-01T00:00:00+08:00",
    "Mon, 99 Foo 99999 99:99:99 +9999",
    "\ud800",
    "",
    12345,
    None,
    [],
]
HOSTILE_STRINGS: list[Any] = ["\ud800", "a\udfffb", "\x00", "‮", "𠀀" * 1000, 7, None, {"a": 1}]
HOSTILE_LINKS = ["http://[x", "http://[::1", "http://h:99999/", "http://h:-1/", "ht!tp://x", "//[x]/", "\ud800"]

_random_pool: list[Any] = [*HOSTILE_NUMBERS, *HOSTILE_TIMES, *HOSTILE_STRINGS, *HOSTILE_LINKS]


def _random_value(rng: random.Random) -> Any:
    """One hostile value: from the pools, a random Unicode string (surrogates included), or a big number."""
    kind = rng.randrange(5)
    if kind == 0:
        return rng.choice(_random_pool)
    if kind == 1:
        return "".join(chr(rng.choice([rng.randrange(0x20, 0x7F), rng.randrange(0xA0, 0x30000)])) for _ in range(8))
    if kind == 2:
        return rng.choice([1, -1]) * rng.randrange(2**62, 2**80)
    if kind == 3:
        return rng.choice(["", "²", "¹", "٣", "߁"]) * rng.randrange(1, 25) + rng.choice(["天前", "分钟前", ""])
    return chr(rng.randrange(0xD800, 0xE000)) + str(rng.random())


def _check(items: Sequence[Item], good_ids: set[str], elapsed_s: float) -> None:
    """The invariant: every good item a post, the bad one a post or one dead letter with a reason, all storable."""
    posts = [i for i in items if isinstance(i, post_pb2.Post)]
    rejects = [i for i in items if isinstance(i, Rejected)]
    assert good_ids <= {p.native_id for p in posts}, "a good neighbour was lost"
    assert len(posts) + len(rejects) == GOOD, (len(posts), [r.message for r in rejects])
    for post in posts:
        post.SerializeToString()  # a lone surrogate or an out-of-range value would fail here, downstream
    for reject in rejects:
        assert reject.message and reject.payload
    assert elapsed_s < 1.0


def _timed(parse: Callable[..., Sequence[Item]], *args: Any) -> tuple[Sequence[Item], float]:
    started = time.perf_counter()
    items = parse(*args)
    return items, time.perf_counter() - started


# -- Weibo -----------------------------------------------------------------------------------------------------------

WEIBO = make_source(common_pb2.SOURCE_KIND_WEIBO_API, "wb", "https://api.weibo.example/2")
WEIBO_FIELDS = {
    "reposts_count": HOSTILE_NUMBERS,
    "comments_count": HOSTILE_NUMBERS,
    "attitudes_count": HOSTILE_NUMBERS,
    "user.followers_count": HOSTILE_NUMBERS,
    "created_at": HOSTILE_TIMES,
    "text": HOSTILE_STRINGS,
    "idstr": HOSTILE_STRINGS,
    "user.screen_name": HOSTILE_STRINGS,
}


def _weibo_status(i: int) -> dict[str, Any]:
    return {
        "idstr": f"w{i}",
        "created_at": "Tue May 31 17:46:55 +0800 2011",
        "text": f"清河县通报第{i}条",
        "user": {"idstr": "u1", "screen_name": "清河发布", "followers_count": 10},
        "reposts_count": 1,
        "comments_count": 2,
        "attitudes_count": 3,
    }


def _plant(status: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for part in path:
        status = status[part]
    status[last] = value


def _weibo_document(field: str, value: Any) -> str:
    statuses = [_weibo_status(i) for i in range(GOOD)]
    _plant(statuses[BAD], field, value)
    # As the wire carries it: json.dumps writes a lone surrogate as the escape "\ud800".
    return json.dumps({"statuses": statuses})


def _weibo_parse(document: str) -> Sequence[Item]:
    return weibo.parse_statuses(loads(document), WEIBO, collected_at=NOW, origin="page")


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in WEIBO_FIELDS.items() for v in values])
def test_weibo_one_hostile_status_costs_only_itself(field: str, value: Any) -> None:
    items, elapsed = _timed(lambda: _weibo_parse(_weibo_document(field, value)))
    _check(items, {f"w{i}" for i in range(GOOD) if i != BAD}, elapsed)


# -- Mastodon --------------------------------------------------------------------------------------------------------

MASTODON = make_source(common_pb2.SOURCE_KIND_MASTODON, "md", "https://social.example")
MASTODON_FIELDS = {
    "reblogs_count": HOSTILE_NUMBERS,
    "replies_count": HOSTILE_NUMBERS,
    "favourites_count": HOSTILE_NUMBERS,
    "account.followers_count": HOSTILE_NUMBERS,
    "created_at": HOSTILE_TIMES,
    "content": HOSTILE_STRINGS,
    "id": HOSTILE_STRINGS,
    "url": HOSTILE_LINKS,
    "account.display_name": HOSTILE_STRINGS,
}


def _mastodon_status(i: int) -> dict[str, Any]:
    return {
        "id": f"m{i}",
        "created_at": "2024-05-01T10:00:00Z",
        "content": f"<p>清河县通报第{i}条</p>",
        "url": f"https://social.example/@a/{i}",
        "account": {"id": "7", "acct": "a", "display_name": "A", "followers_count": 1},
        "reblogs_count": 0,
        "replies_count": 0,
        "favourites_count": 0,
    }


def _mastodon_document(field: str, value: Any) -> str:
    statuses = [_mastodon_status(i) for i in range(GOOD)]
    _plant(statuses[BAD], field, value)
    return json.dumps(statuses)


def _mastodon_parse(document: str) -> Sequence[Item]:
    return mastodon.parse_statuses(loads(document), MASTODON, collected_at=NOW, origin="page")


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in MASTODON_FIELDS.items() for v in values])
def test_mastodon_one_hostile_status_costs_only_itself(field: str, value: Any) -> None:
    items, elapsed = _timed(lambda: _mastodon_parse(_mastodon_document(field, value)))
    _check(items, {f"m{i}" for i in range(GOOD) if i != BAD}, elapsed)


# -- JSONL (files and ImportPosts) -----------------------------------------------------------------------------------

JSONL = make_source(common_pb2.SOURCE_KIND_JSONL_IMPORT, "import")
JSONL_FIELDS = {
    "reposts": HOSTILE_NUMBERS,
    "likes": HOSTILE_NUMBERS,
    "views": HOSTILE_NUMBERS,
    "followers": HOSTILE_NUMBERS,
    "created_at": HOSTILE_TIMES,
    "text": HOSTILE_STRINGS,
    "id": HOSTILE_STRINGS,
    "author_name": HOSTILE_STRINGS,
    "parent_id": HOSTILE_STRINGS,
}


def _jsonl_object(i: int) -> dict[str, Any]:
    return {"id": f"j{i}", "created_at": "2024-05-01 10:00", "text": f"第{i}条", "author": "a", "reposts": 1}


def _jsonl_parse(field: str, value: Any) -> Sequence[Item]:
    objects = [_jsonl_object(i) for i in range(GOOD)]
    objects[BAD][field] = value
    return [
        parse_jsonl_line(json.dumps(obj), JSONL, collected_at=NOW, origin=f"f.jsonl:{n}")
        for n, obj in enumerate(objects, start=1)
    ]


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in JSONL_FIELDS.items() for v in values])
def test_jsonl_one_hostile_line_costs_only_itself(field: str, value: Any) -> None:
    items, elapsed = _timed(lambda: _jsonl_parse(field, value))
    _check(items, {f"j{i}" for i in range(GOOD) if i != BAD}, elapsed)


@pytest.mark.parametrize(
    "line",
    [
        '{"id": "x", "created_at": "2024-05-01", "text": "t", "likes": 1' + "0" * 5000 + "}",  # Python's digit limit
        "[" * 100_000,  # nesting past the parser's recursion limit
        '{"id": "x", "created_at": "2024-05-01", "text": "\\ud800\\udfff\\udc00"}',
        b'{"id": "x", "text": "\xff\xfe"}',
    ],
)
def test_jsonl_lines_the_json_parser_itself_refuses_are_dead_letters(line: str | bytes) -> None:
    item = parse_jsonl_line(line, JSONL, collected_at=NOW, origin="f.jsonl:1")
    if isinstance(item, post_pb2.Post):
        item.SerializeToString()
        assert "\ufffd" in item.text
    else:
        assert item.message and item.reason != post_pb2.DEAD_LETTER_REASON_UNSPECIFIED


def test_a_lone_surrogate_is_kept_as_a_replacement_character() -> None:
    (post,) = [
        i for i in _jsonl_parse("text", "举报\ud800内容") if isinstance(i, post_pb2.Post) and i.native_id == "j7"
    ]
    assert post.text == "举报\ufffd内容"


# -- RSS -------------------------------------------------------------------------------------------------------------

FEED_URL = "https://news.example/feed.xml"
RSS_SOURCE = make_source(common_pb2.SOURCE_KIND_RSS, "rss", FEED_URL)
RSS_FIELDS = {
    "link": HOSTILE_LINKS,
    "pubDate": [t for t in HOSTILE_TIMES if isinstance(t, str)],
    "slash:comments": ["²", "9" * 30, "-1", "1.5"],
    "enclosure": HOSTILE_LINKS,
}


def _rss_item(i: int, field: str = "", value: str = "") -> str:
    parts = {
        "title": f"第{i}条",
        "link": f"https://news.example/{i}",
        "description": "清河县通报",
        "pubDate": "Wed, 01 May 2024 10:00:00 +0800",
        "slash:comments": "3",
    }
    if field and field != "enclosure":
        parts[field] = value
    body = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in parts.items())
    if field == "enclosure":
        body += f'<enclosure url="{escape(value, {chr(34): "&quot;"})}" type="image/png"/>'
    return f"<item>{body}</item>"


def _feed(field: str, value: str) -> str:
    items = "".join(_rss_item(i, field, value) if i == BAD else _rss_item(i) for i in range(GOOD))
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:slash="http://purl.org/rss/1.0/modules/slash/">'
        f"<channel><title>新闻</title>{items}</channel></rss>"
    )


def _rss_parse(document: str) -> Sequence[Item]:
    return rss.read_feed(document, RSS_SOURCE, collected_at=NOW, feed_url=FEED_URL)


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in RSS_FIELDS.items() for v in values if v != "\ud800"]
)
def test_rss_one_hostile_item_costs_only_itself(field: str, value: str) -> None:
    items, elapsed = _timed(lambda: _rss_parse(_feed(field, value)))
    good = {f"https://news.example/{i}" for i in range(GOOD) if i != BAD}
    _check(items, good, elapsed)


def test_rss_item_with_link_http_bracket_x_is_a_dead_letter_naming_it() -> None:
    items = _rss_parse(_feed("link", "http://[x"))
    (bad,) = [i for i in items if isinstance(i, Rejected)]
    assert bad.reason == post_pb2.DEAD_LETTER_REASON_INVALID and "invalid link 'http://[x'" in bad.message
    assert len([i for i in items if isinstance(i, post_pb2.Post)]) == GOOD - 1


# -- times and robots.txt --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [t for t in HOSTILE_TIMES if isinstance(t, str)])
def test_parse_time_never_raises_and_returns_only_storable_times(text: str) -> None:
    value = parse_time(text, now=NOW)
    if value is not None:
        post_pb2.Post().created_at.FromDatetime(value.astimezone(UTC))


@pytest.mark.parametrize(
    ("robots", "delay"),
    [
        ("Crawl-delay: ²", 0.0),
        ("Crawl-delay: ²³", 0.0),
        ("Request-rate: ²/5", 0.0),
        ("Request-rate: 1/²", 0.0),
        ("Crawl-delay: " + "9" * 5000, 86_400.0),
        ("Crawl-delay: 4", 4.0),
    ],
)
async def test_robots_txt_with_odd_rates_still_applies_its_rules(robots: str, delay: float) -> None:
    async def load(url: str) -> RobotsFile:
        return RobotsFile(200, f"User-agent: *\n{robots}\nDisallow: /private/\n")

    cache = RobotsCache(load, user_agent="QingfengCollector", clock=lambda: 0.0)
    assert await cache.allowed("https://bbs.example/public/1")
    assert not await cache.allowed("https://bbs.example/private/1")
    assert await cache.crawl_delay("https://bbs.example/public/1") == delay


# -- generated cases -------------------------------------------------------------------------------------------------

GENERATED = 1500


@pytest.mark.parametrize("parser", ["weibo", "mastodon", "jsonl", "rss", "time"])
def test_generated_hostile_values(parser: str) -> None:
    rng = random.Random(f"issue-13-{parser}")
    slowest = 0.0
    for _ in range(GENERATED):
        value = _random_value(rng)
        if parser == "weibo":
            field = rng.choice(list(WEIBO_FIELDS))
            items, elapsed = _timed(_weibo_parse, _weibo_document(field, value))
            _check(items, {f"w{i}" for i in range(GOOD) if i != BAD}, elapsed)
        elif parser == "mastodon":
            field = rng.choice(list(MASTODON_FIELDS))
            items, elapsed = _timed(_mastodon_parse, _mastodon_document(field, value))
            _check(items, {f"m{i}" for i in range(GOOD) if i != BAD}, elapsed)
        elif parser == "jsonl":
            field = rng.choice(list(JSONL_FIELDS))
            items, elapsed = _timed(_jsonl_parse, field, value)
            _check(items, {f"j{i}" for i in range(GOOD) if i != BAD}, elapsed)
        elif parser == "rss":
            # XML 1.0 cannot carry surrogates or most control characters at all; those are the XML parser's
            # (whole-document) business, tested with the malformed-feed fixtures.
            text = "".join(c for c in str(value) if not 0xD800 <= ord(c) < 0xE000 and (c >= " " or c in "\t\n"))
            field = rng.choice(list(RSS_FIELDS))
            items, elapsed = _timed(_rss_parse, _feed(field, text))
            _check(items, {f"https://news.example/{i}" for i in range(GOOD) if i != BAD}, elapsed)
        else:
            started = time.perf_counter()
            parsed = parse_time(str(value), now=NOW)
            elapsed = time.perf_counter() - started
            if parsed is not None:
                post_pb2.Post().created_at.FromDatetime(parsed.astimezone(UTC))
        slowest = max(slowest, elapsed)
    assert slowest < 1.0


# -- through the adapters: the feed, the timeline and the API page go on -----------------------------------------------


async def test_rss_feed_with_one_bad_item_among_20_yields_the_19_good_ones() -> None:
    feed = _feed("link", "http://[x")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/robots.txt":
            return httpx.Response(200, text="User-agent: *\nCrawl-delay: ²\nDisallow: /private/\n")
        return httpx.Response(200, text=feed, headers={"content-type": "application/rss+xml; charset=utf-8"})

    collected = Collected()
    async with mock_fetcher(handler, FakeTime()) as fetcher:
        outcome = await RssSource(SourceContext(fetcher, now=lambda: NOW)).collect(RSS_SOURCE, None, collected)
    assert outcome.error is None and outcome.emitted == GOOD
    assert len(collected.posts) == GOOD - 1 and len(collected.rejected) == 1


@pytest.mark.parametrize("kind", ["mastodon", "weibo"])
async def test_api_page_with_one_hostile_status_yields_the_others(kind: str) -> None:
    if kind == "mastodon":
        body = _mastodon_document("favourites_count", 2**63)
        source = make_source(
            common_pb2.SOURCE_KIND_MASTODON, "md", "https://social.example",
            mastodon=source_pb2.MastodonConfig(hashtags=["x"]), max_attempts=1,
        )  # fmt: skip
    else:
        body = _weibo_document("created_at", "今天 24:00")
        source = make_source(
            common_pb2.SOURCE_KIND_WEIBO_API, "wb", "https://api.weibo.example/2",
            weibo_api=source_pb2.WeiboApiConfig(keywords=["x"]), max_attempts=1,
        )  # fmt: skip
    collected = Collected()
    async with mock_fetcher(lambda r: httpx.Response(200, text=body), FakeTime()) as fetcher:
        context = SourceContext(fetcher, now=lambda: NOW)
        adapter = MastodonSource(context) if kind == "mastodon" else WeiboSource(context)
        outcome = await adapter.collect(source, None, collected)
    assert outcome.error is None
    assert len(collected.posts) == GOOD - 1
    (bad,) = collected.rejected
    assert bad.reason == post_pb2.DEAD_LETTER_REASON_INVALID


# -- ImportPosts' Post messages: protobuf timestamps out of range --------------------------------------------------


@pytest.mark.parametrize(
    ("field", "seconds", "nanos"),
    [
        ("created_at", 2**62, 0),
        ("created_at", -(2**62), 0),
        ("created_at", 253_402_300_800, 0),  # 10000-01-01
        ("created_at", -62_135_596_801, 0),  # before year 1
        ("created_at", 1_700_000_000, -1),
        ("created_at", 1_700_000_000, 1_000_000_000),
        ("collected_at", 2**62, 0),
    ],
)
async def test_a_post_with_an_invalid_timestamp_is_rejected_alone(field: str, seconds: int, nanos: int) -> None:
    from tests.services.collector.fakes import FakeProducer
    from tests.services.collector.harness import pipeline_over

    bad = post_pb2.Post(id="import:x:1", source_id="import", text="坏时间")
    getattr(bad, field).seconds = seconds
    getattr(bad, field).nanos = nanos
    good = post_pb2.Post(id="import:x:2", source_id="import", text="好帖子")
    report = await pipeline_over(FakeProducer()).ingest([bad, good])
    first, second = report.results
    assert first.rejected is not None and f"{field} is not a valid time" in first.rejected.message
    assert second.post is not None and second.rejected is None
