"""The Weibo-style adapter against a local server following the documented subset: no idempotency key upstream, so
an attempt whose answer was lost is found by its marker and never posted twice; error codes map to their kinds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from services.publisher.channels._http import HttpTimeouts
from services.publisher.channels.weibo import MARKER_CHARS, WeiboAdapter, WeiboSettings, marker
from services.publisher.ports import ChannelError, ChannelErrorKind, Delivery
from tests.services.publisher.channels.upstreams import FakeWeibo, Scripted, serving

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
SHARE = "/2/statuses/share.json"
RELEASE = Delivery(
    publication_id="pub-0042",
    channel_id="weibo-official",
    title="辟谣",
    body="网传“某区纪委书记被带走”系谣言，请勿传播。",
    url_hint=None,
)


@pytest.fixture
async def server() -> AsyncIterator[FakeWeibo]:
    upstream = FakeWeibo()
    async with serving(upstream):
        yield upstream


def _adapter(server: FakeWeibo, **overrides: object) -> WeiboAdapter:
    values: dict[str, object] = {
        "base_url": server.base,
        "web_url": "https://weibo.example",
        "token": SecretStr(server.token),
        "timeouts": HttpTimeouts(connect_s=2.0, read_s=2.0),
    }
    values.update(overrides)
    return WeiboAdapter(WeiboSettings.model_validate(values), clock=lambda: NOW)


@pytest.fixture
async def adapter(server: FakeWeibo) -> AsyncIterator[WeiboAdapter]:
    adapter = _adapter(server)
    yield adapter
    await adapter.aclose()


async def _refused(adapter: WeiboAdapter, delivery: Delivery = RELEASE) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        await adapter.deliver(delivery)
    return caught.value


def test_the_marker_is_short_stable_and_different_per_publication() -> None:
    assert marker("pub-0042") == marker("pub-0042")
    assert marker("pub-0042") != marker("pub-0043")
    assert len("\n" + marker("pub-0042")) == MARKER_CHARS
    assert marker("pub-0042").startswith("〔编号 ") and marker("pub-0042").endswith("〕")


async def test_delivery_posts_the_text_with_its_marker(server: FakeWeibo, adapter: WeiboAdapter) -> None:
    delivered = await adapter.deliver(RELEASE)
    [status] = server.statuses
    assert status["text"] == f"【辟谣】{RELEASE.body}\n{marker('pub-0042')}"
    assert delivered.external_id == status["idstr"]
    assert delivered.url == f"https://weibo.example/{server.uid}/{status['idstr']}"


async def test_a_landed_attempt_with_a_lost_answer_is_found_and_not_posted_twice(server: FakeWeibo) -> None:
    # The worker's view: the channel accepts, the connection drops before the answer, the worker asks find().
    adapter = _adapter(server, check_before_post=False)
    try:
        server.drop_next_write = True
        error = await _refused(adapter)
        assert error.kind is ChannelErrorKind.UNAVAILABLE
        assert len(server.statuses) == 1, "the server accepted the status before dropping the connection"
        found = await adapter.find(RELEASE.publication_id)
        assert found is not None and found.external_id == server.statuses[0]["idstr"]
    finally:
        await adapter.aclose()
    assert server.count("POST", SHARE) == 1, "found, so the caller posts nothing more"


async def test_a_retried_delivery_looks_before_it_posts(server: FakeWeibo, adapter: WeiboAdapter) -> None:
    server.drop_next_write = True
    await _refused(adapter)
    retried = await adapter.deliver(RELEASE)
    assert [s["idstr"] for s in server.statuses] == [retried.external_id]
    assert server.count("POST", SHARE) == 1 and server.count("GET", "/2/statuses/user_timeline.json") == 2


async def test_find_answers_none_for_a_publication_that_never_landed(server: FakeWeibo, adapter: WeiboAdapter) -> None:
    server.add(f"别的微博\n{marker('pub-other')}")
    assert await adapter.find(RELEASE.publication_id) is None


async def test_find_reads_back_as_many_pages_as_configured(server: FakeWeibo) -> None:
    server.add(f"【辟谣】旧文\n{marker(RELEASE.publication_id)}")
    for n in range(120):
        server.add(f"日常发布 {n}")
    deep = _adapter(server, page_size=50, find_pages=3)
    shallow = _adapter(server, page_size=50, find_pages=2)
    try:
        assert await deep.find(RELEASE.publication_id) is not None
        # 100 newer statuses hide it from two pages: the documented horizon of find.
        assert await shallow.find(RELEASE.publication_id) is None
    finally:
        await deep.aclose()
        await shallow.aclose()


async def test_repeated_content_finds_the_earlier_status_instead_of_failing(server: FakeWeibo) -> None:
    adapter = _adapter(server, check_before_post=False)
    try:
        first = await adapter.deliver(RELEASE)
        again = await adapter.deliver(RELEASE)  # the platform answers 20019 Repeat content
    finally:
        await adapter.aclose()
    assert again == first and len(server.statuses) == 1


async def test_the_token_never_travels_in_a_url(server: FakeWeibo, adapter: WeiboAdapter) -> None:
    await adapter.deliver(RELEASE)
    await adapter.find("pub-x")
    timeline = [h for m, p, h in server.requests if p.endswith("user_timeline.json")]
    assert timeline and all(h["Authorization"] == f"OAuth2 {server.token}" for h in timeline)
    assert all(server.token not in path for _, path, _ in server.requests)


@pytest.mark.parametrize(
    ("status", "code", "headers", "kind", "wait"),
    [
        (403, 10023, {"Retry-After": "60"}, ChannelErrorKind.RATE_LIMITED, 60.0),
        (403, 10024, {}, ChannelErrorKind.RATE_LIMITED, None),
        (401, 21327, {}, ChannelErrorKind.UNAUTHORISED, None),
        (400, 21332, {}, ChannelErrorKind.UNAUTHORISED, None),
        (400, 20012, {}, ChannelErrorKind.INVALID, None),
        (400, 20021, {}, ChannelErrorKind.INVALID, None),
        (500, 10001, {}, ChannelErrorKind.UNAVAILABLE, None),
        (503, 10002, {"Retry-After": "5"}, ChannelErrorKind.UNAVAILABLE, 5.0),
        # Errors inside a 200 still count; unknown codes fall back to the HTTP status.
        (200, 21301, {}, ChannelErrorKind.UNAUTHORISED, None),
        (429, 99999, {"Retry-After": "9"}, ChannelErrorKind.RATE_LIMITED, 9.0),
        (502, 99999, {}, ChannelErrorKind.UNAVAILABLE, None),
        (400, 99999, {}, ChannelErrorKind.INVALID, None),
    ],
)
async def test_error_codes_map_to_their_kinds(
    server: FakeWeibo,
    status: int,
    code: int,
    headers: dict[str, str],
    kind: ChannelErrorKind,
    wait: float | None,
) -> None:
    adapter = _adapter(server, check_before_post=False)
    server.script.append(Scripted(status, {"error_code": code, "error": "scripted", "request": SHARE}, headers))
    try:
        error = await _refused(adapter)
    finally:
        await adapter.aclose()
    assert (error.kind, error.retry_after_s) == (kind, wait)
    assert f"error {code}" in error.message and server.statuses == []


async def test_a_wrong_token_is_unauthorised(server: FakeWeibo) -> None:
    adapter = _adapter(server, token=SecretStr("expired"))
    try:
        error = await _refused(adapter)
    finally:
        await adapter.aclose()
    assert error.kind is ChannelErrorKind.UNAUTHORISED and not error.retryable


async def test_over_the_limit_with_the_marker_is_refused_before_any_request(server: FakeWeibo) -> None:
    adapter = _adapter(server, max_chars=140)
    body = "字" * (140 - len("【辟谣】") - MARKER_CHARS + 1)
    try:
        error = await _refused(adapter, Delivery("pub-long", "weibo-official", "辟谣", body))
        assert error.kind is ChannelErrorKind.INVALID and server.requests == []
        fits = await adapter.deliver(Delivery("pub-fits", "weibo-official", "辟谣", body[:-1]))
    finally:
        await adapter.aclose()
    assert len(server.statuses[0]["text"]) == 140 and fits.external_id == server.statuses[0]["idstr"]


async def test_a_timeout_is_unavailable(server: FakeWeibo) -> None:
    server.delay_s = 1.0
    adapter = _adapter(server, timeouts=HttpTimeouts(connect_s=1.0, read_s=0.2))
    try:
        error = await _refused(adapter)
    finally:
        await adapter.aclose()
    assert error.kind is ChannelErrorKind.UNAVAILABLE


async def test_retract_destroys_and_retracting_again_is_not_an_error(server: FakeWeibo, adapter: WeiboAdapter) -> None:
    delivered = await adapter.deliver(RELEASE)
    await adapter.retract(delivered.external_id)
    assert server.statuses == []
    await adapter.retract(delivered.external_id)  # answered 20101 Target weibo does not exist
    assert server.count("POST", "/2/statuses/destroy.json") == 2


async def test_a_correction_is_a_new_status_posted_once(server: FakeWeibo, adapter: WeiboAdapter) -> None:
    original = await adapter.deliver(RELEASE)
    server.drop_next_write = True
    with pytest.raises(ChannelError):
        await adapter.correct(original.external_id, "【更正】前文所称“区纪委书记”应为“区纪委副书记”。")
    notice = await adapter.correct(original.external_id, "【更正】前文所称“区纪委书记”应为“区纪委副书记”。")
    assert [s["idstr"] for s in server.statuses] == [original.external_id, notice.external_id]
    assert server.statuses[1]["text"].startswith("【更正】")
