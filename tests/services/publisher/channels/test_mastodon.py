"""The Mastodon adapter against a local server that follows the API subset: Idempotency-Key replay, 422, 429 with
Retry-After or X-RateLimit-Reset, 401/403, 5xx, timeouts, a lost answer, retraction and correction by edit."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from services.publisher.channels._http import HttpTimeouts
from services.publisher.channels._marker import marker
from services.publisher.channels.mastodon import MastodonAdapter, MastodonSettings, mastodon_length
from services.publisher.ports import ChannelError, ChannelErrorKind, Delivery
from tests.services.publisher.channels.upstreams import FakeMastodon, Scripted, serving

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
RELEASE = Delivery(
    publication_id="pub-0001",
    channel_id="mastodon-main",
    title="关于网传某局长违纪问题的情况通报",
    body="经核查，网传内容部分属实，已立案审查。",
    url_hint="https://jw.example.gov.cn/releases/pub-0001",
)


@pytest.fixture
async def server() -> AsyncIterator[FakeMastodon]:
    upstream = FakeMastodon()
    async with serving(upstream):
        yield upstream


def _adapter(
    server: FakeMastodon, *, token: str | None = None, read_s: float = 5.0, marker: bool = False
) -> MastodonAdapter:
    settings = MastodonSettings(
        base_url=server.base,
        token=SecretStr(token or server.token),
        timeouts=HttpTimeouts(connect_s=2.0, read_s=read_s),
        marker=marker,
    )
    return MastodonAdapter(settings, clock=lambda: NOW)


@pytest.fixture
async def adapter(server: FakeMastodon) -> AsyncIterator[MastodonAdapter]:
    adapter = _adapter(server)
    yield adapter
    await adapter.aclose()


async def _refused(adapter: MastodonAdapter, delivery: Delivery = RELEASE) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        await adapter.deliver(delivery)
    return caught.value


async def test_delivery_posts_one_status_with_the_publication_id_as_idempotency_key(
    server: FakeMastodon, adapter: MastodonAdapter
) -> None:
    delivered = await adapter.deliver(RELEASE)
    assert list(server.statuses) == [delivered.external_id]
    assert delivered.url == f"{server.base}/@qingfeng/{delivered.external_id}"
    status = server.statuses[delivered.external_id]
    assert status["text"].startswith(RELEASE.title + "\n\n" + RELEASE.body)
    assert status["text"].endswith(str(RELEASE.url_hint)) and status["language"] == "zh"
    _, _, headers = server.requests[0]
    assert headers["Idempotency-Key"] == "pub-0001"
    assert headers["Authorization"] == f"Bearer {server.token}"


async def test_replaying_the_idempotency_key_returns_the_same_status(
    server: FakeMastodon, adapter: MastodonAdapter
) -> None:
    first = await adapter.deliver(RELEASE)
    again = await adapter.deliver(RELEASE)
    assert again == first
    assert len(server.statuses) == 1 and server.count("POST", "/api/v1/statuses") == 2


async def test_a_lost_answer_is_unavailable_and_the_replay_finds_the_status_it_created(
    server: FakeMastodon, adapter: MastodonAdapter
) -> None:
    server.drop_next_write = True
    error = await _refused(adapter)
    assert error.kind is ChannelErrorKind.UNAVAILABLE and error.retryable
    assert len(server.statuses) == 1, "the first attempt landed although its answer was lost"
    # find cannot ask Mastodon by key; the replay with the same key is the safe way to learn the status.
    assert await adapter.find(RELEASE.publication_id) is None
    replay = await adapter.deliver(RELEASE)
    assert list(server.statuses) == [replay.external_id]


async def test_422_is_invalid_and_not_retryable(server: FakeMastodon, adapter: MastodonAdapter) -> None:
    server.script.append(Scripted(422, {"error": "Validation failed: Text character limit of 500 exceeded"}))
    error = await _refused(adapter)
    assert error.kind is ChannelErrorKind.INVALID and not error.retryable
    assert "character limit" in error.message and error.retry_after_s is None


async def test_over_the_limit_is_refused_before_any_request(server: FakeMastodon, adapter: MastodonAdapter) -> None:
    long = Delivery("pub-long", "mastodon-main", "标题", "字" * 497, None)  # 2 + 2 + 497 = 501
    error = await _refused(adapter, long)
    assert error.kind is ChannelErrorKind.INVALID and "500" in error.message
    assert server.requests == []


def test_length_counts_each_link_as_23() -> None:
    assert mastodon_length("通报 https://jw.example.gov.cn/" + "x" * 200) == 3 + 23
    assert mastodon_length("无链接") == 3


async def test_a_long_link_does_not_count_its_full_length(server: FakeMastodon, adapter: MastodonAdapter) -> None:
    server.max_chars = 10_000  # the fake does not weigh links; the adapter must not refuse what Mastodon accepts
    delivery = Delivery("pub-link", "mastodon-main", "标题", "字" * 460, "https://jw.example.gov.cn/" + "r" * 100)
    delivered = await adapter.deliver(delivery)
    assert delivered.external_id in server.statuses


async def test_429_with_retry_after_is_rate_limited_with_the_wait(
    server: FakeMastodon, adapter: MastodonAdapter
) -> None:
    server.script.append(Scripted(429, {"error": "Too many requests"}, {"Retry-After": "17"}))
    error = await _refused(adapter)
    assert error.kind is ChannelErrorKind.RATE_LIMITED and error.retryable
    assert error.retry_after_s == 17.0
    assert server.statuses == {}


async def test_429_with_only_the_rate_limit_reset_waits_until_the_reset(
    server: FakeMastodon, adapter: MastodonAdapter
) -> None:
    reset = (NOW + timedelta(seconds=42)).isoformat().replace("+00:00", "Z")
    server.script.append(Scripted(429, {"error": "Too many requests"}, {"X-RateLimit-Reset": reset}))
    error = await _refused(adapter)
    assert error.kind is ChannelErrorKind.RATE_LIMITED and error.retry_after_s == pytest.approx(42.0)


async def test_429_with_an_http_date_retry_after(server: FakeMastodon, adapter: MastodonAdapter) -> None:
    server.script.append(Scripted(429, {}, {"Retry-After": "Mon, 30 Nov 2026 04:01:30 GMT"}))
    error = await _refused(adapter)
    assert error.retry_after_s == pytest.approx(90.0)


async def test_401_is_unauthorised(server: FakeMastodon) -> None:
    adapter = _adapter(server, token="revoked")
    try:
        error = await _refused(adapter)
    finally:
        await adapter.aclose()
    assert error.kind is ChannelErrorKind.UNAUTHORISED and not error.retryable
    assert "access token is invalid" in error.message
    assert "revoked" not in repr(adapter.settings), "the token never shows in a repr"


async def test_403_is_unauthorised(server: FakeMastodon, adapter: MastodonAdapter) -> None:
    server.script.append(Scripted(403, {"error": "This action is not allowed"}))
    assert (await _refused(adapter)).kind is ChannelErrorKind.UNAUTHORISED


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_unavailable(server: FakeMastodon, adapter: MastodonAdapter, status: int) -> None:
    server.script.append(Scripted(status, {"error": "oops"}, {"Retry-After": "3"}))
    error = await _refused(adapter)
    assert error.kind is ChannelErrorKind.UNAVAILABLE and error.retryable and error.retry_after_s == 3.0


async def test_a_timeout_is_unavailable(server: FakeMastodon) -> None:
    server.delay_s = 1.0
    adapter = _adapter(server, read_s=0.2)
    try:
        error = await _refused(adapter)
    finally:
        await adapter.aclose()
    assert error.kind is ChannelErrorKind.UNAVAILABLE and "timed out" in error.message


async def test_a_refused_connection_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connecting is refused
        adapter = MastodonAdapter(MastodonSettings(base_url=f"http://127.0.0.1:{port}", token=SecretStr("t")))
        try:
            error = await _refused(adapter)
        finally:
            await adapter.aclose()
    assert error.kind is ChannelErrorKind.UNAVAILABLE


async def test_retract_deletes_and_retracting_again_is_not_an_error(
    server: FakeMastodon, adapter: MastodonAdapter
) -> None:
    delivered = await adapter.deliver(RELEASE)
    await adapter.retract(delivered.external_id)
    assert server.statuses == {}
    await adapter.retract(delivered.external_id)
    assert server.count("DELETE", f"/api/v1/statuses/{delivered.external_id}") == 2


async def test_correct_edits_the_status_in_place(server: FakeMastodon, adapter: MastodonAdapter) -> None:
    delivered = await adapter.deliver(RELEASE)
    corrected = await adapter.correct(delivered.external_id, "【更正】经核查，已立案审查的是副局长。")
    assert corrected == delivered
    assert server.statuses[delivered.external_id]["text"] == "【更正】经核查，已立案审查的是副局长。"
    assert server.statuses[delivered.external_id]["edited_at"] is not None


async def test_correcting_a_deleted_status_is_invalid(server: FakeMastodon, adapter: MastodonAdapter) -> None:
    delivered = await adapter.deliver(RELEASE)
    await adapter.retract(delivered.external_id)
    with pytest.raises(ChannelError) as caught:
        await adapter.correct(delivered.external_id, "更正")
    assert caught.value.kind is ChannelErrorKind.INVALID


async def test_an_id_that_is_not_a_status_id_never_reaches_the_path(
    server: FakeMastodon, adapter: MastodonAdapter
) -> None:
    with pytest.raises(ChannelError) as caught:
        await adapter.retract("../accounts/1")
    assert caught.value.kind is ChannelErrorKind.INVALID and server.requests == []


async def test_with_the_marker_find_recognises_a_status_after_the_key_expired(server: FakeMastodon) -> None:
    adapter = _adapter(server, marker=True)
    try:
        server.drop_next_write = True
        with pytest.raises(ChannelError):
            await adapter.deliver(RELEASE)
        [landed] = server.statuses.values()
        assert landed["text"].endswith("\n" + marker(RELEASE.publication_id))
        server.keys.clear()  # an hour later: Mastodon has forgotten the Idempotency-Key
        found = await adapter.find(RELEASE.publication_id)
        assert found is not None and found.external_id == landed["id"]
        assert await adapter.find("pub-never-sent") is None
    finally:
        await adapter.aclose()
    assert server.count("GET", "/api/v1/accounts/verify_credentials") == 1, "the account id is asked once"


async def test_with_the_marker_find_pages_back_with_max_id(server: FakeMastodon) -> None:
    adapter = _adapter(server, marker=True)
    try:
        old = await adapter.deliver(RELEASE)
        for n in range(45):  # pushes it to the second page of 40
            await adapter.deliver(Delivery(f"pub-later-{n}", "mastodon-main", "日常", f"第{n}条"))
        assert await adapter.find(RELEASE.publication_id) == old
    finally:
        await adapter.aclose()
    pages = [h for m, p, h in server.requests if p.endswith(f"/accounts/{server.account_id}/statuses")]
    assert len(pages) == 2


async def test_over_the_limit_counts_the_marker(server: FakeMastodon) -> None:
    adapter = _adapter(server, marker=True)
    fits_without = Delivery("pub-edge", "mastodon-main", "标题", "字" * 490)  # 494 characters, 508 with the marker
    try:
        with pytest.raises(ChannelError) as caught:
            await adapter.deliver(fits_without)
    finally:
        await adapter.aclose()
    assert caught.value.kind is ChannelErrorKind.INVALID and server.requests == []
