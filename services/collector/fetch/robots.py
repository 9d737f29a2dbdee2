"""robots.txt, fetched once per host and kept for a while (RFC 9309 semantics for errors).

- 2xx: the rules apply.
- 4xx (no robots.txt): everything is allowed.
- 5xx or unreachable: the site is treated as fully disallowed, but only for a short time, so an outage of the
  site's robots.txt does not stop a source for an hour.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
import urllib.robotparser
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.collector.fetch.limits import Clock

__all__ = ["RobotsCache", "RobotsFile", "robots_url"]

# RFC 9309 asks crawlers to parse at least 500 KiB; anything past that is ignored.
MAX_ROBOTS_BYTES = 512 * 1024
# A Crawl-delay beyond this is read as this (a day between requests: the source is effectively paused, visibly).
MAX_CRAWL_DELAY_S = 86_400.0

# The standard parser checks these values with str.isdigit, which "²" passes and int() then refuses: only lines
# whose numbers are ASCII digits reach it.
_RATE_LINE = re.compile(r"^\s*(crawl-delay|request-rate)\s*:\s*(?P<value>[^#]*)", re.IGNORECASE)
_ASCII_RATE = re.compile(r"[0-9]{1,12}(\s*/\s*[0-9]{1,12})?")


_RULE_LINE = re.compile(r"^\s*(allow|disallow)\s*:\s*(?P<value>[^#]*)", re.IGNORECASE)


def _readable_path(value: str) -> bool:
    """Whether the standard parser can read this Allow/Disallow value (it raised ValueError for "http://[x", which
    then failed every fetch from the site with an unexpected exception)."""
    try:
        urllib.parse.quote(urllib.parse.urlunparse(urllib.parse.urlparse(urllib.parse.unquote(value.strip()))))
    except ValueError:  # also UnicodeEncodeError: a lone surrogate
        return False
    return True


def _sane_lines(text: str) -> list[str]:
    """The lines of a robots.txt, without Crawl-delay / Request-rate lines whose numbers are not plain digits and
    without Allow/Disallow lines whose path the standard parser cannot read."""
    lines = []
    for line in text.splitlines():
        rule = _RULE_LINE.match(line)
        if rule and not _readable_path(rule["value"]):
            continue
        match = _RATE_LINE.match(line)
        if match and not _ASCII_RATE.fullmatch(match["value"].strip()):
            value = match["value"].strip()
            if match[1].lower() == "crawl-delay" and value.isascii() and value.isdigit():
                # A delay too long to be meant literally: the longest we honour, not none at all.
                lines.append(f"Crawl-delay: {int(MAX_CRAWL_DELAY_S)}")
            continue
        lines.append(line)
    return lines


@dataclass(frozen=True)
class RobotsFile:
    """What fetching a robots.txt gave: the status (0 when unreachable) and the text."""

    status: int
    text: str = ""


RobotsLoader = Callable[[str], Awaitable[RobotsFile]]


def robots_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/robots.txt"


@dataclass
class _Entry:
    parser: urllib.robotparser.RobotFileParser
    expires_at: float


def _parser_for(file: RobotsFile) -> tuple[urllib.robotparser.RobotFileParser, bool]:
    """The parser and whether it reflects a definite answer (True) or an error (False)."""
    parser = urllib.robotparser.RobotFileParser()
    if 200 <= file.status < 300:
        parser.parse(_sane_lines(file.text[:MAX_ROBOTS_BYTES]))
        return parser, True
    if 400 <= file.status < 500:
        parser.parse([])
        return parser, True
    parser.parse(["User-agent: *", "Disallow: /"])
    return parser, False


class RobotsCache:
    """Answers "may this user agent fetch this URL?" with one robots.txt request per host and TTL."""

    def __init__(
        self,
        loader: RobotsLoader,
        *,
        user_agent: str,
        clock: Clock,
        ttl_s: float = 3600.0,
        error_ttl_s: float = 300.0,
    ) -> None:
        self._loader = loader
        self._user_agent = user_agent
        self._clock = clock
        self._ttl_s = ttl_s
        self._error_ttl_s = error_ttl_s
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _entry(self, url: str) -> _Entry:
        key = robots_url(url)
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at > self._clock():
            return entry
        # One fetch per host even when many requests to it arrive together.
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at > self._clock():
                return entry
            parser, definite = _parser_for(await self._loader(key))
            ttl = self._ttl_s if definite else self._error_ttl_s
            entry = self._entries[key] = _Entry(parser, self._clock() + ttl)
            return entry

    async def allowed(self, url: str) -> bool:
        """Whether robots.txt of the URL's host lets us fetch it."""
        entry = await self._entry(url)
        try:
            return entry.parser.can_fetch(self._user_agent, url)
        except ValueError:  # a URL the standard parser cannot quote (a lone surrogate) is no URL to fetch
            return False

    async def crawl_delay(self, url: str) -> float:
        """The host's Crawl-delay (or 1/Request-rate) for us in seconds, 0 when it sets none."""
        entry = await self._entry(url)
        delay = entry.parser.crawl_delay(self._user_agent)
        if delay is not None:
            return min(float(delay), MAX_CRAWL_DELAY_S)
        rate = entry.parser.request_rate(self._user_agent)
        if rate is not None and rate.requests > 0:
            return min(float(rate.seconds) / rate.requests, MAX_CRAWL_DELAY_S)
        return 0.0
