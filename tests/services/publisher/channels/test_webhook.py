"""The signed webhook against a local receiver that verifies as documented and deduplicates on Idempotency-Key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from services.publisher.channels._http import HttpTimeouts
from services.publisher.channels.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookAdapter,
    WebhookSettings,
    sign,
    verify_signature,
)
from services.publisher.ports import ChannelError, ChannelErrorKind, Delivery
from tests.services.publisher.channels.upstreams import Scripted, WebhookReceiver, serving

SECRET = "s3cret-shared-with-the-receiver-0123456789"
RELEASE = Delivery("pub-0007", "partner-webhook", "处理结果", "对某局长给予撤职处分。", "https://jw.example/r/7")


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    upstream = WebhookReceiver(secret=SECRET.encode())
    async with serving(upstream):
        yield upstream


def _adapter(receiver: WebhookReceiver, secret: str = SECRET, clock: datetime | None = None) -> WebhookAdapter:
    settings = WebhookSettings(
        url=f"{receiver.base}/hooks/qingfeng",
        secret=SecretStr(secret),
        timeouts=HttpTimeouts(connect_s=2.0, read_s=2.0),
    )
    return WebhookAdapter(settings, clock=lambda: clock or datetime.now(UTC))


@pytest.fixture
async def adapter(receiver: WebhookReceiver) -> AsyncIterator[WebhookAdapter]:
    adapter = _adapter(receiver)
    yield adapter
    await adapter.aclose()


async def test_the_receiver_verifies_the_signature_and_gets_the_release(
    receiver: WebhookReceiver, adapter: WebhookAdapter
) -> None:
    delivered = await adapter.deliver(RELEASE)
    assert receiver.refused == 0
    payload = receiver.processed["pub-0007"]
    assert payload["type"] == "publication.published" and payload["body"] == RELEASE.body
    assert payload["publication_id"] == "pub-0007" and payload["url"] == RELEASE.url_hint
    assert delivered.external_id == "rx-pub-0007" and delivered.url == f"{receiver.base}/items/pub-0007"
    _, _, headers = receiver.requests[0]
    assert headers[SIGNATURE_HEADER].startswith("sha256=") and headers[TIMESTAMP_HEADER].isdigit()


async def test_two_deliveries_carry_one_key_and_the_receiver_processes_once(
    receiver: WebhookReceiver, adapter: WebhookAdapter
) -> None:
    first = await adapter.deliver(RELEASE)
    again = await adapter.deliver(RELEASE)
    assert first == again and list(receiver.processed) == ["pub-0007"]
    assert [h["Idempotency-Key"] for _, _, h in receiver.requests] == ["pub-0007", "pub-0007"]
    assert await adapter.find("pub-0007") is None  # nothing to ask: re-delivery is the replay


async def test_a_wrong_secret_is_refused_by_the_receiver_and_unauthorised(receiver: WebhookReceiver) -> None:
    adapter = _adapter(receiver, secret="not-the-secret-the-receiver-knows-at-all")
    try:
        with pytest.raises(ChannelError) as caught:
            await adapter.deliver(RELEASE)
    finally:
        await adapter.aclose()
    assert caught.value.kind is ChannelErrorKind.UNAUTHORISED and receiver.refused == 1 and receiver.processed == {}


async def test_a_stale_timestamp_is_refused(receiver: WebhookReceiver) -> None:
    adapter = _adapter(receiver, clock=datetime.now(UTC) - timedelta(minutes=10))
    try:
        with pytest.raises(ChannelError) as caught:
            await adapter.deliver(RELEASE)
    finally:
        await adapter.aclose()
    assert caught.value.kind is ChannelErrorKind.UNAUTHORISED and receiver.refused == 1


def test_verification_rejects_a_changed_body_a_changed_time_and_a_missing_header() -> None:
    body = json.dumps({"type": "publication.published", "body": "原文"}, ensure_ascii=False).encode()
    headers = {TIMESTAMP_HEADER: "1800000000", SIGNATURE_HEADER: sign(SECRET.encode(), "1800000000", body)}
    assert verify_signature(SECRET.encode(), headers, body, now_s=1_800_000_010)
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify_signature(SECRET.encode(), lower, body, now_s=1_800_000_010), "header names are case-insensitive"
    assert not verify_signature(SECRET.encode(), headers, body.replace("原文".encode(), "改文".encode()), now_s=1.8e9)
    moved = {**headers, TIMESTAMP_HEADER: "1800000001"}
    assert not verify_signature(SECRET.encode(), moved, body, now_s=1_800_000_010)
    assert not verify_signature(SECRET.encode(), headers, body, now_s=1_800_000_000 + 301)
    assert not verify_signature(SECRET.encode(), {TIMESTAMP_HEADER: "1800000000"}, body, now_s=1.8e9)
    assert not verify_signature(b"other", headers, body, now_s=1_800_000_010)


@pytest.mark.parametrize(
    ("status", "headers", "kind", "wait"),
    [
        (429, {"Retry-After": "12"}, ChannelErrorKind.RATE_LIMITED, 12.0),
        (500, {}, ChannelErrorKind.UNAVAILABLE, None),
        (503, {"Retry-After": "4"}, ChannelErrorKind.UNAVAILABLE, 4.0),
        (403, {}, ChannelErrorKind.UNAUTHORISED, None),
        (400, {}, ChannelErrorKind.INVALID, None),
        (422, {}, ChannelErrorKind.INVALID, None),
    ],
)
async def test_statuses_map_to_kinds(
    receiver: WebhookReceiver,
    adapter: WebhookAdapter,
    status: int,
    headers: dict[str, str],
    kind: ChannelErrorKind,
    wait: float | None,
) -> None:
    receiver.script.append(Scripted(status, {"error": "scripted"}, headers))
    with pytest.raises(ChannelError) as caught:
        await adapter.deliver(RELEASE)
    assert (caught.value.kind, caught.value.retry_after_s) == (kind, wait)


async def test_retract_and_correct_are_signed_events_with_their_own_keys(
    receiver: WebhookReceiver, adapter: WebhookAdapter
) -> None:
    delivered = await adapter.deliver(RELEASE)
    await adapter.retract(delivered.external_id)
    corrected = await adapter.correct(delivered.external_id, "更正：撤职处分改为降级处分。")
    keys = list(receiver.processed)
    assert keys[0] == "pub-0007" and keys[1] == f"retract:{delivered.external_id}"
    assert keys[2].startswith(f"correct:{delivered.external_id}:")
    assert receiver.processed[keys[2]]["text"] == "更正：撤职处分改为降级处分。"
    assert corrected.external_id == f"rx-{keys[2]}" and receiver.refused == 0


async def test_retracting_what_the_receiver_does_not_know_is_not_an_error(
    receiver: WebhookReceiver, adapter: WebhookAdapter
) -> None:
    receiver.script.append(Scripted(404, {"error": "unknown item"}))
    await adapter.retract("rx-unknown")
    receiver.script.append(Scripted(404, {"error": "no such hook"}))
    with pytest.raises(ChannelError) as caught:
        await adapter.deliver(RELEASE)
    assert caught.value.kind is ChannelErrorKind.INVALID


def test_a_short_secret_is_refused_by_the_settings() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookSettings(url="http://127.0.0.1:1/hook", secret=SecretStr("short"))
