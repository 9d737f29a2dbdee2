"""ListEvents: the live events filtered, newest activity first, paged with signed keyset tokens.

A page token holds the sort key of the last event served ``(-last_seen, event_id)`` and a fingerprint of the query
(every request field but the paging ones), as JSON in base64url, then ``.`` and an HMAC-SHA256 of that text under a
key of this process: a token altered, forged, issued for another query or by an earlier run of the grader is
``InvalidPageToken`` (INVALID_ARGUMENT, ERROR_REASON_INVALID_PAGE_TOKEN), so a client starts the listing again
instead of reading from a position it made up. The key is the grader's own (it is one process; tokens do not outlive
it). Keyset, not offsets: events opened meanwhile do not shift the pages; an event whose activity moves it ahead of
the cursor while a client pages is not served again on later pages (the events index, searched with a point in
time through the gateway, is the stable listing).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC
from typing import Final

from qingfeng.text.conversion import normalize_width, to_simplified
from qingfeng.v1 import event_pb2

from services.grader.convert import level_enum, level_name
from services.grader.core import EventSnapshot
from services.grader.errors import InvalidArgument, InvalidPageToken

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "EventPageTokens", "list_events"]

DEFAULT_PAGE: Final = 50
MAX_PAGE: Final = 500
_MAX_TOKEN_CHARS: Final = 2048
_REGION: Final = re.compile(r"^\d{6}$")

_Key = tuple[float, str]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class EventPageTokens:
    """Signs and verifies ListEvents page tokens under one HMAC key (a random one of this process by default)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        if len(self._key) < 16:
            raise ValueError("the page token key must be at least 16 bytes")

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def encode(self, key: _Key, fingerprint: str) -> str:
        payload = _b64(json.dumps({"k": list(key), "f": fingerprint}, separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{self._sign(payload)}"

    def decode(self, token: str, fingerprint: str) -> _Key:
        invalid = InvalidPageToken.of("page_token", "is not a token this grader issued (list again from the start)")
        if len(token) > _MAX_TOKEN_CHARS or not token.isascii():
            raise invalid
        payload, dot, signature = token.partition(".")
        if not dot or not hmac.compare_digest(signature, self._sign(payload)):
            raise invalid
        try:
            doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            key = (float(doc["k"][0]), str(doc["k"][1]))
            same = doc["f"] == fingerprint
        except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as err:
            raise invalid from err
        if not same:
            raise InvalidPageToken.of("page_token", "belongs to another query")
        return key


def _order(s: EventSnapshot) -> _Key:
    return (-s.last_seen.timestamp(), s.event_id)


def list_events(
    snapshots: Iterable[EventSnapshot], request: event_pb2.ListEventsRequest, tokens: EventPageTokens
) -> tuple[list[EventSnapshot], str]:
    """One page of the events matching ``request``, most recently active first, and the next page's token."""
    size = request.page_size or DEFAULT_PAGE
    if size < 0:
        raise InvalidArgument.of("page_size", "must not be negative")
    size = min(size, MAX_PAGE)
    keep = _filter(request)
    fingerprint = _fingerprint(request)
    after = tokens.decode(request.page_token, fingerprint) if request.page_token else None
    rows = sorted((s for s in snapshots if keep(s)), key=_order)
    if after is not None:
        rows = [s for s in rows if _order(s) > after]
    page = rows[:size]
    token = tokens.encode(_order(page[-1]), fingerprint) if len(rows) > size else ""
    return page, token


def _filter(request: event_pb2.ListEventsRequest) -> Callable[[EventSnapshot], bool]:
    min_level = request.min_level
    if min_level and level_name(min_level) is None:
        raise InvalidArgument.of("min_level", f"unknown level {min_level}")
    start = request.active.start_time.ToDatetime(tzinfo=UTC) if request.active.HasField("start_time") else None
    end = request.active.end_time.ToDatetime(tzinfo=UTC) if request.active.HasField("end_time") else None
    if start is not None and end is not None and end <= start:
        raise InvalidArgument.of("active", "end_time must be after start_time")
    prefix = ""
    if request.region_code:
        if not _REGION.match(request.region_code):
            raise InvalidArgument.of("region_code", "must be a six-digit GB/T 2260 code")
        code = request.region_code
        prefix = code[:2] if code.endswith("0000") else code[:4] if code.endswith("00") else code
    words = [to_simplified(normalize_width(w)).casefold() for w in request.query.split()]

    def keep(s: EventSnapshot) -> bool:
        if min_level and level_enum(s.level) < min_level:
            return False
        if start is not None and s.last_seen < start:
            return False
        if end is not None and s.last_seen >= end:
            return False
        if prefix and not any(c.startswith(prefix) for c in s.region_codes):
            return False
        if request.rising_only and not s.rising:
            return False
        if words:
            haystack = " ".join((s.title, *s.keywords)).casefold()
            return all(w in haystack for w in words)
        return True

    return keep


def _fingerprint(request: event_pb2.ListEventsRequest) -> str:
    query = event_pb2.ListEventsRequest()
    query.CopyFrom(request)
    query.ClearField("page_token")
    query.ClearField("page_size")
    return hashlib.sha256(query.SerializeToString(deterministic=True)).hexdigest()[:16]
