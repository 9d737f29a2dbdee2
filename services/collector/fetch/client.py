"""The polite HTTP fetcher every web source goes through.

One ``Fetcher`` per process: it owns the connection pool, the robots.txt cache and the per-host limits, so two sources
on the same site share one budget. A fetch either returns a ``FetchResponse`` (2xx, or 304 for a conditional GET
whose content did not change) or raises a ``FetchError`` that says why in words fit for the source's status.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpcore
import httpx
from qingfeng.v1 import source_pb2

from services.collector.fetch.addresses import AddressPolicy
from services.collector.fetch.charset import decode_body
from services.collector.fetch.errors import (
    Disallowed,
    FetchError,
    HttpStatusError,
    Refused,
    TooLarge,
    TransportFailure,
    Undecodable,
)
from services.collector.fetch.guard import AddressRefused, Resolver, guarded_transport
from services.collector.fetch.limits import Clock, HostLimiter, Sleep
from services.collector.fetch.origin import Credentials
from services.collector.fetch.retry import RETRYABLE_STATUSES, Backoff, parse_retry_after
from services.collector.fetch.robots import MAX_ROBOTS_BYTES, RobotsCache, RobotsFile
from services.collector.ports import FetchState

__all__ = ["DEFAULT_USER_AGENT", "FetchResponse", "Fetcher", "FetcherConfig", "Politeness"]

_log = logging.getLogger(__name__)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})

DEFAULT_USER_AGENT = "QingfengCollector/0.1 (+https://github.com/qingfeng; public-opinion monitoring; polite crawler)"


@dataclass(frozen=True)
class FetcherConfig:
    """Process-wide fetching settings. A source's ``max_requests_per_second`` can only lengthen the per-host interval
    (``default_min_interval_s`` is a floor), and its ``max_attempts`` replaces ``max_attempts`` (see ``Politeness``)."""

    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    max_body_bytes: int = 10 * 1024 * 1024
    max_attempts: int = 3
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    # A Retry-After longer than this ends the fetch: the scheduler's backoff is the right place for long waits.
    max_retry_after_s: float = 120.0
    per_host_concurrency: int = 2
    # The shortest time between two request starts to one host, whatever a source asks for.
    default_min_interval_s: float = 1.0
    robots_ttl_s: float = 3600.0
    robots_error_ttl_s: float = 300.0
    max_redirects: int = 5
    # Which non-public addresses may be fetched (see addresses.py). Empty: the public internet only.
    address_policy: AddressPolicy = field(default_factory=AddressPolicy)


@dataclass(frozen=True)
class Politeness:
    """Per-request settings taken from the source: 0 means "the fetcher's default"."""

    max_attempts: int = 0
    respect_robots: bool = True
    min_interval_s: float = 0.0

    @classmethod
    def for_source(cls, source: source_pb2.Source) -> Politeness:
        rps = source.max_requests_per_second
        return cls(
            max_attempts=max(0, source.max_attempts),
            respect_robots=source.respect_robots_txt,
            min_interval_s=1.0 / rps if rps > 0 else 0.0,
        )


@dataclass(frozen=True)
class FetchResponse:
    """A successful (2xx) or not-modified (304) response with its whole body."""

    url: str
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    attempts: int = 1

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def fetch_state(self) -> FetchState:
        """The validators to send next time (ETag / Last-Modified)."""
        return FetchState(etag=self.headers.get("etag", ""), last_modified=self.headers.get("last-modified", ""))

    def text(self, default_encoding: str = "") -> str:
        """The body as text (see ``decode_body`` for the order of charsets tried); raises ``Undecodable``."""
        try:
            return decode_body(self.body, self.content_type, default_encoding)[0]
        except ValueError as err:
            raise Undecodable(self.url, str(err).split(", ")) from err


@dataclass(frozen=True)
class _Raw:
    url: str
    status: int
    headers: dict[str, str]
    body: bytes


class Fetcher:
    """Conditional GET with robots.txt, per-host limits, retries and a size limit. Use as an async context manager
    or call ``aclose``. ``clock``/``sleep``/``now``/``random`` are injectable so tests need no real waiting.

    Every connection of the default client goes through the SSRF guard (``guard.py``) with ``config.address_policy``;
    ``resolver`` and ``network_backend`` replace the system resolver and the socket layer under it (tests record
    connection attempts there). Redirects are followed here, hop by hop, so credentials stay on their origin."""

    def __init__(
        self,
        config: FetcherConfig | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        random_fn: Callable[[], float] = random.random,
        resolver: Resolver | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config or FetcherConfig()
        cfg = self.config
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(cfg.read_timeout_s, connect=cfg.connect_timeout_s),
            transport=guarded_transport(
                cfg.address_policy, resolver=resolver, inner=network_backend, ssl_context=ssl_context
            ),
            # No proxy from the environment: through a proxy the guard would see the proxy, not the target.
            trust_env=False,
        )
        self._owns_client = client is None
        self._sleep = sleep
        self._now = now
        self._backoff = Backoff(cfg.backoff_base_s, cfg.backoff_max_s, random_fn)
        self._limiter = HostLimiter(concurrency=cfg.per_host_concurrency, clock=clock, sleep=sleep)
        self._robots = RobotsCache(
            self._load_robots,
            user_agent=cfg.user_agent,
            clock=clock,
            ttl_s=cfg.robots_ttl_s,
            error_ttl_s=cfg.robots_error_ttl_s,
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def get(
        self,
        url: str,
        *,
        state: FetchState | None = None,
        politeness: Politeness | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        credentials: Credentials | None = None,
    ) -> FetchResponse:
        """GET ``url`` politely. ``state`` makes it conditional; a 304 comes back as ``not_modified``.

        ``headers`` go with every request of this fetch; ``credentials`` only with those to their own origin
        (not to a redirect elsewhere). A non-public address that is not allowlisted raises ``Refused``.
        """
        try:
            return await self._get(url, state, politeness, headers, params, credentials)
        except AddressRefused as err:
            raise Refused(url, err.reason) from None

    async def _get(
        self,
        url: str,
        state: FetchState | None,
        politeness: Politeness | None,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str | int] | None,
        credentials: Credentials | None,
    ) -> FetchResponse:
        polite = politeness or Politeness()
        try:
            target = str(httpx.URL(url, params=dict(params))) if params else url
            parts = urlsplit(target)
            parts.port  # noqa: B018 - parsing the port refuses "http://h:99999"
        except (ValueError, httpx.InvalidURL) as err:  # "http://[x" from a feed or a page
            raise FetchError(url[:200], f"not a valid URL: {err}") from None
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise FetchError(target, "not an http(s) URL")
        host = parts.netloc.lower()
        if polite.respect_robots:
            if not await self._robots.allowed(target):
                raise Disallowed(target)
            self._limiter.set_crawl_delay(host, await self._robots.crawl_delay(target))
        request_headers = {"User-Agent": self.config.user_agent, **(headers or {})}
        if state is not None and state.etag:
            request_headers["If-None-Match"] = state.etag
        if state is not None and state.last_modified:
            request_headers["If-Modified-Since"] = state.last_modified
        attempts = polite.max_attempts or self.config.max_attempts
        interval = max(polite.min_interval_s, self.config.default_min_interval_s)
        for attempt in range(1, attempts + 1):
            try:
                async with self._limiter.slot(host, interval):
                    raw = await self._send(target, request_headers, self.config.max_body_bytes, credentials=credentials)
            except httpx.TransportError as err:
                detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
                if attempt == attempts:
                    raise TransportFailure(target, detail, attempt) from err
                delay = self._backoff.delay(attempt)
                _log.info("fetch %s failed (%s), retry %s in %.1f s", target, detail, attempt + 1, delay)
            except httpx.HTTPError as err:  # redirect loops, undecodable compression: retrying will not help
                raise FetchError(target, f"{type(err).__name__}: {err}") from err
            else:
                if raw.status == 304 or 200 <= raw.status < 300:
                    return FetchResponse(raw.url, raw.status, raw.body, raw.headers, attempt)
                if raw.status not in RETRYABLE_STATUSES:
                    raise HttpStatusError(target, raw.status)
                if attempt == attempts:
                    raise HttpStatusError(target, raw.status, f"gave up after {attempt} attempt(s)")
                retry_after = parse_retry_after(raw.headers.get("retry-after", ""), self._now())
                if retry_after is not None and retry_after > self.config.max_retry_after_s:
                    raise HttpStatusError(target, raw.status, f"server asks to retry after {retry_after:.0f} s")
                delay = retry_after if retry_after is not None else self._backoff.delay(attempt)
                _log.info("fetch %s got HTTP %s, retry %s in %.1f s", target, raw.status, attempt + 1, delay)
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    async def _send(
        self,
        url: str,
        headers: Mapping[str, str],
        limit: int,
        *,
        truncate: bool = False,
        credentials: Credentials | None = None,
    ) -> _Raw:
        """One request and its redirects; the body is read only for 2xx and only up to ``limit`` bytes."""
        current = httpx.URL(url)
        for _ in range(self.config.max_redirects + 1):
            secret = credentials.for_request(current) if credentials is not None else {}
            raw = await self._send_once(current, {**headers, **secret}, limit, truncate=truncate)
            location = raw.headers.get("location", "")
            if raw.status not in _REDIRECTS or not location:
                return raw
            try:
                current = current.join(location)
            except httpx.InvalidURL as err:
                raise FetchError(url, f"redirect to an invalid URL {location[:200]!r}") from err
            if current.scheme not in {"http", "https"}:
                raise FetchError(url, f"redirect to a non-http(s) URL {str(current)[:200]!r}")
        raise FetchError(url, f"more than {self.config.max_redirects} redirects")

    async def _send_once(self, url: httpx.URL, headers: Mapping[str, str], limit: int, *, truncate: bool) -> _Raw:
        async with self._client.stream("GET", url, headers=headers, follow_redirects=False) as response:
            response_headers = {key: response.headers.get(key, "") for key in response.headers}
            status = response.status_code
            if not 200 <= status < 300:
                return _Raw(str(response.url), status, response_headers, b"")
            declared = response.headers.get("content-length", "")
            if not truncate and declared.isascii() and declared.isdigit() and int(declared) > limit:
                raise TooLarge(str(url), limit)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    if truncate:
                        del body[limit:]
                        break
                    raise TooLarge(str(url), limit, bytes(body[:2048]))
            return _Raw(str(response.url), status, response_headers, bytes(body))

    async def _load_robots(self, url: str) -> RobotsFile:
        host = urlsplit(url).netloc.lower()
        headers = {"User-Agent": self.config.user_agent}
        try:
            async with self._limiter.slot(host, self.config.default_min_interval_s):
                raw = await self._send(url, headers, MAX_ROBOTS_BYTES, truncate=True)
        except httpx.HTTPError as err:
            _log.warning("robots.txt %s unreachable: %s", url, err)
            return RobotsFile(0)
        if not 200 <= raw.status < 300:
            return RobotsFile(raw.status)
        try:
            text = decode_body(raw.body, raw.headers.get("content-type", ""))[0]
        except ValueError:
            return RobotsFile(0)
        return RobotsFile(raw.status, text)
