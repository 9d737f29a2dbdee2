"""The SSRF guard end to end, against real HTTP servers on loopback.

No packet leaves loopback: names resolve through ``NamedResolver`` (a table, no DNS), and the socket layer under the
guard is ``RecordingBackend``, which records every connection attempt and opens only those to 127.0.0.1 (anything
else would fail the test instead of connecting). The loopback servers stand in for sources and are allowlisted by
name only (``source.test``, ``other.test``): 127.0.0.1 itself is not on the allowlist, so a redirect or link to
the loopback address is refused like any other internal address. Needs no stack, so not marked integration.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpcore
import pytest
from aiohttp import web
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.fetch import AddressPolicy, Credentials, Fetcher, FetcherConfig, Politeness, Refused
from services.collector.fetch.addresses import IPAddress
from services.collector.ports import Rejected
from services.collector.sources import MastodonSource, RssSource, SourceContext
from tests.services.collector.fakes import Collected, FakeTime, make_source

NO_ROBOTS = Politeness(max_attempts=1, respect_robots=False)
TOKEN = "s3cret-token"
STATUS = {
    "id": "1",
    "created_at": "2024-05-01T10:00:00Z",
    "content": "<p>清河县通报</p>",
    "url": "https://source.test/@a/1",
    "account": {"id": "7", "acct": "a", "display_name": "A", "followers_count": 1},
}


@dataclass
class RecordingBackend(httpcore.AsyncNetworkBackend):
    """The socket layer: records each connection attempt; connects only to 127.0.0.1, fails the test otherwise."""

    attempts: list[tuple[str, int]] = field(default_factory=list)
    inner: httpcore.AsyncNetworkBackend = field(default_factory=httpcore.AnyIOBackend)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.attempts.append((host, port))
        if host != "127.0.0.1":
            raise AssertionError(f"a connection to {host}:{port} was attempted")
        return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@dataclass
class NamedResolver:
    """DNS from a table; records every name asked. An unknown name is an error, never a real lookup."""

    table: dict[str, list[str]]
    asked: list[str] = field(default_factory=list)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass
        if host not in self.table:
            raise OSError(f"unknown test name {host}")
        return [ipaddress.ip_address(a) for a in self.table[host]]


@dataclass
class Site:
    """One loopback server: ``/to?u=…`` redirects there, ``/ok`` answers, every request is recorded."""

    port: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    statuses: list[object] = field(default_factory=list)
    next_link: str = ""

    def url(self, name: str, path: str) -> str:
        return f"http://{name}:{self.port}{path}"


def _app(site: Site) -> web.Application:
    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        site.requests.append((request.path_qs, dict(request.headers)))
        return await handler(request)

    async def to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["u"])

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def timeline(request: web.Request) -> web.Response:
        headers = {"Link": f'<{site.next_link}>; rel="next"'} if site.next_link else {}
        return web.json_response(site.statuses, headers=headers)

    app = web.Application(middlewares=[record])
    app.router.add_get("/to", to)
    app.router.add_get("/ok", ok)
    app.router.add_get("/api/v1/timelines/tag/{tag}", timeline)
    return app


async def _serve(site: Site) -> AsyncIterator[Site]:
    runner = web.AppRunner(_app(site), access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    site.port = runner.addresses[0][1]
    try:
        yield site
    finally:
        await runner.cleanup()


@pytest.fixture
async def source_site() -> AsyncIterator[Site]:
    async for site in _serve(Site()):
        yield site


@pytest.fixture
async def other_site() -> AsyncIterator[Site]:
    async for site in _serve(Site()):
        yield site


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def resolver() -> NamedResolver:
    return NamedResolver(
        {
            "source.test": ["127.0.0.1"],
            "other.test": ["127.0.0.1"],
            "localhost": ["127.0.0.1"],
            "evil.test": ["10.0.0.1"],
            "metadata.test": ["169.254.169.254"],
            "mixed.test": ["127.0.0.1", "10.0.0.1"],
            "public.test": ["93.184.216.34"],
        }
    )


@pytest.fixture
async def fetcher(backend: RecordingBackend, resolver: NamedResolver) -> AsyncIterator[Fetcher]:
    time = FakeTime()
    config = FetcherConfig(
        default_min_interval_s=0.0,
        connect_timeout_s=2,
        read_timeout_s=5,
        # The loopback servers, by name only: the loopback address itself stays refused.
        address_policy=AddressPolicy.parse(["source.test", "other.test"]),
    )
    async with Fetcher(
        config, clock=time.clock, sleep=time.sleep, now=time.now, resolver=resolver, network_backend=backend
    ) as fetcher:
        yield fetcher


def _only_loopback(backend: RecordingBackend) -> None:
    assert all(host == "127.0.0.1" for host, _ in backend.attempts), backend.attempts


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:{port}/ok", "address 127.0.0.1 is loopback"),
        ("http://localhost:{port}/ok", "address localhost (127.0.0.1) is loopback"),
        ("http://[::1]:{port}/ok", "address ::1 is loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/ok", "address ::ffff:7f00:1 is loopback (embedded"),
        ("http://10.0.0.1/ok", "address 10.0.0.1 is private"),
        ("http://evil.test/ok", "address evil.test (10.0.0.1) is private"),
        ("http://169.254.169.254/latest/meta-data/", "address 169.254.169.254 is link-local (cloud metadata"),
        ("http://metadata.test/latest/meta-data/", "address metadata.test (169.254.169.254) is link-local"),
    ],
)
async def test_internal_addresses_are_refused_before_any_connection(
    url: str, why: str, fetcher: Fetcher, backend: RecordingBackend, source_site: Site
) -> None:
    target = url.format(port=source_site.port)
    with pytest.raises(Refused) as refused:
        await fetcher.get(target, politeness=NO_ROBOTS)
    assert why in refused.value.reason and refused.value.reason.endswith("and not allowlisted")
    assert backend.attempts == [] and source_site.requests == []


async def test_a_name_with_one_internal_address_among_allowed_ones_is_refused(
    backend: RecordingBackend, resolver: NamedResolver, source_site: Site
) -> None:
    config = FetcherConfig(default_min_interval_s=0.0, address_policy=AddressPolicy.parse(["127.0.0.1"]))
    async with Fetcher(config, resolver=resolver, network_backend=backend) as fetcher:
        with pytest.raises(Refused, match=r"address mixed\.test \(10\.0\.0\.1\) is private"):
            await fetcher.get(f"http://mixed.test:{source_site.port}/ok", politeness=NO_ROBOTS)
        # The same allowlist lets the loopback test server itself through.
        assert (await fetcher.get(f"http://127.0.0.1:{source_site.port}/ok", politeness=NO_ROBOTS)).body == b"ok"
    assert backend.attempts == [("127.0.0.1", source_site.port)]


async def test_robots_txt_of_an_internal_host_is_not_fetched_either(
    fetcher: Fetcher, backend: RecordingBackend
) -> None:
    with pytest.raises(Refused, match="metadata"):
        await fetcher.get("http://169.254.169.254/latest/meta-data/", politeness=Politeness(max_attempts=1))
    assert backend.attempts == []


async def test_an_allowlisted_name_connects_to_the_checked_address_with_its_own_host_header(
    fetcher: Fetcher, backend: RecordingBackend, resolver: NamedResolver, source_site: Site
) -> None:
    response = await fetcher.get(source_site.url("source.test", "/ok"), politeness=NO_ROBOTS)
    assert response.status == 200 and response.body == b"ok"
    # Resolved once by the guard; the socket layer got the checked IP literal, so nothing resolved it again.
    assert resolver.asked == ["source.test"]
    assert backend.attempts == [("127.0.0.1", source_site.port)]
    assert source_site.requests[0][1]["Host"] == f"source.test:{source_site.port}"


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("http://127.0.0.1:{other}/ok", "address 127.0.0.1 is loopback"),
        ("http://localhost:{other}/ok", "address localhost (127.0.0.1) is loopback"),
        ("http://10.0.0.1/ok", "address 10.0.0.1 is private"),
        ("http://evil.test/ok", "address evil.test (10.0.0.1) is private"),
        ("http://169.254.169.254/latest/meta-data/iam/", "address 169.254.169.254 is link-local (cloud metadata"),
    ],
)
async def test_redirects_to_internal_addresses_are_refused(
    location: str, why: str, fetcher: Fetcher, backend: RecordingBackend, source_site: Site, other_site: Site
) -> None:
    target = location.format(other=other_site.port)
    start = source_site.url("source.test", f"/to?u={target}")
    with pytest.raises(Refused) as refused:
        await fetcher.get(start, politeness=NO_ROBOTS)
    assert why in refused.value.reason
    # The source was asked (it is allowlisted), the redirect target never was.
    assert [path for path, _ in source_site.requests] == [f"/to?u={target}"]
    assert other_site.requests == []
    assert backend.attempts == [("127.0.0.1", source_site.port)]


async def test_credentials_stay_on_their_origin_across_redirects(
    fetcher: Fetcher, backend: RecordingBackend, source_site: Site, other_site: Site
) -> None:
    credentials = Credentials.for_url(source_site.url("source.test", "/"), {"Authorization": f"Bearer {TOKEN}"})
    # Same origin: the token goes with the redirected request too.
    await fetcher.get(source_site.url("source.test", "/to?u=/ok"), credentials=credentials, politeness=NO_ROBOTS)
    assert [h.get("Authorization") for _, h in source_site.requests] == [f"Bearer {TOKEN}"] * 2
    # Another origin (another allowlisted host, so the request is made): it arrives without the token.
    elsewhere = other_site.url("other.test", "/ok")
    response = await fetcher.get(
        source_site.url("source.test", f"/to?u={elsewhere}"), credentials=credentials, politeness=NO_ROBOTS
    )
    assert response.url == elsewhere and response.body == b"ok"
    assert source_site.requests[-1][1].get("Authorization") == f"Bearer {TOKEN}"
    assert [path for path, _ in other_site.requests] == ["/ok"]
    assert "Authorization" not in other_site.requests[0][1]
    # Same host, other port: another origin too.
    assert Credentials.for_url(source_site.url("source.test", "/"), {}).origin != ("http", "source.test", 80)
    _only_loopback(backend)


def _mastodon(site: Site) -> source_pb2.Source:
    return make_source(
        common_pb2.SOURCE_KIND_MASTODON,
        "md",
        site.url("source.test", ""),
        mastodon=source_pb2.MastodonConfig(hashtags=["清河"], token_secret_name="md-token"),
        max_attempts=1,
    )


@pytest.mark.parametrize(
    "next_url",
    [
        "http://public.test/api/v1/timelines/tag/x?max_id=1",
        "http://169.254.169.254/latest/meta-data/",
        "http://other.test:{other}/api/v1/timelines/tag/x?max_id=1",
        "http://[x",
    ],
)
async def test_mastodon_next_link_to_another_host_is_refused(
    next_url: str,
    fetcher: Fetcher,
    backend: RecordingBackend,
    resolver: NamedResolver,
    source_site: Site,
    other_site: Site,
) -> None:
    source_site.statuses = [STATUS]
    source_site.next_link = next_url.format(other=other_site.port)
    adapter = MastodonSource(SourceContext(fetcher, secret=lambda name: TOKEN if name == "md-token" else None))
    collected = Collected()
    outcome = await adapter.collect(_mastodon(source_site), None, collected)
    # The first page counted; the next link was neither resolved nor connected to, and the token stayed home.
    assert [p.text for p in collected.posts] == ["清河县通报"]
    assert len(source_site.requests) == 1 and source_site.requests[0][1]["Authorization"] == f"Bearer {TOKEN}"
    assert other_site.requests == []
    assert resolver.asked == ["source.test"]
    assert backend.attempts == [("127.0.0.1", source_site.port)]
    assert outcome.error is not None and "next link" in outcome.error
    (dead,) = collected.rejected
    assert isinstance(dead, Rejected) and dead.reason == post_pb2.DEAD_LETTER_REASON_INVALID
    assert "next link" in dead.message


async def test_a_refused_feed_url_is_the_source_error_and_a_dead_letter(
    fetcher: Fetcher, backend: RecordingBackend
) -> None:
    source = make_source(common_pb2.SOURCE_KIND_RSS, "meta", "http://169.254.169.254/latest/meta-data/")
    collected = Collected()
    outcome = await RssSource(SourceContext(fetcher)).collect(source, None, collected)
    assert outcome.error is not None and "refused: address 169.254.169.254 is link-local" in outcome.error
    (dead,) = collected.rejected
    assert dead.reason == post_pb2.DEAD_LETTER_REASON_INVALID and "cloud metadata" in dead.message
    assert dead.payload == b"http://169.254.169.254/latest/meta-data/"
    assert backend.attempts == []


async def test_redirected_feed_to_metadata_is_a_source_error(
    fetcher: Fetcher, backend: RecordingBackend, source_site: Site
) -> None:
    url = source_site.url("source.test", "/to?u=http://169.254.169.254/latest/meta-data/")
    source = make_source(common_pb2.SOURCE_KIND_RSS, "redir", url, respect_robots_txt=False)
    collected = Collected()
    outcome = await RssSource(SourceContext(fetcher)).collect(source, None, collected)
    assert outcome.error is not None and "cloud metadata" in outcome.error
    assert backend.attempts == [("127.0.0.1", source_site.port)]


async def test_the_default_fetcher_refuses_loopback(source_site: Site, backend: RecordingBackend) -> None:
    # Production's configuration: no allowlist. Only the socket layer is the test's, to record attempts.
    async with Fetcher(FetcherConfig(default_min_interval_s=0.0), network_backend=backend) as fetcher:
        with pytest.raises(Refused, match="loopback"):
            await fetcher.get(f"http://127.0.0.1:{source_site.port}/ok", politeness=NO_ROBOTS)
    assert backend.attempts == [] and source_site.requests == []
