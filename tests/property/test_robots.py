"""robots.txt: any file (any status, any text) answers "allowed?" with a bool and "how long between requests?" with
a finite delay from 0 to a day; nothing in it raises (``Crawl-delay: ²`` did)."""

from __future__ import annotations

import asyncio
import math

from hypothesis import example, given
from hypothesis import strategies as st

from services.collector.fetch.robots import MAX_CRAWL_DELAY_S, RobotsCache, RobotsFile
from tests.property._support import run
from tests.property.strategies import HOSTILE_STRINGS, any_text

AGENT = "QingfengBot/1.0"
_fields = st.sampled_from(
    ["User-agent", "user-AGENT", "Disallow", "Allow", "Crawl-delay", "crawl-delay", "Request-rate", "Sitemap", "", "#"]
)
_values = st.one_of(
    st.sampled_from(["*", "QingfengBot", "/", "/private", "/*?", "$", "1", "0", "1/0", "0/0", "5/²", "²", "٣",
                     "99999999999999999999", "1e9", "-1", "1.5", "1/99999999999999", "10 # comment", "inf", "nan"]),
    st.sampled_from(HOSTILE_STRINGS),
    st.integers().map(str),
    any_text,
)  # fmt: skip
_lines = st.builds(
    lambda field, sep, value: f"{field}{sep}{value}", _fields, st.sampled_from([":", ": ", " : ", ""]), _values
)
_texts = st.one_of(
    st.lists(_lines, max_size=8).map("\n".join),
    st.lists(_lines, max_size=8).map("\r".join),
    any_text,
)
_statuses = st.one_of(st.sampled_from([200, 204, 299, 301, 404, 410, 429, 500, 503, 0]), st.integers(-1000, 1000))
_paths = st.one_of(st.sampled_from(["", "private", "private/x?y=1", "%2Fprivate", "a%ZZ", "[x", "?"]), any_text)


def _ask(file: RobotsFile, path: str) -> tuple[bool, float]:
    async def loader(url: str) -> RobotsFile:
        return file

    async def both() -> tuple[bool, float]:
        cache = RobotsCache(loader, user_agent=AGENT, clock=lambda: 0.0)
        url = f"https://site.example/{path}"
        return await cache.allowed(url), await cache.crawl_delay(url)

    return asyncio.run(both())


@given(_statuses, _texts, _paths)
@example(200, "User-agent: *\nCrawl-delay: ²", "")
@example(200, "User-agent: *\nRequest-rate: 5/²", "")
@example(200, "User-agent: *\nCrawl-delay: 99999999999999999999", "")
@example(200, "User-agent: *\nRequest-rate: 1/0", "")
@example(200, "User-agent: *\nRequest-rate: 0/0", "")
@example(200, "User-agent: *\nDisallow: /\x00", "\ud800")
@example(200, "User-agent:*\nDisallow:http://[x", "")
@example(200, "User-agent:*\nDisallow:\ud800", "")
def test_any_robots_txt_gives_a_bool_and_a_bounded_delay(status: int, text: str, path: str) -> None:
    answer, _ = run("robots.allowed+crawl_delay", _ask, RobotsFile(status, text), path)
    assert answer is not None
    allowed, delay = answer
    assert isinstance(allowed, bool)
    assert isinstance(delay, float) and math.isfinite(delay) and 0.0 <= delay <= MAX_CRAWL_DELAY_S, delay
