"""The posts indexer: a consumer of ``qingfeng.posts.v1`` (group ``collector-indexer``) that bulk-indexes posts.

Each batch is written to the posts write alias with ``_id`` = post id, so a redelivered batch replaces the same
documents (idempotent); it goes out as bulk requests of ``bulk_docs`` documents, up to ``bulk_concurrency`` in flight
while the next request's documents are built (issue 12: the indexer and Elasticsearch no longer wait for each other).
The requests update with ``doc_as_upsert`` rather than index, so the ``event_id`` the grader writes onto a post
survives the post being indexed after it or again. The runner commits the batch's offsets only after Elasticsearch
acknowledged every request of it.

- A record that does not decode as a ``Post`` is dead-lettered to ``qingfeng.deadletter.v1`` (reason UNDECODABLE).
- A document Elasticsearch refuses for good (a mapping conflict: 400) is dead-lettered with PROCESSING_ERROR and the
  reason Elasticsearch gave; the rest of the batch is indexed and committed.
- When Elasticsearch cannot take the batch at all (unreachable, 429/5xx after the bulk writer's retries), nothing is
  committed: the consumer stops, waits with backoff and resumes from the last commit. Collection is not affected;
  posts wait on Kafka (indexing lag) until Elasticsearch is back.
- Memory stays bounded whatever Elasticsearch does: one batch (``batch_size`` records) is held while it is written,
  plus aiokafka's prefetch (``max_partition_fetch_bytes``, 1 MB per partition); a slow bulk request just delays the
  next poll. The lag is the gauge ``qingfeng_kafka_consumer_lag`` (``run_batches``) and ``qingfeng status``.

Documents hold the post's proto-JSON fields (proto field names) plus the flattened fields the posts template indexes
(``corruption_categories``, ``region_codes``, ``relevance``, ``duplicate_of`` …), which ``gateway/documents.py``
reads back, and ``words``: ``text_simplified`` cut into words by the same splitter the gateway cuts queries with
(``qingfeng.elastic.words``), so search can match and rank whole Chinese words. They are built by hand rather
than with ``json_format.MessageToDict``, which is several times slower
and would make indexing the bottleneck of the end-to-end rate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

from elasticsearch import AsyncElasticsearch
from google.protobuf import timestamp_pb2
from google.protobuf.descriptor import FileDescriptor
from qingfeng.elastic import bulk_index
from qingfeng.elastic.words import WordSplitter, default_splitter
from qingfeng.kafka import DeadLetterSender, DeadLetterSpec, Producer, Record, parse_batch, run_batches_resuming
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import common_pb2, post_pb2

from services.collector.errors import IndexingUnavailable
from services.collector.settings import CollectorTopics, IndexerSettings

__all__ = ["PostIndexer", "post_document"]

_log = logging.getLogger(__name__)

_SOURCE: Final = "collector-indexer"
# The status of a document that will never index however often it is retried (the document itself is wrong: a
# mapping conflict). Any other failure (401/403/404 of a misconfigured cluster, 429/5xx) is retried, never dropped.
_REFUSED: Final = 400


def _names(file: FileDescriptor, enum: str) -> dict[int, str]:
    # Enum value -> name as a plain dict: ``Name()`` goes through the descriptor on every call.
    return {value.number: value.name for value in file.enum_types_by_name[enum].values}


_SOURCE_KIND: Final = _names(common_pb2.DESCRIPTOR, "SourceKind")
_CATEGORY: Final = _names(post_pb2.DESCRIPTOR, "CorruptionCategory")
_OFFLINE: Final = _names(post_pb2.DESCRIPTOR, "OfflineActionKind")
_DUPLICATE: Final = _names(post_pb2.DESCRIPTOR, "DuplicateKind")


# Documents of posts without tags share these (copied into each document: documents are mutable dicts).
_EMPTY: Final[tuple[()]] = ()

# Timestamp.ToJsonString's valid range (years 1..9999); outside it the slow path raises as it always did.
_MIN_SECONDS: Final = -62_135_596_800
_MAX_SECONDS: Final = 253_402_300_799
_EPOCH: Final = datetime(1970, 1, 1)
# Memo bounds: a batch's posts share collected_at and many created_at seconds; repeated texts (reposts, copies)
# share their words. Cleared when full, so memory stays bounded whatever the input (about 16 MB of text at most).
_TIMES_MAX: Final = 8192
_WORDS_MAX_CHARS: Final = 4_000_000


def _json_time(seconds: int, nanos: int) -> str:
    """``Timestamp.ToJsonString`` of (seconds, nanos), the same text, without the message and its validity check."""
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000):
        return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos).ToJsonString()  # raises, as it did before
    text = (_EPOCH + timedelta(0, seconds)).isoformat()
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


class _DocumentBuilder:
    """``post_document`` with memos: the words of a text seen recently and the JSON of a time seen recently.

    Both are pure functions of their key (one splitter per builder), so a memo hit gives exactly what a miss would.
    """

    __slots__ = ("_splitter", "_times", "_words", "_words_chars")

    def __init__(self, splitter: WordSplitter) -> None:
        self._splitter = splitter
        self._times: dict[tuple[int, int], str] = {}
        self._words: dict[str, str] = {}
        self._words_chars = 0

    def words(self, text: str) -> str:
        words = self._words.get(text)
        if words is None:
            words = self._splitter.field(text)
            if self._words_chars + len(text) > _WORDS_MAX_CHARS:
                self._words.clear()
                self._words_chars = 0
            self._words[text] = words
            self._words_chars += len(text)
        return words

    def time(self, stamp: timestamp_pb2.Timestamp) -> str:
        key = (stamp.seconds, stamp.nanos)
        text = self._times.get(key)
        if text is None:
            text = _json_time(*key)
            if len(self._times) >= _TIMES_MAX:
                self._times.clear()
            self._times[key] = text
        return text

    def document(self, post: post_pb2.Post) -> dict[str, Any]:
        # Each protobuf field is read once: an attribute of a upb message costs far more than a local.
        d = post.dedupe
        content_hash = d.content_hash
        simhash = d.simhash
        duplicate_of = d.duplicate_of
        text_simplified = post.text_simplified
        keywords = post.keywords
        media_urls = post.media_urls
        enrichment, flat = _enrichment(post.enrichment)
        doc: dict[str, Any] = {
            "id": post.id,
            "source_id": post.source_id,
            "source_kind": _SOURCE_KIND.get(post.source_kind, ""),
            "native_id": post.native_id,
            "url": post.url,
            "platform": post.platform,
            "title": post.title,
            "text": post.text,
            "text_simplified": text_simplified,
            "words": self.words(text_simplified),
            "keywords": list(keywords) if keywords else [],
            "reposts": post.reposts,
            "comments": post.comments,
            "likes": post.likes,
            "views": post.views,
            "parent_id": post.parent_id,
            "root_id": post.root_id,
            "language": post.language,
            "media_urls": list(media_urls) if media_urls else [],
            "enrichment": enrichment,
            "dedupe": {
                "content_hash": content_hash,
                "simhash": str(simhash),
                "duplicate_of": duplicate_of,
                "duplicate_kind": _DUPLICATE.get(d.duplicate_kind, ""),
                "hamming_distance": d.hamming_distance,
            },
            # Flattened for filters and aggregations (the template's mapping).
            **flat,
            "content_hash": content_hash,
            "simhash": f"{simhash:016x}",
            "duplicate_of": duplicate_of,
        }
        if post.HasField("author"):
            author = post.author
            doc["author"] = {
                "id": author.id,
                "name": author.name,
                "followers": author.followers,
                "is_media": author.is_media,
                "is_verified": author.is_verified,
            }
        if post.HasField("created_at"):
            doc["created_at"] = self.time(post.created_at)
        if post.HasField("collected_at"):
            doc["collected_at"] = self.time(post.collected_at)
        return doc


def _enrichment(e: post_pb2.Enrichment) -> tuple[dict[str, Any], dict[str, Any]]:
    """The enrichment as proto-JSON and its flattened fields; most posts have no tags, so that case is cheap."""
    terms = e.corruption_terms or _EMPTY
    titles = e.official_titles or _EMPTY
    regions = e.regions or _EMPTY
    signals = e.offline_signals or _EMPTY
    reasons = e.relevance_reasons or _EMPTY
    relevance = e.relevance
    lexicon_version = e.lexicon_version
    nested: dict[str, Any] = {
        "corruption_terms": [
            {"term": t.term, "category": _CATEGORY.get(t.category, ""), "count": t.count} for t in terms
        ],
        "official_titles": [
            {"title": o.title, "person_name": o.person_name, "organization": o.organization} for o in titles
        ],
        "regions": [{"code": r.code, "name": r.name} for r in regions],
        "offline_signals": [{"kind": _OFFLINE.get(s.kind, ""), "term": s.term, "planned": s.planned} for s in signals],
        "relevance": relevance,
        "relevance_reasons": [{"criterion": r.criterion, "value": r.value, "message": r.message} for r in reasons],
        "lexicon_version": lexicon_version,
    }
    if terms:
        term_list = nested["corruption_terms"]
        flat_terms = list(dict.fromkeys(t["term"] for t in term_list))
        categories = list(dict.fromkeys(t["category"] for t in term_list))
    else:
        flat_terms, categories = [], []
    if regions:
        region_list = nested["regions"]
        codes = [r["code"] for r in region_list]
        names = [r["name"] for r in region_list]
    else:
        codes, names = [], []
    flat: dict[str, Any] = {
        "corruption_terms": flat_terms,
        "corruption_categories": categories,
        "official_titles": [o["title"] for o in nested["official_titles"]] if titles else [],
        "region_codes": codes,
        "region_names": names,
        "offline_actions": list(dict.fromkeys(s["kind"] for s in nested["offline_signals"])) if signals else [],
        "relevance": relevance,
        "lexicon_version": lexicon_version,
    }
    return nested, flat


def post_document(post: post_pb2.Post, splitter: WordSplitter | None = None) -> dict[str, Any]:
    """The posts-index document of ``post`` (see the module docstring); ``splitter``: the process-wide one."""
    return _builder(splitter or default_splitter()).document(post)


@lru_cache(maxsize=4)
def _builder(splitter: WordSplitter) -> _DocumentBuilder:
    # One per splitter (in practice the process-wide one), so the memos last across batches and callers.
    return _DocumentBuilder(splitter)


class PostIndexer:
    """Indexes batches of post records; ``run`` keeps the consumer going (with backoff) until ``stop`` is set."""

    def __init__(
        self,
        es: AsyncElasticsearch,
        alias: str,
        producer: Producer,
        *,
        kafka: KafkaSettings,
        topics: CollectorTopics,
        settings: IndexerSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._es = es
        self._alias = alias
        self._dead_letters = DeadLetterSender(producer, source=_SOURCE, topic=topics.deadletter, clock=clock)
        self._kafka = kafka
        self._topics = topics
        self._settings = settings
        # Its own memos (not post_document's), so what other callers built beforehand never warms them.
        self._documents = _DocumentBuilder(default_splitter())
        self.indexed = 0  # documents acknowledged since start, for logs and the benchmark

    async def handle(self, records: list[Record]) -> None:
        """Index one batch; returns once Elasticsearch acknowledged it and every bad record is dead-lettered."""
        batch = parse_batch(records, post_pb2.Post)
        # The last version of a post in the batch wins, as it would in two consecutive bulk requests.
        latest: dict[str, tuple[Record, post_pb2.Post]] = {}
        specs = [DeadLetterSpec.from_bad_record(bad, source=_SOURCE) for bad in batch.bad]
        for record, post in batch.good:
            if post.id:
                latest[post.id] = (record, post)
            else:
                specs.append(self._refused(record, "post has no id"))
        document = self._documents.document
        if latest:
            # merge: a post the grader already gave an event id keeps it when re-indexed (or indexed after it).
            # The documents are built lazily, a request at a time, while the requests before are in flight.
            result = await bulk_index(
                self._es,
                self._alias,
                ((post_id, document(post)) for post_id, (_, post) in latest.items()),
                chunk_docs=self._settings.bulk_docs,
                concurrency=self._settings.bulk_concurrency,
                merge=True,
            )
            transient = [f for f in result.failed if f.status != _REFUSED]
            if transient:
                first = transient[0]
                raise IndexingUnavailable(
                    f"{len(transient)} of {len(latest)} posts not indexed into {self._alias}: "
                    f"{first.status} {first.error_type}: {first.reason}"
                )
            self.indexed += result.indexed
            for failure in result.failed:
                record, _ = latest[failure.id]
                specs.append(self._refused(record, f"{failure.status} {failure.error_type}: {failure.reason}"))
        if specs:
            await self._dead_letters.send(specs)
            _log.warning("dead-lettered %d post records", len(specs), extra={"topic": self._topics.deadletter})

    def _refused(self, record: Record, why: str) -> DeadLetterSpec:
        return DeadLetterSpec(
            topic=record.topic,
            key=record.key_text or "",
            reason=post_pb2.DEAD_LETTER_REASON_PROCESSING_ERROR,
            message=f"elasticsearch refused the post: {why}",
            payload=record.value or b"",
            source=_SOURCE,
            headers=record.headers,
            partition=record.partition,
            offset=record.offset,
            parent=record.trace_context,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop``; after a failure (Elasticsearch or Kafka down) wait, then resume from the commit."""
        await run_batches_resuming(
            self._kafka,
            [self._topics.posts],
            self._settings.group_id,
            self.handle,
            stop,
            max_records=self._settings.batch_size,
            backoff_s=self._settings.retry_backoff_s,
            backoff_max_s=self._settings.retry_backoff_max_s,
            progress=lambda: self.indexed,
            name="indexer",
        )
