"""Between the wire and the core: ``Post`` -> ``PostView``; snapshots, alerts and grades -> protobuf; events -> ES.

Levels are the core's lower-case canonical names ("none" … "red") and ``qingfeng.v1.WarningLevel`` on the wire.

The events-index document (``event_document``) is built in ``events_index.py`` and importable from here too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from qingfeng.v1 import common_pb2, event_pb2, post_pb2

from services.grader.core import Alert, EventSnapshot, Grade, PostView, Reason, WindowMetrics, parse_duration
from services.grader.events_index import event_document

__all__ = [
    "InvalidPost",
    "RegionNames",
    "alert_proto",
    "event_document",
    "event_proto",
    "grade_proto",
    "level_enum",
    "level_name",
    "metrics_proto",
    "post_view",
    "reason_proto",
    "scheme_enum",
    "timestamp",
]

_W = common_pb2.WarningLevel
LEVEL_ENUMS: Final[dict[str, int]] = {
    "none": _W.WARNING_LEVEL_NONE,
    "blue": _W.WARNING_LEVEL_BLUE,
    "yellow": _W.WARNING_LEVEL_YELLOW,
    "orange": _W.WARNING_LEVEL_ORANGE,
    "red": _W.WARNING_LEVEL_RED,
}
_LEVEL_NAMES: Final = {number: name for name, number in LEVEL_ENUMS.items()}
_OPS: Final[dict[str, int]] = {
    ">": common_pb2.COMPARISON_OPERATOR_GT,
    ">=": common_pb2.COMPARISON_OPERATOR_GE,
    "<": common_pb2.COMPARISON_OPERATOR_LT,
    "<=": common_pb2.COMPARISON_OPERATOR_LE,
    "==": common_pb2.COMPARISON_OPERATOR_EQ,
    "!=": common_pb2.COMPARISON_OPERATOR_NE,
}
_SCHEMES: Final[dict[str, int]] = {
    "four_color": common_pb2.LEVEL_SCHEME_FOUR_COLOR,
    "three_tier": common_pb2.LEVEL_SCHEME_THREE_TIER,
}
_TIERS: Final[dict[str, int]] = {
    "blue": common_pb2.THREE_TIER_LEVEL_GENERAL,
    "yellow": common_pb2.THREE_TIER_LEVEL_MAJOR,
    "orange": common_pb2.THREE_TIER_LEVEL_SERIOUS,
    "red": common_pb2.THREE_TIER_LEVEL_SERIOUS,
}


# SOURCE_KIND_WEIBO_API -> "weibo_api": the core's spelling (GraderConfig.media_source_kinds).
_SOURCE_KINDS: Final = {
    value.number: value.name.removeprefix("SOURCE_KIND_").lower() for value in common_pb2.SourceKind.DESCRIPTOR.values
}
_SOURCE_KINDS[common_pb2.SOURCE_KIND_UNSPECIFIED] = ""


class InvalidPost(ValueError):
    """A decoded post the grader cannot use (no id, no time): dead-lettered with reason INVALID."""


_UNSPECIFIED_LEVEL: Final = _W.WARNING_LEVEL_UNSPECIFIED  # an enum wrapper attribute costs a lookup on every read


def level_enum(level: str) -> int:
    """Canonical level name -> ``WarningLevel`` (unknown names -> UNSPECIFIED)."""
    return LEVEL_ENUMS.get(level, _UNSPECIFIED_LEVEL)


def level_name(value: int) -> str | None:
    """``WarningLevel`` -> canonical level name; None for UNSPECIFIED or an unknown number."""
    return _LEVEL_NAMES.get(value)


def scheme_enum(scheme: str) -> int:
    return _SCHEMES.get(scheme, common_pb2.LEVEL_SCHEME_UNSPECIFIED)


def timestamp(at: datetime) -> Timestamp:
    """``at`` as a Timestamp (an aware datetime by subtraction: ``FromDatetime`` goes through a time tuple)."""
    if at.tzinfo is not None:
        delta = at - _EPOCH
        return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts


@lru_cache(maxsize=256)
def _window_seconds(window: str) -> float | None:
    seconds = parse_duration(window) if window and window != "total" else None
    return seconds if seconds is not None and seconds > 0 else None


@lru_cache(maxsize=256)
def _duration(seconds: float) -> Duration:
    """A window's length (few distinct values; shared: callers copy it, never change it)."""
    d = Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


