"""Signed page tokens for deep, stable paging: a point in time (PIT) plus ``search_after``, for posts and events.

The first page of a search opens a PIT on its read alias (posts or events); every page searches that PIT and asks
for the hits after the last hit's sort values, so documents indexed (or rolled over) meanwhile neither shift, repeat
nor hide hits, and there is no 10,000-hit window. The token carries what the next page needs:

- ``pit``: the PIT id Elasticsearch returned with the last page (it may change from page to page);
- ``after``: the sort values of the last hit returned;
- ``fp``: the fingerprint of the query (``search_query._fingerprint``): a token replayed with another query fails;
- ``at``: the instant recency was scored from on the first page, so later pages score alike;
- ``n``: hits served so far (diagnostics only).

It is JSON, base64url, then ``.`` and an HMAC-SHA256 of that text under the gateway's key: a client cannot forge a
PIT id or sort values (which would let it read a PIT opened for another caller's scope). Any change to a token, a
token of another key, or one that does not parse is ``SearchRequestError`` (``INVALID_ARGUMENT``, reason
``ERROR_REASON_INVALID_PAGE_TOKEN``).

``PitPager`` runs one page of such a search (open the PIT on the first page, search after the cursor, sign the next
cursor, close the PIT after the last page); the post and event searches differ only in the body they hand it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError, TransportError

from gateway.search_query import SearchRequestError

__all__ = ["Cursor", "PageTokens", "PitPage", "PitPager", "invalid_token"]

_MAX_TOKEN_CHARS: Final = 4096
_KEY_BYTES: Final = 32


@dataclass(frozen=True)
class Cursor:
    """Where the next page of a search starts (see the module docstring)."""

    pit: str
    after: tuple[Any, ...]
    fingerprint: str
    origin: str
    served: int


def invalid_token(message: str = "not a token this server issued for this query") -> SearchRequestError:
    return SearchRequestError("page_token", message, reason="ERROR_REASON_INVALID_PAGE_TOKEN")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageTokens:
    """Encodes and verifies page tokens under one HMAC key (``random()`` for a key of this process only)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the page token key must be at least 16 bytes")
        self._key = key

    @classmethod
    def random(cls) -> PageTokens:
        """A key of this process: tokens die with it and are refused by other gateway replicas."""
        return cls(secrets.token_bytes(_KEY_BYTES))

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def encode(self, cursor: Cursor) -> str:
        body: dict[str, Any] = {"pit": cursor.pit, "after": list(cursor.after), "fp": cursor.fingerprint}
        body.update(at=cursor.origin, n=cursor.served)
        payload = _b64(json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii"))
        return f"{payload}.{self._sign(payload)}"

    def decode(self, token: str, fingerprint: str) -> Cursor:
        """The cursor of ``token`` if this key signed it for a query of ``fingerprint``; else ``SearchRequestError``."""
        if len(token) > _MAX_TOKEN_CHARS or not token.isascii():
            raise invalid_token()
        payload, dot, signature = token.partition(".")
        if not dot or not hmac.compare_digest(signature, self._sign(payload)):
            raise invalid_token()
        try:
            body = json.loads(_unb64(payload))
            cursor = Cursor(
                pit=str(body["pit"]),
                after=tuple(body["after"]),
                fingerprint=str(body["fp"]),
                origin=str(body["at"]),
                served=int(body["n"]),
            )
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise invalid_token() from None
        if cursor.fingerprint != fingerprint:
            raise invalid_token()
        return cursor


@dataclass(frozen=True)
class PitPage:
    """One page: Elasticsearch's response body, its hits (at most the page size) and the signed next token."""

    found: Mapping[str, Any]
    hits: list[Mapping[str, Any]]
    next_page_token: str


# An Elasticsearch error and what was being done -> the exception the caller raises (gateway.search's kinds).
Translate = Callable[[Exception, str], Exception]


class PitPager:
    """Pages through searches of one read ``alias`` with a PIT, ``search_after`` and tokens signed by ``tokens``."""

    def __init__(
        self,
        es: AsyncElasticsearch,
        alias: str,
        *,
        tokens: PageTokens,
        translate: Translate,
        what: str,
        keep_alive: str = "2m",
    ) -> None:
        self._es = es
        self._alias = alias
        self._tokens = tokens
        self._translate = translate
        self._what = what  # "post search", "event search": for the log
        self._keep_alive = keep_alive

    def cursor(self, token: str, fingerprint: str) -> Cursor | None:
        """The cursor of ``token`` (None for the first page); ``SearchRequestError`` for a forged or foreign one."""
        return self._tokens.decode(token, fingerprint) if token else None

    async def page(
        self, body: dict[str, Any], *, size: int, fingerprint: str, origin: str, cursor: Cursor | None
    ) -> PitPage:
        """Run ``body`` (query, sort ending in a unique tie-break, no paging) for the page after ``cursor``."""
        pit = cursor.pit if cursor else await self._open()
        body = {**body, "size": size + 1, "pit": {"id": pit, "keep_alive": self._keep_alive}}
        if cursor:
            body["search_after"] = list(cursor.after)
        try:
            response = await self._es.search(**body)
        except NotFoundError as err:
            if cursor is None:
                raise self._translate(err, self._what) from err
            raise invalid_token("the search behind this token expired; search again") from err
        except (ApiError, TransportError) as err:
            raise self._translate(err, self._what) from err
        found: Mapping[str, Any] = response.body
        hits: list[Mapping[str, Any]] = found.get("hits", {}).get("hits", [])
        more = len(hits) > size
        hits = hits[:size]
        pit = str(found.get("pit_id") or pit)  # the id may change from page to page
        token = ""
        if more:
            served = (cursor.served if cursor else 0) + len(hits)
            after = tuple(hits[-1]["sort"])
            token = self._tokens.encode(Cursor(pit, after, fingerprint, origin, served))
        else:
            await self._close(pit)
        return PitPage(found, hits, token)

    async def _open(self) -> str:
        try:
            # A family nobody has written yet has no read alias: a PIT over no index, an empty result.
            response = await self._es.open_point_in_time(
                index=self._alias, keep_alive=self._keep_alive, ignore_unavailable=True
            )
        except (ApiError, TransportError) as err:
            raise self._translate(err, "opening a point in time") from err
        return str(response.body["id"])

    async def _close(self, pit: str) -> None:
        # Best effort: an unclosed PIT only lives until its keep-alive runs out.
        with contextlib.suppress(ApiError, TransportError):
            await self._es.close_point_in_time(id=pit)
