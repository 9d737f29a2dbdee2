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
- Memory stays bounded whatever Elasticsearch does: at most ``batches_in_flight`` batches (``batch_size`` records
  each, default one) are held while they are written (``qingfeng.kafka.BatchWindow``: with two, while behind, the
  next batch is decoded and sent while the last requests of the one before are indexed; commits stay in order), plus
  aiokafka's prefetch
  (``max_partition_fetch_bytes``, 1 MB per partition), plus the event ids of at most ``event_ids_max`` posts (about
  240 bytes each); a slow bulk request just delays the next poll. The lag is the gauge
  ``qingfeng_kafka_consumer_lag`` (``run_batches``) and ``qingfeng status``.

Documents (``services.collector.documents``) are built straight into the JSON bytes of their bulk lines.

Each post is indexed once with its event (issue 13): ``services.collector.event_ids`` follows the grader's
post-events topic, and before a batch is written ``handle`` waits, while the grader is publishing, until every post
of the batch has its assignment or its deadline passed (record timestamp + ``event_wait_s``). The documents then
carry ``event_id``; the grader's index role writes only those still missing or different. The wait is inside
``handle``, so the batch's offsets are still committed only after Elasticsearch acknowledged it. ``event_ids=false``
turns the join off (documents without ``event_id``, the bytes of before).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Final

from elasticsearch import AsyncElasticsearch
from qingfeng.elastic import bulk_index
from qingfeng.elastic.words import default_splitter
from qingfeng.kafka import DeadLetterSender, DeadLetterSpec, Producer, Record, parse_batch, run_batches_resuming
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import post_pb2

from services.collector.documents import DocumentBuilder, post_document
from services.collector.errors import IndexingUnavailable
from services.collector.event_ids import AssignmentTail
from services.collector.settings import CollectorTopics, IndexerSettings

__all__ = ["PostIndexer", "post_document"]

_log = logging.getLogger(__name__)

_SOURCE: Final = "collector-indexer"
# The status of a document that will never index however often it is retried (the document itself is wrong: a
# mapping conflict). Any other failure (401/403/404 of a misconfigured cluster, 429/5xx) is retried, never dropped.
_REFUSED: Final = 400


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
        self._documents = DocumentBuilder(default_splitter())
        self.indexed = 0  # documents acknowledged since start, for logs and the benchmark
        self.with_event = 0  # of those, documents written with their event id
        self.event_ids: AssignmentTail | None = (
            AssignmentTail(
                kafka,
                settings.post_events_topic,
                lookback_s=settings.event_lookback_s,
                max_posts=settings.event_ids_max,
                active_s=settings.event_active_s,
            )
            if settings.event_ids
            else None
        )

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
        if latest:
            if self.event_ids is not None:
                wait = self._settings.event_wait_s
                self.event_ids.follow(max(record.timestamp_ms for record, _ in latest.values()) / 1000)
                await self.event_ids.wait_for(
                    [(post_id, record.timestamp_ms / 1000 + wait) for post_id, (record, _) in latest.items()]
                )
            # merge: a post the grader already gave an event id keeps it when re-indexed (or indexed after it), and
            # one without an assignment yet is written without the field. The documents are built lazily, a
            # request at a time, while the requests before are in flight.
            result = await bulk_index(
                self._es,
                self._alias,
                self._documents_of(latest),
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

    def _documents_of(self, latest: dict[str, tuple[Record, post_pb2.Post]]) -> Iterator[tuple[str, bytes]]:
        """(post id, bulk line) of each post, built as the bulk writer takes them, with the event id known at that
        moment (looked up through the map's own dict method, not a Python call per post; counted in
        ``with_event``)."""
        line = self._documents.line
        if self.event_ids is None:
            for post_id, (_, post) in latest.items():
                yield post_id, line(post, None)
            return
        lookup = self.event_ids.known.lookup
        for post_id, (_, post) in latest.items():
            event_id = lookup(post_id)
            if event_id is not None:
                self.with_event += 1
            yield post_id, line(post, event_id)

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
        """Consume until ``stop``; after a failure (Elasticsearch or Kafka down) wait, then resume from the commit.
        The post-events reader runs beside it for as long."""
        reader = asyncio.create_task(self.event_ids.run(stop)) if self.event_ids is not None else None
        try:
            await self._consume(stop)
        finally:
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _consume(self, stop: asyncio.Event) -> None:
        await run_batches_resuming(
            self._kafka,
            [self._topics.posts],
            self._settings.group_id,
            self.handle,
            stop,
            max_records=self._settings.batch_size,
            batches_in_flight=self._settings.batches_in_flight,
            backoff_s=self._settings.retry_backoff_s,
            backoff_max_s=self._settings.retry_backoff_max_s,
            progress=lambda: self.indexed,
            name="indexer",
        )