class RegionNames:
    """Region names as the collector's enrichment gave them, by code (the core keeps codes only)."""

    def __init__(self, limit: int = 20_000) -> None:
        self._names: dict[str, str] = {}
        self._limit = limit

    def note(self, regions: Iterable[common_pb2.Region]) -> None:
        for region in regions:
            if region.name and region.code not in self._names and len(self._names) < self._limit:
                self._names[region.code] = region.name

    def region(self, code: str) -> common_pb2.Region:
        return common_pb2.Region(code=code, name=self._names.get(code, ""))


# -- post -> core ------------------------------------------------------------------------------------------------


def post_view(post: post_pb2.Post) -> PostView:
    """The fields of a collected post the engine uses. Raises ``InvalidPost`` when it has no id or no time.

    Event time is ``created_at`` (``collected_at`` when the source gave none). The earlier post the collector found
    it to duplicate (``dedupe.duplicate_of``) is passed on as ``duplicate_of``: event detection weighs it as text
    evidence, not as a repost link (a copied text is not a parent).

    Runs once per consumed post: every attribute of a protobuf message builds a Python object, so each submessage is
    read once and the repeated fields only when they hold something (this took ~15 µs per post, now ~6).
    """
    post_id = post.id
    if not post_id:
        raise InvalidPost("post has no id")
    if post.HasField("created_at"):
        created = _event_time(post_id, "created_at", post.created_at)
    elif post.HasField("collected_at"):
        created = _event_time(post_id, "collected_at", post.collected_at)
    else:
        raise InvalidPost(f"post {post_id} has neither created_at nor collected_at")
    author = post.author
    account = author.id
    platform = post.platform
    dedupe = post.dedupe
    duplicate_of = dedupe.duplicate_of
    enrichment = post.enrichment
    regions = enrichment.regions
    signals = enrichment.offline_signals
    keywords = post.keywords
    return PostView(
        id=post_id,
        created_at=created,
        # Account ids are unique per platform; the same account seen through two sources is one author.
        author_id=f"{platform or post.source_id}:{account}" if account else "",
        author_followers=author.followers,
        author_is_media=author.is_media,
        source_kind=_SOURCE_KINDS.get(post.source_kind, ""),
        platform=platform,
        # The headline candidate: an article's title, else the (simplified) text.
        text=post.title.strip() or post.text_simplified or post.text,
        keywords=tuple(keywords) if keywords else (),
        simhash=dedupe.simhash or None,
        parent_id=post.parent_id or None,
        root_id=post.root_id or None,
        duplicate_of=duplicate_of if duplicate_of and duplicate_of != post_id else None,
        reposts=post.reposts,
        comments=post.comments,
        likes=post.likes,
        region_codes=tuple([r.code for r in regions]) if regions else (),
        offline_signals=tuple([s.term for s in signals]) if signals else (),
        offline_planned=any(s.planned for s in signals) if signals else False,
        relevance=enrichment.relevance,
    )


# Timestamp's range (0001-01-01 .. 9999-12-31T23:59:59Z), as protobuf checks it.
_MIN_SECONDS: Final = -62135596800
_MAX_SECONDS: Final = 253402300799
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _event_time(post_id: str, name: str, value: Timestamp) -> datetime:
    """``value`` as an aware datetime; ``InvalidPost`` when it is outside Timestamp's range (years 1-9999).

    The same value as ``Timestamp.ToDatetime(tzinfo=UTC)`` (microseconds rounded toward zero), without its checks
    and time-zone conversion on the common path; anything unusual goes through it.
    """
    seconds, nanos = value.seconds, value.nanos
    if _MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000:
        return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as err:
        raise InvalidPost(f"post {post_id}: {name} is not a valid time ({err})") from None


# -- core -> protobuf --------------------------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def reason_proto(r: Reason) -> common_pb2.Reason:
    """The wire form of a reason. Cached (an event's reasons repeat from snapshot to snapshot): the message is
    shared, so callers put it into another message (which copies it) and never change it."""
    out = common_pb2.Reason(
        criterion=r.criterion,
        value=r.value,
        threshold=r.threshold,
        op=_OPS.get(r.op, common_pb2.COMPARISON_OPERATOR_UNSPECIFIED),  # type: ignore[arg-type]
        message=r.message,
        level=level_enum(r.level),  # type: ignore[arg-type]
    )
    seconds = _window_seconds(r.window)
    if seconds is not None:
        out.window.CopyFrom(_duration(seconds))
    return out


