"""The polite fetcher against an in-process transport: retries, Retry-After, robots.txt, limits, charsets."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from services.collector.fetch import (
    Disallowed,
    FetcherConfig,
    HttpStatusError,
    Politeness,
    TooLarge,
    TransportFailure,
    Undecodable,
    decode_body,
)
from services.collector.fetch.retry import Backoff, parse_retry_after
from services.collector.ports import FetchState
from tests.services.collector.fakes import FakeTime, mock_fetcher

URL = "https://news.example.cn/feed.xml"
NO_ROBOTS = Politeness(respect_robots=False)


@pytest.mark.parametrize(
    ("body", "content_type", "default", "expected_text", "expected_codec"),
    [
        ("清风".encode("gbk"), "text/html; charset=GBK", "", "清风", "gb18030"),
        (
            '<meta charset="gb2312"><p>王镕</p>'.encode("gbk"),
            "text/html",
            "",
            '<meta charset="gb2312"><p>王镕</p>',
            "gb18030",
        ),
        ('<?xml version="1.0" encoding="GB2312"?><a>清</a>'.encode("gbk"), "", "", None, "gb18030"),
        ("清风".encode(), "text/html", "", "清风", "utf-8"),
        ("清风".encode("gbk"), "text/html", "", "清风", "gb18030"),  # no declaration: UTF-8 fails, GB18030 fits
        ("清风".encode("gbk"), "text/html; charset=utf-8", "", "清风", "gb18030"),  # a wrong header falls through
        ("清风".encode("gbk"), "text/html", "gbk", "清风", "gb18030"),
        (b"\xef\xbb\xbfBOM", "text/html; charset=gbk", "", "BOM", "utf-8-sig"),
        ("清风".encode(), "text/html; charset=no-such-codec", "", "清风", "utf-8"),
    ],
)
def test_decode_body(
    body: bytes, content_type: str, default: str, expected_text: str | None, expected_codec: str
) -> None:
    text, codec = decode_body(body, content_type, default)
    assert codec == expected_codec
    assert text == (expected_text if expected_text is not None else body.decode("gb18030"))


def test_retry_after_seconds_and_dates() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("1", now) == 1.0
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None and parse_retry_after("", now) is None


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    low, high = Backoff(1.0, 10.0, lambda: 0.0), Backoff(1.0, 10.0, lambda: 1.0)
    assert [low.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert [high.delay(n) for n in (1, 2, 3, 10)] == [1.0, 2.0, 4.0, 10.0]


async def test_conditional_headers_user_agent_and_304() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(304)

    async with mock_fetcher(handler, FakeTime()) as fetcher:
        response = await fetcher.get(
            URL, state=FetchState('"e1"', "Wed, 01 May 2024 10:00:00 GMT"), politeness=NO_ROBOTS
        )
    assert response.not_modified and response.body == b""
    (request,) = seen
    assert request.headers["if-none-match"] == '"e1"'
    assert request.headers["if-modified-since"] == "Wed, 01 May 2024 10:00:00 GMT"
    assert request.headers["user-agent"].startswith("QingfengCollector/")


async def test_5xx_and_connect_errors_are_retried_with_backoff() -> None:
    time = FakeTime()
    answers: list[httpx.Response | Exception] = [
        httpx.ConnectError("refused"),
        httpx.Response(503),
        httpx.Response(200, text="ok"),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async with mock_fetcher(handler, time) as fetcher:
        response = await fetcher.get(URL, politeness=NO_ROBOTS)
    assert response.text() == "ok" and response.attempts == 3
    assert time.sleeps == [1.0, 2.0]  # base 1 s doubling (jitter pinned to its maximum)


async def test_429_honours_retry_after_as_http_date_and_gives_up_on_long_waits() -> None:
    time = FakeTime()
    statuses = iter(
        [httpx.Response(429, headers={"Retry-After": "Wed, 01 May 2024 12:00:07 GMT"}), httpx.Response(200)]
    )
    async with mock_fetcher(lambda r: next(statuses), time) as fetcher:
        await fetcher.get(URL, politeness=NO_ROBOTS)
        assert time.sleeps == [7.0]
    async with mock_fetcher(lambda r: httpx.Response(429, headers={"Retry-After": "3600"}), time) as fetcher:
        with pytest.raises(HttpStatusError, match="server asks to retry after 3600 s"):
            await fetcher.get(URL, politeness=NO_ROBOTS)


async def test_exhausted_retries_and_non_retryable_statuses() -> None:
    time = FakeTime()
    calls: list[int] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("refused")

    async with mock_fetcher(refuse, time) as fetcher:
        with pytest.raises(TransportFailure, match="ConnectError: refused after 2 attempt"):
            await fetcher.get(URL, politeness=Politeness(max_attempts=2, respect_robots=False))
    assert len(calls) == 2
    async with mock_fetcher(lambda r: httpx.Response(404), time) as fetcher:
        with pytest.raises(HttpStatusError) as caught:
            await fetcher.get(URL, politeness=NO_ROBOTS)
    assert caught.value.status == 404 and str(caught.value) == f"HTTP 404 ({URL})"


async def test_size_limit_by_header_and_by_stream() -> None:
    config = FetcherConfig(max_body_bytes=1000, default_min_interval_s=0.0)
    big = b"x" * 5000

    async def stream_without_length() -> object:
        for start in range(0, len(big), 500):
            yield big[start : start + 500]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/declared":
            return httpx.Response(200, content=big)
        return httpx.Response(200, content=stream_without_length())  # type: ignore[arg-type]

    async with mock_fetcher(handler, FakeTime(), config) as fetcher:
        with pytest.raises(TooLarge) as declared:
            await fetcher.get("https://a.example/declared", politeness=NO_ROBOTS)
        with pytest.raises(TooLarge) as streamed:
            await fetcher.get("https://a.example/streamed", politeness=NO_ROBOTS)
    assert declared.value.head == b"" and declared.value.message == "response larger than 1000 bytes"
    assert streamed.value.head == b"x" * 1500  # stopped at the first chunk past the limit


async def test_robots_rules_cache_and_crawl_delay() -> None:
    time = FakeTime()
    paths: list[str] = []
    robots = "User-agent: *\nDisallow: /private/\nCrawl-delay: 2\n\nUser-agent: Qingfeng\nDisallow: /no-qingfeng/\n"

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path == "/robots.txt":
            return httpx.Response(200, text=robots)
        return httpx.Response(200, text="ok")

    async with mock_fetcher(handler, time) as fetcher:
        with pytest.raises(Disallowed, match=r"disallowed by robots\.txt"):
            await fetcher.get("https://site.example/no-qingfeng/page")
        # Our own group applies, not "*": /private/ is allowed for us, and there is no crawl delay for us.
        await fetcher.get("https://site.example/private/page")
        await fetcher.get("https://site.example/page")
    assert paths == ["/robots.txt", "/private/page", "/page"]
    assert time.sleeps == []


@pytest.mark.parametrize(("status", "allowed"), [(404, True), (401, True), (500, False), (503, False)])
async def test_robots_errors(status: int, allowed: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status if request.url.path == "/robots.txt" else 200)

    async with mock_fetcher(handler, FakeTime()) as fetcher:
        if allowed:
            assert (await fetcher.get("https://site.example/a")).status == 200
        else:
            with pytest.raises(Disallowed):
                await fetcher.get("https://site.example/a")


async def test_robots_crawl_delay_and_per_host_interval() -> None:
    time = FakeTime()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/robots.txt":
            return httpx.Response(200, text="User-agent: *\nCrawl-delay: 3\n")
        return httpx.Response(200)

    async with mock_fetcher(handler, time) as fetcher:
        for _ in range(3):
            await fetcher.get("https://slow.example/a")
        await fetcher.get("https://other.example/a", politeness=Politeness(respect_robots=False, min_interval_s=0.5))
        await fetcher.get("https://other.example/b", politeness=Politeness(respect_robots=False, min_interval_s=0.5))
    # robots.txt itself, then three pages 3 s apart; the other host has its own budget.
    assert time.sleeps == [3.0, 3.0, 0.5]


async def test_undecodable_body() -> None:
    async with mock_fetcher(lambda r: httpx.Response(200, content=b"\x81"), FakeTime()) as fetcher:
        response = await fetcher.get(URL, politeness=NO_ROBOTS)
    with pytest.raises(Undecodable, match="not text in any of utf-8, gb18030"):
        response.text()


async def test_non_http_urls_are_refused() -> None:
    async with mock_fetcher(lambda r: httpx.Response(200), FakeTime()) as fetcher:
        with pytest.raises(Exception, match="not an http"):
            await fetcher.get("file:///etc/passwd")
