"""What every source adapter shares: its contract with the scheduler and the helpers that build ``Post``s.

An adapter fetches one source and hands what it found to ``emit`` in batches (so a 50 000-line import or a 10-page
forum streams into the pipeline instead of piling up in memory), then returns an ``Outcome``. It never raises for
bad input or a failing site: broken items become ``Rejected``, a failed fetch becomes ``Outcome.error``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import urlsplit

from google.protobuf.timestamp_pb2 import Timestamp
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.fetch import Fetcher, FetchError, Refused, TooLarge, Undecodable
from services.collector.ports import FetchState, Rejected

__all__ = [
    "MAX_DEAD_LETTER_PAYLOAD",
    "Emit",
    "Item",
    "Outcome",
    "SourceAdapter",
    "SourceContext",
    "emit_all",
    "is_news_site",
    "new_post",
    "platform_of",
    "post_id",
    "rejected",
    "rejected_for_fetch_error",
    "secrets_from_dir",
    "set_time",
    "unique_posts",
]

Item = post_pb2.Post | Rejected
Emit = Callable[[Sequence[Item]], Awaitable[None]]

# The dead-letter topic carries the original bytes; past this they are cut so one record stays well under Kafka's
# 1 MiB message limit (the message text says so).
MAX_DEAD_LETTER_PAYLOAD = 256 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")
# Kafka keys and Elasticsearch ids stay short: a native id longer than this is hashed into the Post id.
_MAX_NATIVE_ID_IN_POST_ID = 96

_KIND_PREFIX = {
    common_pb2.SOURCE_KIND_RSS: "rss",
    common_pb2.SOURCE_KIND_HTML: "html",
    common_pb2.SOURCE_KIND_WEIBO_API: "weibo",
    common_pb2.SOURCE_KIND_MASTODON: "mastodon",
    common_pb2.SOURCE_KIND_JSONL_IMPORT: "jsonl",
    common_pb2.SOURCE_KIND_MANUAL_TIP: "tip",
}


@dataclass(frozen=True)
class Outcome:
    """How one fetch of a source went.

    ``fetch_state`` is what to store for the next conditional GET: None keeps the stored one, an empty
    ``FetchState()`` clears it (so the next fetch is unconditional, e.g. after some article pages failed).
    ``error`` is set when the fetch failed as a whole or in part; items emitted before the error still count.
    """

    fetch_state: FetchState | None = None
    error: str | None = None
    not_modified: bool = False
    emitted: int = 0


@dataclass(frozen=True)
class SourceContext:
    """What adapters need from the process: the shared fetcher, the wall clock and the secrets directory."""

    fetcher: Fetcher
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Returns the content of a file in the secrets directory, None when absent. Tokens never live in Source.
    secret: Callable[[str], str | None] = lambda name: None
    batch_size: int = 500
    # Directories file sources (JSONL) may read, after symlinks are resolved. Empty: none, so a source cannot be
    # pointed at /run/secrets or /etc (its lines would travel to the dead-letter topic as payload).
    file_roots: tuple[Path, ...] = ()


def secrets_from_dir(directory: Path) -> Callable[[str], str | None]:
    """``SourceContext.secret`` over a secrets directory (one file per secret, as ``deploy/`` mounts them)."""

    def read(name: str) -> str | None:
        # A name is a file name, never a path: "../x" or "a/b" would read outside the directory.
        if not name or name in {".", ".."} or "/" in name or "\\" in name:
            return None
        try:
            return (directory / name).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    return read


class SourceAdapter(Protocol):
    """Fetches one kind of source."""

    async def collect(self, source: source_pb2.Source, state: FetchState | None, emit: Emit) -> Outcome:
        """Fetch ``source`` (conditionally when ``state`` has validators), emit posts and rejects, say how it went."""
        ...


def unique_posts(batches: Iterable[Iterable[Item]]) -> list[Item]:
    """Flatten per-status items, keeping each post id once: an API answer repeats a popular original per repost."""
    items: list[Item] = []
    seen: set[str] = set()
    for batch in batches:
        for item in batch:
            if isinstance(item, post_pb2.Post):
                if item.id in seen:
                    continue
                seen.add(item.id)
            items.append(item)
    return items


# ``\s`` of a str pattern is exactly ``str.isspace`` (the same table; every code point checked in
# tests/services/collector/unit/test_post_id.py), one C scan instead of a generator over the characters.
_WHITESPACE: Final = re.compile(r"\s")


def post_id(kind: common_pb2.SourceKind.ValueType, source_id: str, native_id: str = "", url: str = "") -> str:
    """The stable Post id: ``<kind>:<source id>:<native id>``, or a SHA-1 of the URL when there is no native id."""
    prefix = _KIND_PREFIX.get(kind, "src")
    if native_id and len(native_id) <= _MAX_NATIVE_ID_IN_POST_ID and _WHITESPACE.search(native_id) is None:
        return f"{prefix}:{source_id}:{native_id}"
    key = native_id or url
    if not key:
        raise ValueError("a post needs a native id or a URL to have a stable id")
    return f"{prefix}:{source_id}:h{hashlib.sha1(key.encode('utf-8')).hexdigest()}"


# Hosts and paths of discussion sites: their authors are netizens, not a news organisation.
_FORUM_MARKERS = ("bbs.", "tieba.", "forum", "club.", "luntan", "/bbs", "talk.")


def is_news_site(url: str) -> bool:
    """Whether a feed or page URL looks like a news outlet rather than a forum.

    A heuristic until Source says so itself: RSS and HTML sources are portals and local news unless the URL names a
    forum (bbs., tieba., /forum …).
    """
    lowered = url.lower()
    return not any(marker in lowered for marker in _FORUM_MARKERS)


def platform_of(url: str) -> str:
    """The site a URL belongs to, e.g. ``news.example.cn`` (without ``www.``); "" for a URL that does not parse."""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:  # "http://[x": an unclosed IPv6 bracket
        return ""
    return host.removeprefix("www.")


def _storable(text: str) -> str:
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# google.protobuf.Timestamp's valid seconds: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def set_time(field: Timestamp, value: datetime) -> None:
    """Set a ``google.protobuf.Timestamp`` field from an aware datetime.

    The seconds and nanos ``FromDatetime(value.astimezone(UTC))`` would set (floor seconds since the epoch, the
    microseconds), from one subtraction instead of a UTC conversion, a time tuple and ``calendar.timegm`` (every
    post's collection time goes through here). A naive time (local time to ``astimezone``) or one out of the
    Timestamp's range takes the old way, with its errors. The last aware time converted is remembered: a batch's
    posts share one collection time (the same object), converted once."""
    global _last_time
    last = _last_time
    if value is last[0]:
        field.seconds = last[1]
        field.nanos = last[2]
        return
    if value.utcoffset() is not None:
        delta = value - _EPOCH
        seconds = delta.days * 86_400 + delta.seconds
        if _MIN_SECONDS <= seconds <= _MAX_SECONDS:
            nanos = delta.microseconds * 1_000
            field.seconds = seconds
            field.nanos = nanos
            _last_time = (value, seconds, nanos)
            return
    field.FromDatetime(value.astimezone(UTC))


# (aware datetime, its seconds, its nanos): what set_time converted last (datetimes are immutable).
_last_time: tuple[datetime | None, int, int] = (None, 0, 0)


def new_post(
    source: source_pb2.Source,
    *,
    native_id: str,
    url: str,
    collected_at: datetime,
    platform: str = "",
) -> post_pb2.Post:
    """A Post with its identity filled in: id, source, native id, url, platform, collection time, default regions."""
    # Protobuf strings must be valid UTF-8: a lone surrogate (from a hostile page or feed) becomes "?" here instead of
    # failing the whole page when the message is built.
    native_id, url = _storable(native_id), _storable(url)
    post = post_pb2.Post(
        id=post_id(source.kind, source.id, native_id, url),
        source_id=source.id,
        source_kind=source.kind,
        native_id=native_id,
        url=url,
        platform=platform or platform_of(url or source.url),
    )
    set_time(post.collected_at, collected_at)
    # The source's own regions (属地) travel with each post; enrichment adds what it finds in the text.
    if source.default_regions:
        post.enrichment.regions.extend(source.default_regions)
    return post


def rejected(
    source: source_pb2.Source,
    reason: post_pb2.DeadLetterReason.ValueType,
    message: str,
    payload: bytes | str,
    origin: str,
) -> Rejected:
    """A dead-letter item; the payload is the original input (cut at ``MAX_DEAD_LETTER_PAYLOAD`` bytes)."""
    data = payload.encode("utf-8", errors="replace") if isinstance(payload, str) else payload
    # The message goes into a protobuf string and the origin into a Kafka header: both must be valid UTF-8.
    message, origin = _SURROGATE.sub("\ufffd", message), _SURROGATE.sub("\ufffd", origin)
    if len(data) > MAX_DEAD_LETTER_PAYLOAD:
        message = f"{message} (payload cut to {MAX_DEAD_LETTER_PAYLOAD} of {len(data)} bytes)"
        data = data[:MAX_DEAD_LETTER_PAYLOAD]
    return Rejected(reason=reason, message=message, payload=data, source_id=source.id, origin=origin)


def rejected_for_fetch_error(source: source_pb2.Source, err: FetchError, body: bytes = b"") -> Rejected | None:
    """The dead letter for a fetch error that is about the content (too large, not text) or a URL refused by the
    SSRF guard (kept with its reason, so an operator sees who pointed us where), None for the others (unreachable,
    HTTP errors, robots.txt), which are the source's status rather than an item."""
    if isinstance(err, Refused):
        return rejected(source, post_pb2.DEAD_LETTER_REASON_INVALID, err.message, err.url, err.url)
    if isinstance(err, TooLarge):
        return rejected(source, post_pb2.DEAD_LETTER_REASON_TOO_LARGE, err.message, err.head, err.url)
    if isinstance(err, Undecodable):
        return rejected(source, post_pb2.DEAD_LETTER_REASON_ENCODING, err.message, body, err.url)
    return None


async def emit_all(emit: Emit, items: Sequence[Item], batch_size: int) -> int:
    """Hand ``items`` to ``emit`` in batches of at most ``batch_size``; returns how many were emitted."""
    size = max(1, batch_size)
    for start in range(0, len(items), size):
        await emit(items[start : start + size])
    return len(items)
