"""The posts indexer: a consumer of ``qingfeng.posts.v1`` (group ``collector-indexer``) that bulk-indexes posts.

Each batch becomes one bulk request to the posts write alias with ``_id`` = post id, so a redelivered batch replaces
the same documents (idempotent). The request updates with ``doc_as_upsert`` rather than indexes, so the ``event_id``
the grader writes onto a post survives the post being indexed after it or again. The runner commits the batch's
offsets only after Elasticsearch acknowledged it.

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
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from elasticsearch import AsyncElasticsearch
from google.protobuf.descriptor import FileDescriptor
from qingfeng.elastic import bulk_index
from qingfeng.elastic.words import WordSplitter, default_splitter
from qingfeng.kafka import DeadLetterSender, DeadLetterSpec, Producer, Record, parse_batch, run_batches
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


def _enrichment(e: post_pb2.Enrichment) -> tuple[dict[str, Any], dict[str, Any]]:
    """The enrichment as proto-JSON and its flattened fields; most posts have no tags, so that case is cheap."""
    terms = e.corruption_terms
    titles = e.official_titles
    regions = e.regions
    signals = e.offline_signals
    nested: dict[str, Any] = {
        "corruption_terms": [
            {"term": t.term, "category": _CATEGORY.get(t.category, ""), "count": t.count} for t in terms
        ],
        "official_titles": [
            {"title": o.title, "person_name": o.person_name, "organization": o.organization} for o in titles
        ],
        "regions": [{"code": r.code, "name": r.name} for r in regions],
        "offline_signals": [{"kind": _OFFLINE.get(s.kind, ""), "term": s.term, "planned": s.planned} for s in signals],
        "relevance": e.relevance,
        "relevance_reasons": [
            {"criterion": r.criterion, "value": r.value, "message": r.message} for r in e.relevance_reasons
        ],
        "lexicon_version": e.lexicon_version,
    }
    flat: dict[str, Any] = {
        "corruption_terms": list(dict.fromkeys(t.term for t in terms)) if terms else [],
        "corruption_categories": list(dict.fromkeys(_CATEGORY.get(t.category, "") for t in terms)) if terms else [],
        "official_titles": [o.title for o in titles],
        "region_codes": [r.code for r in regions],
        "region_names": [r.name for r in regions],
        "offline_actions": list(dict.fromkeys(_OFFLINE.get(s.kind, "") for s in signals)) if signals else [],
        "relevance": e.relevance,
        "lexicon_version": e.lexicon_version,
    }
    return nested, flat


def post_document(post: post_pb2.Post, splitter: WordSplitter | None = None) -> dict[str, Any]:
    """The posts-index document of ``post`` (see the module docstring); ``splitter``: the process-wide one."""
    d = post.dedupe
    author = post.author
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
        "text_simplified": post.text_simplified,
        "words": (splitter or default_splitter()).field(post.text_simplified),
        "keywords": list(post.keywords),
        "reposts": post.reposts,
        "comments": post.comments,
        "likes": post.likes,
        "views": post.views,
        "parent_id": post.parent_id,
        "root_id": post.root_id,
        "language": post.language,
        "media_urls": list(post.media_urls),
        "enrichment": enrichment,
        "dedupe": {
            "content_hash": d.content_hash,
            "simhash": str(d.simhash),
            "duplicate_of": d.duplicate_of,
            "duplicate_kind": _DUPLICATE.get(d.duplicate_kind, ""),
            "hamming_distance": d.hamming_distance,
        },
        # Flattened for filters and aggregations (the template's mapping).
        **flat,
        "content_hash": d.content_hash,
        "simhash": f"{d.simhash:016x}",
        "duplicate_of": d.duplicate_of,
    }
    if post.HasField("author"):
        doc["author"] = {
            "id": author.id,
            "name": author.name,
            "followers": author.followers,
            "is_media": author.is_media,
            "is_verified": author.is_verified,
        }
    if post.HasField("created_at"):
        doc["created_at"] = post.created_at.ToJsonString()
    if post.HasField("collected_at"):
        doc["collected_at"] = post.collected_at.ToJsonString()
    return doc


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
        self._splitter = default_splitter()
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
        docs = [(post_id, post_document(post, self._splitter)) for post_id, (_, post) in latest.items()]
        if docs:
            # merge: a post the grader already gave an event id keeps it when re-indexed (or indexed after it).
            result = await bulk_index(
                self._es, self._alias, docs, chunk_docs=max(500, self._settings.batch_size), merge=True
            )
            transient = [f for f in result.failed if f.status != _REFUSED]
            if transient:
                first = transient[0]
                raise IndexingUnavailable(
                    f"{len(transient)} of {len(docs)} posts not indexed into {self._alias}: "
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
        delay = self._settings.retry_backoff_s
        while not stop.is_set():
            indexed_before = self.indexed
            try:
                await run_batches(
                    self._kafka,
                    [self._topics.posts],
                    self._settings.group_id,
                    self.handle,
                    stop,
                    max_records=self._settings.batch_size,
                )
                return
            except Exception as err:  # any failure: nothing of the failed batch was committed; resume after a pause
                if self.indexed > indexed_before:
                    delay = self._settings.retry_backoff_s  # it made progress since the last failure
                _log.warning("indexer stopped: %s; resuming in %.1fs", err, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self._settings.retry_backoff_max_s)
