"""One slice of an ingest call made ready to send: validated, enriched, de-duplicated, turned into records.

The CPU half of ingest (``pipeline.py`` holds the other: budget, sends, acknowledgements, the memory of produced
ids). No I/O and no awaits: the pipeline calls ``SlicePreparer.prepare`` for a slice between two awaits, so no other
call can claim one of the slice's ids meanwhile. For each item, in order:

- a ``Rejected`` (the adapter could not parse it) becomes a dead letter with its reason;
- a ``Post`` is validated (required fields, sizes: an oversized text is ``TOO_LARGE``, a bad one ``INVALID``);
- a post whose id was produced already (``seen``) is a re-delivery: no record, counted as a duplicate; a second
  copy of an id within the slice is one too once the first copy is produced;
- every other post is stamped (collected_at, created_at when missing), enriched and deduped by the pure core (all of
  the slice's posts together, ``enrich_posts``), and becomes a ``post.collected`` record keyed by its id; one too
  large for a Kafka record once enriched is dead-lettered instead.

Per post this is the collector's hot path (tens of thousands of posts a second per core are asked of it), so the
checks read each protobuf field once and the times are converted without ``Timestamp``'s generic helpers; what it
decides is unchanged (``tests/services/collector/unit/test_pipeline.py`` and the frozen outputs).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from qingfeng.kafka import DEADLETTER_EVENT_TYPE, ORIGINAL_TOPIC, DeadLetterSpec, OutgoingRecord, build_dead_letter
from qingfeng.text import Enricher
from qingfeng.v1 import post_pb2

from services.collector.convert import fill_post
from services.collector.core import Deduper, RawPost, enrich_posts
from services.collector.ports import IngestSummary, Rejected
from services.collector.settings import CollectorTopics, PipelineSettings

__all__ = [
    "MAX_ID_BYTES",
    "POST_EVENT_TYPE",
    "IngestReport",
    "ItemResult",
    "Outcome",
    "PreparedSlice",
    "SlicePreparer",
    "id_too_long",
]

POST_EVENT_TYPE: Final = "post.collected"
# Room left under the producer's max_request_size for the key and headers of a post record.
_HEADER_RESERVE_BYTES: Final = 4096
# Room left for the other DeadLetter fields when its payload is truncated.
_DEADLETTER_RESERVE_BYTES: Final = 64 * 1024
# Elasticsearch refuses _id values longer than 512 bytes.
MAX_ID_BYTES: Final = 512
# A string of at most this many characters has at most MAX_ID_BYTES bytes in UTF-8 (4 bytes a character at most):
# only a longer one is encoded to be measured.
_SAFE_ID_CHARS: Final = MAX_ID_BYTES // 4
# Clocks of sources drift; a post "from the future" beyond this is a parsing error (a wrong time zone or format).
_FUTURE_TOLERANCE_S: Final = timedelta(days=1).total_seconds()
_SOURCE: Final = "collector"
# google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799
# Timestamp.ToDatetime(UTC) is this epoch plus the seconds and the nanos cut to microseconds.
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

_INVALID = post_pb2.DEAD_LETTER_REASON_INVALID
_TOO_LARGE = post_pb2.DEAD_LETTER_REASON_TOO_LARGE


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class ItemResult:
    """What became of one item. ``post`` is the post as produced (enriched); for a re-delivery, the input post."""

    outcome: Outcome
    post: post_pb2.Post | None = None
    rejected: Rejected | None = None
    redelivered: bool = False

    @property
    def duplicate_of(self) -> str:
        return self.post.dedupe.duplicate_of if self.post is not None else ""


@dataclass(frozen=True)
class IngestReport:
    """The result of every item, in input order."""

    results: list[ItemResult] = field(default_factory=list)

    @property
    def summary(self) -> IngestSummary:
        counts = dict.fromkeys(Outcome, 0)
        for result in self.results:
            counts[result.outcome] += 1
        return IngestSummary(
            accepted=counts[Outcome.ACCEPTED], duplicate=counts[Outcome.DUPLICATE], rejected=counts[Outcome.REJECTED]
        )


@dataclass
class PreparedSlice:
    """A slice's results (one per item, in order), its records, and the post ids it produces (-> duplicate_of)."""

    results: list[ItemResult]
    records: list[OutgoingRecord]
    produced: dict[str, str]


@dataclass(slots=True)
class _Fresh:
    """A post of a slice to enrich (``again``: an id already in the slice, settled after the first copy)."""

    post: post_pb2.Post
    again: bool = False


def _result_of(outcome: Outcome, post: post_pb2.Post) -> ItemResult:
    """``ItemResult(outcome, post=post)``, equal to it, from one dict (a frozen dataclass's ``__init__`` sets each
    field with ``object.__setattr__``; one result per post)."""
    result = _new(ItemResult)
    _set(result, "__dict__", {"outcome": outcome, "post": post, "rejected": None, "redelivered": False})
    return result