def grade_proto(g: Grade) -> event_pb2.Grade:
    out = event_pb2.Grade(
        level=level_enum(g.level),  # type: ignore[arg-type]
        scheme=scheme_enum(g.scheme),  # type: ignore[arg-type]
        label=g.label,
        policy_version=g.policy_version,
        reasons=[reason_proto(r) for r in g.reasons],
        graded_at=timestamp(g.graded_at),
    )
    if g.scheme == "three_tier":
        out.tier = _TIERS.get(g.level, common_pb2.THREE_TIER_LEVEL_UNSPECIFIED)  # type: ignore[assignment]
    if g.override is not None:
        o = g.override
        out.override.CopyFrom(
            event_pb2.LevelOverride(
                level=level_enum(o.level),  # type: ignore[arg-type]
                reason=o.reason,
                actor=common_pb2.Actor(id=o.by),
                set_at=timestamp(o.at),
            )
        )
        if o.expires_at is not None:
            out.override.expires_at.CopyFrom(timestamp(o.expires_at))
    if g.hold_until is not None:
        out.hold_until.CopyFrom(timestamp(g.hold_until))
    return out


def metrics_proto(m: WindowMetrics) -> event_pb2.EventMetrics:
    """One window's counters. The "total" window (the event's whole life) has no ``window`` length."""
    out = event_pb2.EventMetrics(
        window_end=timestamp(m.window_end),
        posts=m.posts,
        reposts=m.reposts,
        comments=m.comments,
        likes=m.likes,
        distinct_authors=m.distinct_authors,
        velocity=m.velocity,
        acceleration=m.acceleration,
        top_author_reach=m.top_author_reach,
        sources=m.sources,
        platforms=m.platforms,
        media_involved=m.media_involved,
        regional_scope=m.regional_scope,  # type: ignore[arg-type]
        offline_risk=m.offline_risk,
        relevance=m.relevance,
    )
    if math.isfinite(m.seconds) and m.seconds > 0:
        out.window.CopyFrom(_duration(m.seconds))
    return out


def event_proto(s: EventSnapshot, names: RegionNames, updated_at: datetime) -> event_pb2.Event:
    """The wire form of an event snapshot (qingfeng.events.v1, GetEvent, the events index)."""
    out = event_pb2.Event(
        id=s.event_id,
        title=s.title,
        keywords=s.keywords,
        first_seen_at=timestamp(s.first_seen),
        last_seen_at=timestamp(s.last_seen),
        post_count=s.post_count,
        level=level_enum(s.level),  # type: ignore[arg-type]
        previous_level=level_enum(s.previous_level),  # type: ignore[arg-type]
        rising=s.rising,
        grade=grade_proto(s.grade),
        metrics=[metrics_proto(m) for m in s.metrics],
        regions=[names.region(code) for code in s.region_codes],
        merged_into=s.merged_into or "",
        representative_post_ids=s.representative_post_ids,
        version=s.version,
        updated_at=timestamp(updated_at),
    )
    return out


def alert_proto(
    a: Alert, names: RegionNames, emitted_at: datetime, *, relevance: float | None = None
) -> event_pb2.Alert:
    """The wire form of a level change; ``id`` = "<event_id>:<sequence>", the downstream idempotency key.
    ``relevance`` is the event's mean corruption relevance at the change, when known."""
    out = event_pb2.Alert(
        id=a.id,
        event_id=a.event_id,
        from_level=level_enum(a.from_level),  # type: ignore[arg-type]
        to_level=level_enum(a.to_level),  # type: ignore[arg-type]
        reasons=[reason_proto(r) for r in a.reasons],
        emitted_at=timestamp(emitted_at),
        sequence=a.sequence,
        event_title=a.event_title,
        regions=[names.region(code) for code in a.region_codes],
        grade=grade_proto(a.grade),
        rising=a.grade.rising,
    )
    if relevance is not None and math.isfinite(relevance):
        out.corruption_relevance = relevance
    return out
