"""Mastodon: one release is one status on the official account.

The API subset used (Mastodon REST API v1, bearer token with the ``write:statuses`` scope):

==========================================  ===================================================================
``POST /api/v1/statuses``                   form ``status``, ``visibility``, ``language``; header
                                            ``Idempotency-Key: <publication_id>``. 200 with the Status.
``PUT /api/v1/statuses/:id``                edit (Mastodon 3.5+): form ``status``; 200 with the edited Status.
``DELETE /api/v1/statuses/:id``             200 with the deleted Status; 404 when it is already gone.
``GET /api/v1/accounts/verify_credentials``  only with ``marker``: the account's id.
``GET /api/v1/accounts/:id/statuses``        only with ``marker``: its statuses, newest first, ``limit``/``max_id``.
==========================================  ===================================================================

(As documented in mastodon/documentation ``content/en/methods/statuses.md`` and ``content/en/api/rate-limits.md``:
keys "are stored for up to 1 hour"; 401 ``{"error": "The access token is invalid"}``; 422 ``{"error": "Validation
failed: …"}``; 404 ``{"error": "Record not found"}``; deletions have their own limit of 30 per 30 minutes.)

Answers: 401 (bad or revoked token) and 403 (token lacks the scope, account suspended) are UNAUTHORISED; 422 (e.g.
"Validation failed: Text character limit of 500 exceeded") and other 4xx are INVALID; 429 is RATE_LIMITED with the
wait from ``Retry-After`` or, as Mastodon's own throttle sends, ``X-RateLimit-Reset`` (an ISO 8601 time); 5xx,
timeouts and broken connections are UNAVAILABLE.

Exactly once. Mastodon keeps an ``Idempotency-Key`` for one hour per account: a second POST with the same key
answers the status the first one created instead of creating another. There is no lookup by idempotency key and
no private field on a status to search for, so by default ``find`` cannot tell from the channel whether an attempt
landed and answers None; the worker then calls ``deliver`` again, and that re-POST with the same key *is* the safe
replay: it returns the status of the attempt that landed, or creates it if none did. That holds while the key is
kept, so the worker must finish retrying an unknown outcome within ``idempotency_window_s`` (one hour).

Beyond the hour (an operator replaying a dead letter the next day), set ``marker: true``: every status then ends
with the same visible marker line as on Weibo (``〔编号 1A2B3C4D〕``), and ``find`` looks for it among the account's
latest ``page_size × find_pages`` statuses (``GET /api/v1/accounts/verify_credentials`` once for the account id,
then ``GET /api/v1/accounts/:id/statuses?limit=&max_id=``, matching the marker in the status ``content``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from services.publisher.channels._http import ChannelUrl, HttpTimeouts, new_client, retry_after_s, transport_error
from services.publisher.channels._marker import marker
from services.publisher.ports import ChannelError, ChannelErrorKind, Delivered, Delivery

__all__ = ["MastodonAdapter", "MastodonSettings", "mastodon_length"]

# Mastodon counts every link as 23 characters whatever its length (StatusLengthValidator).
_URL = re.compile(r"https?://\S+")
_URL_WEIGHT = 23
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class MastodonSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # The instance, e.g. https://mastodon.example; the API paths are appended to it.
    base_url: ChannelUrl
    # The account's bearer token (``token_env`` / ``token_file`` in the options, see ``_secrets.py``).
    token: SecretStr
    # The instance's limit (``configuration.statuses.max_characters`` of /api/v2/instance); 500 by default.
    max_chars: int = Field(default=500, gt=0)
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    language: str | None = "zh"
    # How long the instance keeps an Idempotency-Key (one hour in Mastodon); the worker's retry horizon.
    idempotency_window_s: float = Field(default=3600.0, gt=0)
    # End every status with the publication's marker line so ``find`` can recognise it after the key expired.
    marker: bool = False
    # How far back ``find`` looks when ``marker`` is on (Mastodon pages hold at most 40 statuses).
    page_size: int = Field(default=40, ge=1, le=40)
    find_pages: int = Field(default=3, ge=1, le=10)
    timeouts: HttpTimeouts = HttpTimeouts()


def mastodon_length(text: str) -> int:
    """The length Mastodon checks against ``max_chars``: code points, with each URL counted as 23."""
    urls = _URL.findall(text)
    return len(_URL.sub("", text)) + _URL_WEIGHT * len(urls)


def compose(delivery: Delivery) -> str:
    """Title, blank line, body, and the link to the release on the website when there is one."""
    parts = [delivery.title.strip(), delivery.body.strip()]
    text = "\n\n".join(p for p in parts if p)
    return f"{text}\n{delivery.url_hint}" if delivery.url_hint else text


class MastodonAdapter:
    """Delivers releases as statuses of one Mastodon account."""

    kind = "mastodon"

    def __init__(
        self,
        settings: MastodonSettings,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._client = client or new_client(settings.base_url.rstrip("/"), settings.timeouts)
        self._clock = clock
        self._account: str | None = None

    async def aclose(self) -> None:
        await self._client.aclose()

    async def deliver(self, delivery: Delivery) -> Delivered:
        text = compose(delivery)
        if self.settings.marker:
            text = f"{text}\n{marker(delivery.publication_id)}"
        self._check_length(text)
        data = {"status": text, "visibility": self.settings.visibility}
        if self.settings.language:
            data["language"] = self.settings.language
        # The publication id is stable across attempts and restarts, so a replay within the hour is recognised.
        key = {"Idempotency-Key": delivery.publication_id}
        return self._delivered(_status(await self._call("POST", "/api/v1/statuses", "post", data=data, headers=key)))

    async def find(self, publication_id: str) -> Delivered | None:
        """Without ``marker``, always None: Mastodon cannot be asked by idempotency key (see the module notes), and
        ``deliver`` again with the same publication id is the replay that returns what an earlier attempt created.
        With it, the account's latest statuses carrying the publication's marker."""
        if not self.settings.marker:
            return None
        wanted = marker(publication_id)
        account = await self._account_id()
        params = {"limit": str(self.settings.page_size)}
        for _ in range(self.settings.find_pages):
            page = await self._call("GET", f"/api/v1/accounts/{account}/statuses", "timeline", params=params)
            if not isinstance(page, list):
                raise ChannelError(ChannelErrorKind.UNAVAILABLE, "mastodon timeline: answer is not a list")
            statuses = [s for s in page if isinstance(s, dict) and s.get("id")]
            for status in statuses:
                if wanted in str(status.get("content") or ""):
                    return self._delivered(status)
            if len(page) < self.settings.page_size or not statuses:
                return None  # no older statuses
            params = {**params, "max_id": str(statuses[-1]["id"])}
        return None

    async def retract(self, external_id: str) -> None:
        try:
            # Answers the deleted status (or {} on some forks): either way it is gone.
            await self._call("DELETE", f"/api/v1/statuses/{_path_id(external_id)}", "delete")
        except _Gone:
            return  # already deleted: retracting twice is not an error

    async def correct(self, external_id: str, text: str) -> Delivered:
        self._check_length(text)
        try:
            answer = await self._call("PUT", f"/api/v1/statuses/{_path_id(external_id)}", "edit", data={"status": text})
        except _Gone:
            raise ChannelError(ChannelErrorKind.INVALID, f"status {external_id} no longer exists") from None
        return self._delivered(_status(answer))

    async def _account_id(self) -> str:
        if self._account is None:
            account = await self._call("GET", "/api/v1/accounts/verify_credentials", "verify_credentials")
            if not isinstance(account, dict) or not account.get("id"):
                raise ChannelError(ChannelErrorKind.UNAVAILABLE, "mastodon verify_credentials: answer without an id")
            self._account = _path_id(str(account["id"]))
        return self._account

    def _check_length(self, text: str) -> None:
        length = mastodon_length(text)
        if length > self.settings.max_chars:
            raise ChannelError(
                ChannelErrorKind.INVALID,
                f"status is {length} characters, the instance allows {self.settings.max_chars}",
            )

    async def _call(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """The parsed JSON answer of a 2xx (None when it is not JSON); ChannelError or _Gone otherwise."""
        token = self.settings.token.get_secret_value()
        try:
            response = await self._client.request(
                method, path, data=data, params=params, headers={**(headers or {}), "Authorization": f"Bearer {token}"}
            )
        except httpx.TransportError as err:
            raise transport_error("mastodon", operation, err) from None
        if response.status_code in (404, 410):
            raise _Gone
        if not response.is_success:
            raise self._error(response, operation)
        try:
            return response.json()
        except ValueError:
            return None

    def _error(self, response: httpx.Response, operation: str) -> ChannelError:
        code = response.status_code
        message = f"mastodon {operation}: HTTP {code} {_error_text(response)}".rstrip()
        if code == 429:
            return ChannelError(ChannelErrorKind.RATE_LIMITED, message, retry_after_s(response.headers, self._clock()))
        if code in (401, 403):
            return ChannelError(ChannelErrorKind.UNAUTHORISED, message)
        if code >= 500 or code == 408:
            return ChannelError(ChannelErrorKind.UNAVAILABLE, message, retry_after_s(response.headers, self._clock()))
        # 422 validation, 400 bad request, a 3xx (base_url points at the wrong place): retrying cannot help.
        return ChannelError(ChannelErrorKind.INVALID, message)

    def _delivered(self, status: Mapping[str, Any]) -> Delivered:
        url = status.get("url") or status.get("uri") or ""
        return Delivered(external_id=str(status["id"]), url=str(url))


class _Gone(Exception):
    """404/410: the status does not exist (any more)."""


def _status(answer: Any) -> Mapping[str, Any]:
    if not isinstance(answer, dict) or not answer.get("id"):
        # A 2xx without a status (a proxy page, a truncated body): the outcome is unknown, the replay is safe.
        raise ChannelError(ChannelErrorKind.UNAVAILABLE, "mastodon: 2xx without a status")
    return answer


def _path_id(external_id: str) -> str:
    # Mastodon ids are numeric strings (forks use other alphanumerics); nothing else may be spliced into the path.
    if not _ID.fullmatch(external_id):
        raise ChannelError(ChannelErrorKind.INVALID, f"{external_id!r} is not a Mastodon status id")
    return external_id


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("error", ""))[:200] if isinstance(body, dict) else ""