_new = object.__new__
_set = object.__setattr__


def id_too_long(post_id: str) -> bool:
    """Whether ``post_id`` has more than ``MAX_ID_BYTES`` bytes in UTF-8 (encoded only when it could have)."""
    return len(post_id) > _SAFE_ID_CHARS and len(post_id.encode("utf-8")) > MAX_ID_BYTES


class SlicePreparer:
    """Validation, enrichment and dedupe of slices, and the records they become (see the module docstring)."""

    def __init__(
        self,
        *,
        enricher: Enricher,
        deduper: Deduper,
        settings: PipelineSettings,
        topics: CollectorTopics,
        clock: Callable[[], datetime],
    ) -> None:
        self._enricher = enricher
        self._regions = enricher.lexicons.regions
        self._deduper = deduper
        self._settings = settings
        self._topics = topics
        self._clock = clock

    def prepare(
        self,
        items: Sequence[post_pb2.Post | Rejected],
        now: datetime,
        seen: Callable[[str], bool],
        max_request_size: int,
        *,
        owned: bool = False,
    ) -> PreparedSlice:
        """Validate, enrich and dedupe a slice into records and one result per item, in the items' order.

        ``owned``: each item is a distinct message the caller hands over and never reads again (ImportPosts parses
        each line into its own): a post is stamped and enriched in place instead of in a copy (a ``CopyFrom`` per
        post). Otherwise the items are left as they were: a caller may hand the same ones again (a retry).

        ``seen(post_id)``: whether the post was produced already (by an earlier call or slice). The valid posts are
        enriched together (``enrich_posts``: long texts a stage at a time over a batch, which keeps each stage's
        tables in the CPU caches; the results equal one by one), so the slice is planned first: a rejection, a
        duplicate, or a post to enrich, per item."""
        plan: list[tuple[Rejected, str] | ItemResult | _Fresh] = []
        fresh: dict[str, _Fresh] = {}
        latest = now.timestamp() + _FUTURE_TOLERANCE_S
        validate = self._validate
        for item in items:
            if isinstance(item, Rejected):
                plan.append((item, item.origin))
                continue
            problem = validate(item, latest)
            post_id = item.id
            if problem is not None:
                plan.append((problem, "" if id_too_long(post_id) else post_id))
            elif post_id in fresh:
                plan.append(_Fresh(item, again=True))  # settled below, once the first copy's fate is known
            elif seen(post_id):
                plan.append(ItemResult(Outcome.DUPLICATE, post=item, redelivered=True))
            else:
                first = fresh[post_id] = _Fresh(_stamp(item, now) if owned else _stamped(item, now))
                plan.append(first)
        duplicates = dict(zip(fresh, self._enrich([first.post for first in fresh.values()]), strict=True))
        work = PreparedSlice([], [], {})
        limit = max_request_size - _HEADER_RESERVE_BYTES
        for step in plan:
            if isinstance(step, tuple):
                self._reject(work, step[0], step[1], max_request_size)
            elif isinstance(step, ItemResult):
                work.results.append(step)
            elif step.again and step.post.id in work.produced:
                work.results.append(ItemResult(Outcome.DUPLICATE, post=step.post, redelivered=True))
            else:
                # the first copy of an id, or a second one whose first was refused (as when items came one by one)
                post = step.post
                if step.again:
                    post = _stamped(post, now)
                    duplicate_of = self._enrich([post])[0]
                else:
                    duplicate_of = duplicates[post.id]
                self._accept(work, post, duplicate_of, limit, max_request_size)
        return work

    def _accept(
        self, work: PreparedSlice, post: post_pb2.Post, duplicate_of: str, limit: int, max_request_size: int
    ) -> None:
        # ByteSize() serialises the post to count its bytes: serialised once here, the bytes are what gets sent.
        value = post.SerializeToString()
        size = len(value)
        post_id = post.id
        if size > limit:
            too_large = Rejected(
                reason=_TOO_LARGE,
                message=f"enriched post is {size} bytes, the Kafka record limit leaves {limit}",
                payload=value,
                source_id=post.source_id,
                origin=post.url or post_id,
            )
            self._reject(work, too_large, post_id, max_request_size)
            return
        work.records.append(OutgoingRecord.of(self._topics.posts, post_id, post, POST_EVENT_TYPE, post_id, value))
        work.produced[post_id] = duplicate_of
        work.results.append(_result_of(Outcome.DUPLICATE if duplicate_of else Outcome.ACCEPTED, post))

    def _validate(self, post: post_pb2.Post, latest: float) -> Rejected | None:
        """The first problem that keeps ``post`` from being produced, as a ``Rejected``; ``latest``: the latest
        created_at (POSIX seconds) not "in the future"."""
        limits = self._settings
        problem: tuple[post_pb2.DeadLetterReason.ValueType, str] | None = None
        post_id, text, title = post.id, post.text, post.title
        if not post_id:
            problem = (_INVALID, "post has no id")
        elif id_too_long(post_id):
            problem = (_INVALID, f"post id is longer than {MAX_ID_BYTES} bytes")
        elif not post.source_id:
            problem = (_INVALID, "post has no source_id")
        elif (not text or text.isspace()) and (not title or title.isspace()) and not post.parent_id:
            # (``not s or s.isspace()`` is ``not s.strip()`` without copying the text.) A repost or reply without
            # words of its own is a valid post (it spreads its parent); anything else without text is not.
            problem = (_INVALID, "post has neither text nor title (and is not a repost)")
        elif len(text) > limits.max_text_chars:
            problem = (_TOO_LARGE, f"text has {len(text)} characters, the limit is {limits.max_text_chars}")
        elif len(title) > limits.max_title_chars:
            problem = (_TOO_LARGE, f"title has {len(title)} characters, the limit is {limits.max_title_chars}")
        elif min(post.reposts, post.comments, post.likes, post.views, post.author.followers) < 0:
            problem = (_INVALID, "engagement counts must not be negative")
        else:
            # An unset Timestamp reads as 0 s, 0 ns (valid, and not in the future): no HasField needed.
            created = post.created_at
            seconds = created.seconds
            collected = post.collected_at  # a submessage read makes a wrapper object: once, not per field
            bad_time = _bad_time("created_at", seconds, created.nanos) or _bad_time(
                "collected_at", collected.seconds, collected.nanos
            )
            if bad_time:
                # Out of Timestamp's range (years 1-9999) or bad nanos: converting it would raise for the whole batch.
                problem = (_INVALID, bad_time)
            elif seconds > latest:
                problem = (_INVALID, f"created_at {created.ToJsonString()} is in the future")
        if problem is None:
            return None
        return Rejected(
            reason=problem[0],
            message=problem[1],
            payload=post.SerializeToString(),
            source_id=post.source_id,
            origin=post.url or post_id,
        )

    def _enrich(self, posts: list[post_pb2.Post]) -> list[str]:
        """Enrich and dedupe ``posts`` in place, in order (``enrich_posts``); each one's ``dedupe.duplicate_of``
        as written (so it is not read back through a wrapper of the submessage)."""
        raw = []
        for post in posts:
            created = post.created_at  # validated: seconds in range, nanos in [0, 1e9)
            at = _EPOCH + timedelta(0, created.seconds, created.nanos // 1000)  # ToDatetime(UTC)
            raw.append(RawPost(post.id, post.text, at, post.title))
        enriched = enrich_posts(raw, enricher=self._enricher, deduper=self._deduper)
        regions = self._regions
        for post, result in zip(posts, enriched, strict=True):
            fill_post(post, result, regions)
        return [result.dedupe.duplicate_of or "" for result in enriched]

    def _reject(self, work: PreparedSlice, rejected: Rejected, key: str, max_request_size: int) -> None:
        work.results.append(ItemResult(Outcome.REJECTED, rejected=rejected))
        work.records.append(self._dead_letter(rejected, key[:MAX_ID_BYTES], max_request_size))

    def _dead_letter(self, rejected: Rejected, key: str, max_request_size: int) -> OutgoingRecord:
        spec = DeadLetterSpec(
            topic=self._topics.posts,
            key=key,
            reason=rejected.reason,
            message=f"{rejected.message} (at {rejected.origin})" if rejected.origin else rejected.message,
            payload=rejected.payload,
            source=rejected.source_id or _SOURCE,
            headers=(("origin", rejected.origin.encode("utf-8")),) if rejected.origin else (),
        )
        limit = max(1024, max_request_size - _DEADLETTER_RESERVE_BYTES)
        return OutgoingRecord(
            topic=self._topics.posts_deadletter,
            key=key or None,
            message=build_dead_letter(spec, now=self._clock(), max_payload_bytes=limit),
            event_type=DEADLETTER_EVENT_TYPE,
            event_id=spec.event_id,
            extra_headers=((ORIGINAL_TOPIC, self._topics.posts.encode("utf-8")),),
        )


def _stamped(item: post_pb2.Post, now: datetime) -> post_pb2.Post:
    """A copy of the item to enrich, stamped (``_stamp``)."""
    post = post_pb2.Post()
    post.CopyFrom(item)
    return _stamp(post, now)


def _stamp(post: post_pb2.Post, now: datetime) -> post_pb2.Post:
    """``post`` with collected_at (now) and created_at (collected_at) set when missing."""
    if not post.HasField("collected_at"):
        post.collected_at.FromDatetime(now)
    if not post.HasField("created_at"):
        post.created_at.CopyFrom(post.collected_at)
    return post


def _bad_time(name: str, seconds: int, nanos: int) -> str:
    """Why a time is not a valid Timestamp ("" when it is)."""
    if _MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000:
        return ""
    return f"{name} is not a valid time (seconds={seconds}, nanos={nanos})"
