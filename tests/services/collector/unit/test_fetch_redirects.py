"""Redirects as the fetcher follows them itself: hop by hop, bounded, http(s) only, credentials on their origin."""

from __future__ import annotations

import httpx
import pytest

from services.collector.fetch import Credentials, FetchError, Politeness
from tests.services.collector.fakes import FakeTime, mock_fetcher

NO_ROBOTS = Politeness(max_attempts=1, respect_robots=False)
CREDS = Credentials.for_url("https://api.example", {"Authorization": "Bearer t"})


async def test_relative_and_cross_origin_redirects_carry_credentials_only_home() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers.get("authorization")))
        if request.url.path == "/a":
            return httpx.Response(302, headers={"location": "/b"})
        if request.url.path == "/b":
            return httpx.Response(301, headers={"location": "https://cdn.example/c"})
        if request.url.host == "cdn.example":
            return httpx.Response(307, headers={"location": "https://api.example/d"})
        return httpx.Response(200, text="done")

    async with mock_fetcher(handler, FakeTime()) as fetcher:
        response = await fetcher.get("https://api.example/a", credentials=CREDS, politeness=NO_ROBOTS)
    assert response.url == "https://api.example/d" and response.body == b"done"
    assert seen == [
        ("https://api.example/a", "Bearer t"),
        ("https://api.example/b", "Bearer t"),
        ("https://cdn.example/c", None),
        ("https://api.example/d", "Bearer t"),  # back home: the origin decides, not the path taken
    ]


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("file:///etc/passwd", "redirect to a non-http(s) URL 'file:/etc/passwd'"),
        ("gopher://x/", "redirect to a non-http(s) URL 'gopher://x/'"),
    ],
)
async def test_redirects_off_http_are_refused(location: str, message: str) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(302, headers={"location": location})

    async with mock_fetcher(handler, FakeTime()) as fetcher:
        with pytest.raises(FetchError) as refused:
            await fetcher.get("https://a.example/x", politeness=NO_ROBOTS)
    assert refused.value.message == message
    assert calls == ["https://a.example/x"]


async def test_a_redirect_loop_ends() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(302, headers={"location": request.url.path + "x"})

    async with mock_fetcher(handler, FakeTime()) as fetcher:
        with pytest.raises(FetchError, match="more than 5 redirects"):
            await fetcher.get("https://a.example/x", politeness=NO_ROBOTS)
    assert len(calls) == 6


@pytest.mark.parametrize("url", ["http://[x", "http://h:99999/", "ftp://a.example/"])
async def test_bad_urls_are_fetch_errors_not_crashes(url: str) -> None:
    async with mock_fetcher(lambda r: httpx.Response(200), FakeTime()) as fetcher:
        with pytest.raises(FetchError):
            await fetcher.get(url, politeness=NO_ROBOTS)
