"""A Weibo-style official-account API: one release is one status; there is no idempotency key upstream.

The API subset used (paths relative to ``base_url``; the shape follows Weibo's open API v2):

=========================================  ========================================================================
``POST /2/statuses/share.json``            form ``access_token``, ``status``; 200 with the status
                                           ``{"id", "idstr", "text", "created_at", "user": {"idstr", …}}``.
``GET /2/statuses/user_timeline.json``     ``count``, ``page``; header ``Authorization: OAuth2 <token>``; the
                                           account's own recent statuses, newest first: ``{"statuses": [...]}``.
``POST /2/statuses/destroy.json``          form ``access_token``, ``id``; 200 with the deleted status.
=========================================  ========================================================================

Errors come as JSON ``{"error_code": 21327, "error": "expired_token", "request": "/2/statuses/share.json"}``, with
an HTTP 4xx/5xx status or sometimes 200; the code decides (see ``_KINDS``), the HTTP status only when the code is
unknown.

Exactly once without an upstream key. Every status carries a short marker derived from the publication id, a
trailing line ``〔编号 1A2B3C4D〕``, and ``find`` looks for it in the account's recent timeline. Before posting,
``deliver`` itself asks ``find`` (unless ``check_before_post`` is off), so an attempt whose answer was lost
(timeout, dropped connection, a crash between the channel's acceptance and our database update) is recognised
instead of posted again, whoever retries. The marker counts against ``max_chars``: the publisher's length check
must reserve ``MARKER_CHARS``. Limits: ``find`` reads ``find_pages`` × ``page_size`` recent statuses, so the
worker must not wait longer than that many posts before retrying; and a timeline that lags behind a write makes a
just-landed status invisible for that lag (Weibo's is about a second), so the worker's first retry should wait
at least ``settle_s``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from services.publisher.channels._http import ChannelUrl, HttpTimeouts, new_client, retry_after_s, transport_error
from services.publisher.channels._marker import MARKER_CHARS, marker
from services.publisher.ports import ChannelError, ChannelErrorKind, Delivered, Delivery

__all__ = ["MARKER_CHARS", "WeiboAdapter", "WeiboSettings", "marker"]

# Weibo's documented error codes that matter here; anything else falls back to the HTTP status.
_KINDS: Mapping[int, ChannelErrorKind] = {
    10001: ChannelErrorKind.UNAVAILABLE,  # system error
    10002: ChannelErrorKind.UNAVAILABLE,  # service unavailable
    10003: ChannelErrorKind.UNAVAILABLE,  # remote service error
    10009: ChannelErrorKind.UNAVAILABLE,  # too many pending tasks, system is busy
    10004: ChannelErrorKind.RATE_LIMITED,  # the IP is limited
    10022: ChannelErrorKind.RATE_LIMITED,  # IP requests out of rate limit
    10023: ChannelErrorKind.RATE_LIMITED,  # user requests out of rate limit
    10024: ChannelErrorKind.RATE_LIMITED,  # user requests for this API out of rate limit
    10006: ChannelErrorKind.UNAUTHORISED,  # app key missing
    10014: ChannelErrorKind.UNAUTHORISED,  # app has no permission for this API
    21301: ChannelErrorKind.UNAUTHORISED,  # auth failed
    21314: ChannelErrorKind.UNAUTHORISED,  # token used
    21315: ChannelErrorKind.UNAUTHORISED,  # token expired
    21316: ChannelErrorKind.UNAUTHORISED,  # token revoked
    21317: ChannelErrorKind.UNAUTHORISED,  # token rejected
    21327: ChannelErrorKind.UNAUTHORISED,  # expired token
    21332: ChannelErrorKind.UNAUTHORISED,  # invalid access token
    10008: ChannelErrorKind.INVALID,  # parameter error
    20012: ChannelErrorKind.INVALID,  # text too long
    20018: ChannelErrorKind.INVALID,  # contains an illegal website
    20020: ChannelErrorKind.INVALID,  # contains advertising
    20021: ChannelErrorKind.INVALID,  # content is illegal
}
_REPEATED = frozenset({20017, 20019})  # "repeated content": the platform has this text already
_NOT_FOUND = frozenset({20101})  # target status does not exist


class WeiboSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: ChannelUrl
    # Where a status is seen by the public: <web_url>/<user id>/<status id>.
    web_url: ChannelUrl = "https://weibo.com"
    # The account's bearer token (``token_env`` / ``token_file`` in the options, see ``_secrets.py``).
    token: SecretStr
    # The platform's limit for one status, marker included.
    max_chars: int = Field(default=2000, gt=MARKER_CHARS)
    # How far back ``find`` looks: page_size × find_pages of the account's most recent statuses.
    page_size: int = Field(default=50, ge=1, le=100)
    find_pages: int = Field(default=2, ge=1, le=10)
    # Look for an earlier attempt before every post: one timeline read per delivery buys no duplicate ever.
    check_before_post: bool = True
    # How long the timeline may lag behind a write; the worker's first retry of an unknown outcome waits this long.
    settle_s: float = Field(default=2.0, ge=0)
    timeouts: HttpTimeouts = HttpTimeouts()


def compose(delivery: Delivery) -> str:
    """【Title】body, the link when there is one, and the marker on its own last line."""
    title = delivery.title.strip()
    text = f"【{title}】{delivery.body.strip()}" if title else delivery.body.strip()
    if delivery.url_hint:
        text = f"{text} {delivery.url_hint}"
    return f"{text}\n{marker(delivery.publication_id)}"


class WeiboAdapter:
    """Delivers releases as statuses of one Weibo-style official account, deduplicating on our side."""

    kind = "weibo"

    def __init__(
        self,
        settings: WeiboSettings,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._client = client or new_client(settings.base_url.rstrip("/"), settings.timeouts)
        self._clock = clock

    async def aclose(self) -> None:
        await self._client.aclose()

    async def deliver(self, delivery: Delivery) -> Delivered:
        return await self._post_once(delivery.publication_id, compose(delivery))

    async def find(self, publication_id: str) -> Delivered | None:
        wanted = marker(publication_id)
        for page in range(1, self.settings.find_pages + 1):
            body = await self._call(
                "GET",
                "/2/statuses/user_timeline.json",
                "timeline",
                params={"count": str(self.settings.page_size), "page": str(page)},
            )
            statuses = body.get("statuses")
            if not isinstance(statuses, list):
                raise ChannelError(ChannelErrorKind.UNAVAILABLE, "weibo timeline: answer without statuses")
            for status in statuses:
                if isinstance(status, dict) and wanted in _full_text(status):
                    return self._delivered(status)
            if len(statuses) < self.settings.page_size:
                return None  # the account has no older statuses
        return None

    async def retract(self, external_id: str) -> None:
        try:
            await self._call("POST", "/2/statuses/destroy.json", "destroy", form={"id": external_id})
        except _Gone:
            return  # already deleted

    async def correct(self, external_id: str, text: str) -> Delivered:
        """Weibo cannot edit a status: the correction is a new status (the publisher writes its notice text), keyed
        by the original and the text so a retried correction is found rather than posted twice."""
        key = f"{external_id}#correction#{hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]}"
        return await self._post_once(key, f"{text.strip()}\n{marker(key)}")

    async def _post_once(self, key: str, text: str) -> Delivered:
        if len(text) > self.settings.max_chars:
            raise ChannelError(
                ChannelErrorKind.INVALID,
                f"status is {len(text)} characters with its marker, the platform allows {self.settings.max_chars}",
            )
        if self.settings.check_before_post and (earlier := await self.find(key)) is not None:
            return earlier
        try:
            status = await self._call("POST", "/2/statuses/share.json", "share", form={"status": text})
        except _Repeated:
            # The platform refuses the same text twice: an earlier attempt landed, find it rather than fail.
            if (earlier := await self.find(key)) is not None:
                return earlier
            raise ChannelError(
                ChannelErrorKind.INVALID, "weibo refused repeated content not found in the timeline"
            ) from None
        except _Gone:
            raise ChannelError(ChannelErrorKind.INVALID, "weibo share: target does not exist") from None
        return self._delivered(status)

    async def _call(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Mapping[str, Any]:
        token = self.settings.token.get_secret_value()
        try:
            if method == "GET":
                # In a header, never in the query string that access logs and dead letters keep.
                response = await self._client.get(path, params=params, headers={"Authorization": f"OAuth2 {token}"})
            else:
                response = await self._client.post(path, data={"access_token": token, **(form or {})})
        except httpx.TransportError as err:
            raise transport_error("weibo", operation, err) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "error_code" in body:
            raise self._error(response, operation, body)
        if not response.is_success or not isinstance(body, dict):
            raise self._error(response, operation, {})
        if method == "POST" and not (body.get("idstr") or body.get("id")):
            raise ChannelError(ChannelErrorKind.UNAVAILABLE, f"weibo {operation}: answer without a status id")
        return body

    def _error(self, response: httpx.Response, operation: str, body: Mapping[str, Any]) -> Exception:
        code = _int(body.get("error_code"))
        message = f"weibo {operation}: HTTP {response.status_code}"
        if code is not None:
            message += f" error {code} {str(body.get('error', ''))[:200]}"
        if code in _REPEATED:
            return _Repeated(message)
        if code in _NOT_FOUND or (code is None and response.status_code in (404, 410)):
            return _Gone(message)
        kind = _KINDS.get(code) if code is not None else None
        if kind is None:
            kind = _kind_of_status(response.status_code)
        wait = retry_after_s(response.headers, self._clock()) if kind in _WAITS else None
        return ChannelError(kind, message, wait)

    def _delivered(self, status: Mapping[str, Any]) -> Delivered:
        status_id = str(status.get("idstr") or status.get("id"))
        user = status.get("user")
        user_id = str(user.get("idstr") or user.get("id") or "") if isinstance(user, dict) else ""
        web = self.settings.web_url.rstrip("/")
        return Delivered(external_id=status_id, url=f"{web}/{user_id}/{status_id}" if user_id else f"{web}/{status_id}")


_WAITS = frozenset({ChannelErrorKind.RATE_LIMITED, ChannelErrorKind.UNAVAILABLE})


class _Repeated(Exception):
    """The platform already has this exact text."""


class _Gone(Exception):
    """The status does not exist (any more)."""


def _kind_of_status(status: int) -> ChannelErrorKind:
    if status == 429:
        return ChannelErrorKind.RATE_LIMITED
    if status in (401, 403):
        return ChannelErrorKind.UNAUTHORISED
    if status >= 500 or status == 408 or 200 <= status < 300:
        # A 2xx we cannot read is an unknown outcome: retrying is safe because deliver looks before it posts.
        return ChannelErrorKind.UNAVAILABLE
    return ChannelErrorKind.INVALID


def _full_text(status: Mapping[str, Any]) -> str:
    """The text a timeline shows plus, for a long status the timeline cuts short, its full text when given."""
    text = str(status.get("text") or "")
    long_text = status.get("longText")
    if isinstance(long_text, dict):
        text += str(long_text.get("longTextContent") or "")
    return text


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
