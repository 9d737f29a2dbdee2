"""Signed page tokens for deep, stable paging: a point in time (PIT) plus ``search_after``.

The first page of a post search opens a PIT on the posts read alias; every page searches that PIT and asks for the
hits after the last hit's sort values, so posts indexed (or rolled over) meanwhile neither shift, repeat nor hide
hits, and there is no 10,000-hit window. The token carries what the next page needs:

- ``pit``: the PIT id Elasticsearch returned with the last page (it may change from page to page);
- ``after``: the sort values of the last hit returned;
- ``fp``: the fingerprint of the query (``search_query._fingerprint``): a token replayed with another query fails;
- ``at``: the instant recency was scored from on the first page, so later pages score alike;
- ``n``: hits served so far (diagnostics only).

It is JSON, base64url, then ``.`` and an HMAC-SHA256 of that text under the gateway's key: a client cannot forge a
PIT id or sort values (which would let it read a PIT opened for another caller's scope). Any change to a token, a
token of another key, or one that does not parse is ``SearchRequestError`` (``INVALID_ARGUMENT``, reason
``ERROR_REASON_INVALID_PAGE_TOKEN``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any, Final

from gateway.search_query import SearchRequestError

__all__ = ["Cursor", "PageTokens", "invalid_token"]

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
