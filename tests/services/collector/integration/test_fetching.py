"""The fetching side against a real HTTP server on loopback: conditional GET, 429 + Retry-After, robots.txt, a GBK
forum, a malformed feed, an oversized body, and the scheduler recording it all. Needs no stack, so not marked
integration; waits go through an injected sleep, so nothing here really waits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from google.protobuf.duration_pb2 import Duration
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.fetch import AddressPolicy, Fetcher, FetcherConfig
from services.collector.scheduler import Scheduler, SchedulerConfig
from services.collector.sources import HtmlRules, HtmlSource, RssSource, SourceContext, build_adapters
from tests.services.collector.fakes import Collected, FakeIngest, FakeSourceStore, FakeTime, fixture_bytes, make_source

ROBOTS = "User-agent: *\nDisallow: /private/\n"
FEED_ETAG = '"rss-v1"'
LIMIT = 256 * 1024
BBS_RULES = HtmlRules(
    item_selector="li.thread",
    link_selector="a.title",
    title_selector="h1.subject",
    body_selector=".content",
    author_selector=".meta .author",
    time_selector=".meta .time",
    next_selector=".pages a.next",
    max_pages=5,
    comment_selector=".comments .comment",
    comment_author_selector=".user",
    comment_body_selector=".body",
    comment_time_selector=".time",
)


@dataclass
class Site:
    base: str
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    limited_calls: int = 0

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


def _app(site: Site) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        site.requests.append((request.path, dict(request.headers)))
        return await handler(request)

    async def robots(request: web.Request) -> web.Response:
        return web.Response(text=ROBOTS)

    async def feed(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == FEED_ETAG:
            return web.Response(status=304, headers={"ETag": FEED_ETAG})
        headers = {"ETag": FEED_ETAG, "Last-Modified": "Wed, 01 May 2024 10:00:00 GMT"}
        return web.Response(body=fixture_bytes("feeds/rss2.xml"), content_type="application/rss+xml", headers=headers)

    async def limited(request: web.Request) -> web.Response:
        site.limited_calls += 1
        if site.limited_calls == 1:
            return web.Response(status=429, headers={"Retry-After": "1"}, text="slow down")
        return web.Response(body=fixture_bytes("feeds/atom.xml"), content_type="application/atom+xml")

    async def bbs(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        # No charset in the header: the pages declare gb2312/gbk in <meta> only.
        return web.Response(body=fixture_bytes(f"html/{name}"), headers={"Content-Type": "text/html"})

    async def broken(request: web.Request) -> web.Response:
        return web.Response(body=fixture_bytes("feeds/malformed.xml"), content_type="application/rss+xml")

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        response.enable_chunked_encoding()  # no Content-Length: the limit must be enforced while streaming
        await response.prepare(request)
        try:
            for _ in range(64):
                await response.write(b"<rss>" + b"x" * 16 * 1024)
        except (ConnectionResetError, ConnectionError):
            pass  # the client hung up past its limit, as it should
        return response

    async def down(request: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application(middlewares=[record])
    app.router.add_get("/robots.txt", robots)
    app.router.add_get("/feed.xml", feed)
    app.router.add_get("/private/feed.xml", feed)
    app.router.add_get("/limited.xml", limited)
    app.router.add_get("/bbs/{name}", bbs)
    app.router.add_get("/broken.xml", broken)
    app.router.add_get("/huge.xml", huge)
    app.router.add_get("/down.xml", down)
    return app


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    site = Site(base="")
    runner = web.AppRunner(_app(site), access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    host, port = runner.addresses[0][:2]
    site.base = f"http://{host}:{port}"
    try:
        yield site
    finally:
        await runner.cleanup()


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def fetcher(time: FakeTime) -> AsyncIterator[Fetcher]:
    config = FetcherConfig(
        max_body_bytes=LIMIT,
        default_min_interval_s=0.0,
        connect_timeout_s=2,
        read_timeout_s=5,
        # The test site is on loopback, which production refuses: allowlisted here, explicitly.
        address_policy=AddressPolicy.parse(["127.0.0.1"]),
    )
    async with Fetcher(config, clock=time.clock, sleep=time.sleep, now=time.now, random_fn=lambda: 1.0) as fetcher:
        yield fetcher


def _rss(site: Site, path: str, **fields: object) -> source_pb2.Source:
    return make_source(common_pb2.SOURCE_KIND_RSS, path.strip("/").replace("/", "-"), site.base + path, **fields)


async def test_etag_then_304_yields_nothing(site: Site, fetcher: Fetcher, time: FakeTime) -> None:
    adapter = RssSource(SourceContext(fetcher, now=time.now))
    first, second = Collected(), Collected()
    outcome = await adapter.collect(_rss(site, "/feed.xml"), None, first)
    again = await adapter.collect(_rss(site, "/feed.xml"), outcome.fetch_state, second)
    assert len(first.posts) == 2 and outcome.fetch_state is not None and outcome.fetch_state.etag == FEED_ETAG
    assert outcome.fetch_state.last_modified == "Wed, 01 May 2024 10:00:00 GMT"
    assert again.not_modified and again.error is None and second.items == []
    (_, headers), (_, conditional) = site.requests
    assert "If-None-Match" not in headers and conditional["If-None-Match"] == FEED_ETAG
    assert conditional["User-Agent"].startswith("QingfengCollector/")


async def test_429_is_retried_after_retry_after(site: Site, fetcher: Fetcher, time: FakeTime) -> None:
    collected = Collected()
    outcome = await RssSource(SourceContext(fetcher, now=time.now)).collect(_rss(site, "/limited.xml"), None, collected)
    assert outcome.error is None and len(collected.posts) == 2
    assert site.paths() == ["/limited.xml", "/limited.xml"]
    assert time.sleeps == [1.0]  # exactly what Retry-After asked for


async def test_robots_disallow_sends_no_request(site: Site, fetcher: Fetcher, time: FakeTime) -> None:
    collected = Collected()
    source = _rss(site, "/private/feed.xml", respect_robots_txt=True)
    outcome = await RssSource(SourceContext(fetcher, now=time.now)).collect(source, None, collected)
    assert outcome.error == f"disallowed by robots.txt ({site.base}/private/feed.xml)"
    assert collected.items == []
    assert site.paths() == ["/robots.txt"]
    allowed = await RssSource(SourceContext(fetcher, now=time.now)).collect(
        _rss(site, "/feed.xml", respect_robots_txt=True), None, Collected()
    )
    assert allowed.error is None and site.paths() == ["/robots.txt", "/feed.xml"]  # robots.txt read once per host


async def test_gbk_forum_with_pagination_and_comments(site: Site, fetcher: Fetcher, time: FakeTime) -> None:
    source = make_source(common_pb2.SOURCE_KIND_HTML, "qh-bbs", f"{site.base}/bbs/list_1.html", respect_robots_txt=True)
    collected = Collected()
    outcome = await HtmlSource(SourceContext(fetcher, now=time.now), rules={"qh-bbs": BBS_RULES}).collect(
        source, None, collected
    )
    assert outcome.error is None
    articles = {p.title: p for p in collected.posts if not p.parent_id}
    assert set(articles) == {"反映清河县某局长公款吃喝问题", "小区门口道路积水严重", "陶喆演唱会门票黄牛"}
    complaint = articles["反映清河县某局长公款吃喝问题"]
    assert complaint.text == "本人实名反映：清河县某局局长王镕多次在高档酒店公款吃喝。\n希望纪委调查处理。"
    assert complaint.author.name == "清河老百姓"
    comments = [p for p in collected.posts if p.parent_id == complaint.id]
    assert [c.text for c in comments] == ["强烈要求彻查！", "我也听说过这件事。"]
    assert [c.author.name for c in comments] == ["网友甲", "堃哥"]
    assert site.paths().count("/bbs/article_1.html") == 1


async def test_malformed_feed_is_rejected_with_reason(site: Site, fetcher: Fetcher, time: FakeTime) -> None:
    collected = Collected()
    outcome = await RssSource(SourceContext(fetcher, now=time.now)).collect(_rss(site, "/broken.xml"), None, collected)
    (reject,) = collected.rejected
    assert reject.reason == post_pb2.DEAD_LETTER_REASON_MALFORMED
    assert reject.message.startswith("malformed feed: mismatched tag")
    assert reject.origin == f"{site.base}/broken.xml" and reject.payload == fixture_bytes("feeds/malformed.xml")
    assert outcome.error == reject.message and outcome.fetch_state is None


async def test_oversized_body_is_rejected_too_large(site: Site, fetcher: Fetcher, time: FakeTime) -> None:
    collected = Collected()
    outcome = await RssSource(SourceContext(fetcher, now=time.now)).collect(_rss(site, "/huge.xml"), None, collected)
    (reject,) = collected.rejected
    assert reject.reason == post_pb2.DEAD_LETTER_REASON_TOO_LARGE
    assert reject.message == f"response larger than {LIMIT} bytes"
    assert reject.payload.startswith(b"<rss>") and len(reject.payload) <= 2048
    assert outcome.error == f"response larger than {LIMIT} bytes ({site.base}/huge.xml)"


async def test_scheduler_records_statuses_and_backs_off(site: Site, fetcher: Fetcher, time: FakeTime) -> None:
    hourly = Duration(seconds=3600)
    store = FakeSourceStore(
        [
            _rss(site, "/feed.xml", schedule_interval=hourly, respect_robots_txt=True),
            _rss(site, "/private/feed.xml", schedule_interval=hourly, respect_robots_txt=True),
            _rss(site, "/down.xml", schedule_interval=hourly, max_attempts=2),
        ]
    )
    ingest = FakeIngest()
    clock = [datetime(2024, 5, 1, 12, 0, tzinfo=UTC)]
    adapters = build_adapters(SourceContext(fetcher, now=time.now))
    scheduler = Scheduler(store, ingest, adapters, SchedulerConfig(max_concurrency=2), now=lambda: clock[0])

    reports = {r.source_id: r for r in await scheduler.run_once()}
    feed, private, down = (store.sources[k].status for k in ("feed.xml", "private-feed.xml", "down.xml"))
    assert reports["feed.xml"].summary.accepted == 2 and reports["feed.xml"].summary.rejected == 2
    assert feed.etag == FEED_ETAG and feed.last_error == "" and feed.items_seen == 4
    assert private.last_error.startswith("disallowed by robots.txt") and private.consecutive_failures == 1
    assert down.last_error.startswith("HTTP 503: gave up after 2 attempt(s)")
    assert reports["down.xml"].next_fetch_at == clock[0] + timedelta(seconds=60)
    assert "/private/feed.xml" not in site.paths()
    assert len(ingest.posts) == 2 and len(ingest.rejected) == 2

    clock[0] += timedelta(hours=1)
    reports = {r.source_id: r for r in await scheduler.run_once()}
    assert reports["feed.xml"].not_modified and feed.items_seen == 4  # 304: nothing new
    assert down.consecutive_failures == 2
    assert reports["down.xml"].next_fetch_at == clock[0] + timedelta(seconds=120)
    assert "/private/feed.xml" not in site.paths()
