"""A signed outgoing webhook: each release, retraction and correction is one JSON POST to the receiver's URL.

What the receiver gets::

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <publication id, or "retract:<id>" / "correct:<id>:<hash>">
    X-Qingfeng-Timestamp: <unix seconds>
    X-Qingfeng-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

    {"type": "publication.published", "publication_id": …, "channel_id": …, "title": …, "body": …, "url": …,
     "sent_at": "2026-11-30T03:00:00+00:00"}
    {"type": "publication.retracted", "external_id": …, "sent_at": …}
    {"type": "publication.corrected", "external_id": …, "text": …, "sent_at": …}

The receiver answers 2xx, optionally with ``{"id": "<its id>", "url": "<public url>"}``; without them the
publication id is the item's id and the release's website URL its URL.

Verifying, for receivers (``verify_signature`` below does all of it):

1. Take the raw request body bytes *before* parsing JSON, and ``X-Qingfeng-Timestamp``.
2. Refuse a timestamp more than 5 minutes from your clock (a captured request cannot be replayed later).
3. Compute HMAC-SHA256 with the shared secret over ``timestamp + "." + body`` and compare its hex digest with the
   header after ``sha256=`` in constant time (``hmac.compare_digest``). Refuse with 401 on any mismatch.
4. Deduplicate on ``Idempotency-Key``: we send the same key for every retry of the same item (a retry carries a new
   timestamp and signature), and answer a key you already processed with the same 2xx as the first time.

Our side: 401/403 are UNAUTHORISED (the receiver refused the signature or secret), 429 RATE_LIMITED (with
``Retry-After``), 5xx, timeouts and broken connections UNAVAILABLE, any other non-2xx INVALID. The receiver's
deduplication is what makes a retry safe, so ``find`` has nothing to ask and answers None; the worker then
re-delivers with the same key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from services.publisher.channels._http import ChannelUrl, HttpTimeouts, new_client, retry_after_s, transport_error
from services.publisher.ports import ChannelError, ChannelErrorKind, Delivered, Delivery

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookAdapter",
    "WebhookSettings",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Qingfeng-Signature"
TIMESTAMP_HEADER = "X-Qingfeng-Timestamp"
_SCHEME = "sha256="


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value for one request."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return _SCHEME + mac.hexdigest()


def verify_signature(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now_s: float | None = None,
    tolerance_s: float = 300.0,
) -> bool:
    """For receivers: True when the request was signed with ``secret`` no more than ``tolerance_s`` from now.

    ``headers`` is looked up case-insensitively; ``body`` must be the raw bytes as received.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    signature = lower.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp.isdigit() or not signature.startswith(_SCHEME):
        return False
    now = time.time() if now_s is None else now_s
    if abs(now - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # The receiver's full URL.
    url: ChannelUrl
    # Shared with the receiver; at least 32 bytes so guessing it is hopeless.
    secret: SecretStr = Field(min_length=32)
    timeouts: HttpTimeouts = HttpTimeouts()


class WebhookAdapter:
    """Delivers releases as signed JSON POSTs to one receiver."""

    kind = "webhook"

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._client = client or new_client("", settings.timeouts)
        self._clock = clock

    async def aclose(self) -> None:
        await self._client.aclose()

    async def deliver(self, delivery: Delivery) -> Delivered:
        payload = {
            "type": "publication.published",
            "publication_id": delivery.publication_id,
            "channel_id": delivery.channel_id,
            "title": delivery.title,
            "body": delivery.body,
            "url": delivery.url_hint,
        }
        answer = await self._send(payload, key=delivery.publication_id, operation="deliver")
        return _delivered(answer, delivery.publication_id, delivery.url_hint or "")

    async def find(self, publication_id: str) -> Delivered | None:
        """Always None: the receiver deduplicates on Idempotency-Key, so re-delivering is the safe replay."""
        return None

    async def retract(self, external_id: str) -> None:
        payload = {"type": "publication.retracted", "external_id": external_id}
        # A receiver that does not know the item (404/410) has nothing left to withdraw.
        await self._send(payload, key=f"retract:{external_id}", operation="retract", gone_ok=True)

    async def correct(self, external_id: str, text: str) -> Delivered:
        payload = {"type": "publication.corrected", "external_id": external_id, "text": text}
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        answer = await self._send(payload, key=f"correct:{external_id}:{digest}", operation="correct")
        return _delivered(answer, external_id, "")

    async def _send(
        self, payload: dict[str, Any], *, key: str, operation: str, gone_ok: bool = False
    ) -> Mapping[str, Any]:
        now = self._clock()
        payload = {**payload, "sent_at": now.isoformat()}
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(now.timestamp()))
        secret = self.settings.secret.get_secret_value().encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        try:
            response = await self._client.post(self.settings.url, content=body, headers=headers)
        except httpx.TransportError as err:
            raise transport_error("webhook", operation, err) from None
        if response.is_success:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            return answer if isinstance(answer, dict) else {}
        if gone_ok and response.status_code in (404, 410):
            return {}
        raise self._error(response, operation)

    def _error(self, response: httpx.Response, operation: str) -> ChannelError:
        code = response.status_code
        message = f"webhook {operation}: HTTP {code} {response.text[:200]}".rstrip()
        if code == 429:
            return ChannelError(ChannelErrorKind.RATE_LIMITED, message, retry_after_s(response.headers, self._clock()))
        if code in (401, 403):
            return ChannelError(ChannelErrorKind.UNAUTHORISED, message)
        if code >= 500 or code == 408:
            return ChannelError(ChannelErrorKind.UNAVAILABLE, message, retry_after_s(response.headers, self._clock()))
        return ChannelError(ChannelErrorKind.INVALID, message)


def _delivered(answer: Mapping[str, Any], default_id: str, default_url: str) -> Delivered:
    external_id = answer.get("id")
    url = answer.get("url")
    return Delivered(
        external_id=str(external_id) if external_id not in (None, "") else default_id,
        url=str(url) if isinstance(url, str) and url else default_url,
    )
