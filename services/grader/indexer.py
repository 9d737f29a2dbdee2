"""The grader's index role: what the grade role published, written into Elasticsearch off the alert path.

A consumer group (``QF_GRADER_INDEX__GROUP_ID``, default ``<consumer group>-index``: ``grader-index``) over two topics
the grade role writes:

- ``qingfeng.events.v1`` (event snapshots, keyed by event id): upserted into the events index of the console
  (``adapters/elastic.ElasticEventIndex``). Within a batch only the last snapshot of each event is written, as the
  compacted topic itself keeps it (a replay publishes the same snapshots again; the last one still wins).
- ``qingfeng.post-events.v1`` (``PostEventAssignments``, one partition, in the grader's batch order): each post's
  event id written onto its posts document where it is not there already (``adapters/post_events.
  ElasticPostEvents``: the collector's indexer reads the same topic and indexes most posts once with their event).
  The batch's assignments are applied no earlier than ``assign_delay_s`` after the newest record's timestamp, to
  give the indexer its chance, and a post it has not indexed yet is waited for up to ``missing_wait_s`` after that
  timestamp (the indexer behind: it will write the post with its event; a stub written now would make it write
  twice); the batch's event snapshots are written at once, without waiting for them (a batch
  read while the previous one still waits is read after it: snapshots lag by at most ``assign_delay_s`` while
  posts are being graded). Records are applied in offset order and a later assignment of a post replaces an earlier
  one in the same batch, so a post re-assigned after a merge ends with the newer event.

Offsets are committed (``qingfeng.kafka.run_batches``) only after Elasticsearch acknowledged both writes of the
batch; a crash in between re-delivers it, and both writes are idempotent. A record that does not decode (or an
event without id) is dead-lettered with the reason and its neighbours go on. While Elasticsearch cannot take a batch
(unreachable, 429/5xx after the bulk writer's retries) nothing is committed: the consumer stops, waits with backoff
(doubling to ``retry_backoff_max_s``) and resumes from the last commit; the grade role does not notice. The lag is
the gauge ``qingfeng_kafka_consumer_lag`` of this group and shows in ``qingfeng status``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Final

from qingfeng.kafka import DeadLetterSender, DeadLetterSpec, Producer, Record, parse_batch, run_batches_resuming
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import event_pb2, post_event_pb2, post_pb2

from services.grader.ports import EventIndex, PostEventIndex
from services.grader.settings import GraderTopics, IndexRoleSettings

__all__ = ["GraderIndexer"]

_log = logging.getLogger(__name__)

_SOURCE: Final = "grader-index"


class GraderIndexer:
    """Writes batches of event snapshots and post -> event assignments; ``run`` keeps consuming until ``stop``."""

    def __init__(
        self,
        events: EventIndex,
        post_events: PostEventIndex | None,
        producer: Producer,
        *,
        kafka: KafkaSettings,
        topics: GraderTopics,
        group_id: str,
        settings: IndexRoleSettings,
        prepare: Callable[[], Awaitable[object]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._events = events
        # Creates the events index family (``ensure_index``) before the first batch, retried like a batch: a process
        # running both roles starts, and grades, while Elasticsearch is still down.
        self._prepare = prepare
        # None: post event ids are off (QF_GRADER_POST_EVENT_IDS=false); the topic is then neither read nor written.
        self._post_events = post_events
        self._dead_letters = DeadLetterSender(producer, source=_SOURCE, topic=topics.deadletter, clock=clock)
        self._kafka = kafka
        self._topics = topics
        self._group_id = group_id
        self._settings = settings
        self._clock = clock
        self.events_indexed = 0  # event documents acknowledged since start (tests, logs)
        self.posts_assigned = 0  # post event ids handled since start (written, or found written by the indexer)
        self.dead_lettered = 0
        self.failures = 0  # batches Elasticsearch did not take (the consumer then backs off)

    @property
    def topics(self) -> list[str]:
        """The topics this role reads."""
        return [self._topics.events] + ([self._topics.post_events_topic] if self._post_events is not None else [])

    async def handle(self, records: list[Record]) -> None:
        """Index one batch; returns once Elasticsearch acknowledged it and every bad record is dead-lettered."""
        events = [r for r in records if r.topic == self._topics.events]
        assigned = [r for r in records if r.topic == self._topics.post_events_topic]
        parsed_events = parse_batch(events, event_pb2.Event)
        parsed_assigned = parse_batch(assigned, post_event_pb2.PostEventAssignments)
        specs = [DeadLetterSpec.from_bad_record(bad, source=_SOURCE) for bad in parsed_events.bad + parsed_assigned.bad]
        latest: dict[str, event_pb2.Event] = {}
        for record, event in parsed_events.good:
            if event.id:
                latest[event.id] = event  # offset order within the event's partition: the last snapshot wins
            else:
                specs.append(_invalid(record, "event snapshot has no id"))
        assignments: dict[str, str] = {}
        for _, message in parsed_assigned.good:
            for pair in message.assignments:
                if pair.post_id and pair.event_id:
                    assignments.pop(pair.post_id, None)  # a re-assignment moves to the end, as it was published
                    assignments[pair.post_id] = pair.event_id
        if specs:
            # Before the writes: a batch whose writes fail is read again, and its dead letters carry stable ids.
            await self._dead_letters.send(specs)
            self.dead_lettered += len(specs)
            _log.warning("dead-lettered %d records", len(specs), extra={"topic": self._topics.deadletter})
        writes = [self._events.index(list(latest.values()))]
        if self._post_events is not None and assignments:
            published = max(r.timestamp_ms for r in assigned) / 1000
            writes.append(self._assign_at(published, self._post_events, assignments))
        await _all_or_none(writes)
        self.events_indexed += len(latest)
        self.posts_assigned += len(assignments)

    @property
    def posts_already_assigned(self) -> int:
        """Assignments found on their documents already (the indexer wrote them): nothing written."""
        return 0 if self._post_events is None else self._post_events.already_assigned

    async def _assign_at(self, published: float, post_events: PostEventIndex, assignments: dict[str, str]) -> None:
        # The wait ends early for a batch read late (a role catching up): its records are due already. Neither wait
        # is ever longer than its setting from now, whatever the grade role's clock wrote into the records.
        now = self._clock().timestamp()
        left = min(published + self._settings.assign_delay_s - now, self._settings.assign_delay_s)
        if left > 0:
            await asyncio.sleep(left)
        # Posts the collector's indexer has not written yet are waited for up to missing_wait_s after publication.
        await post_events.assign(assignments, wait_until=min(published, now) + self._settings.missing_wait_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop``; after a failure (Elasticsearch or Kafka down) wait, then resume from the commit."""
        await run_batches_resuming(
            self._kafka,
            self.topics,
            self._group_id,
            self.handle,
            stop,
            max_records=self._settings.batch_size,
            backoff_s=self._settings.retry_backoff_s,
            backoff_max_s=self._settings.retry_backoff_max_s,
            progress=lambda: self.events_indexed + self.posts_assigned,
            name="grader index role",
            prepare=self._prepare,
            on_failure=self._failed,
        )

    def _failed(self, err: Exception) -> None:
        self.failures += 1  # the runner frees the failed batch before it retries (qingfeng.kafka.consumer)


async def _all_or_none(writes: list[Coroutine[object, object, None]]) -> None:
    """Run the writes at once; when one fails, cancel the others before raising its error.

    The failed batch is read again from the last commit, so a write of it left running has no purpose, and it does
    harm: ``asyncio.gather`` alone leaves the other writes running. During an Elasticsearch outage each failed batch
    left its bulk write retrying in the background (its documents held) while the consumer resumed and failed the
    next batch (the logs of ``bench/bench_memory_growth.py --role index --es-outage`` showed the retries of several
    batches interleaved), and a write left over from an earlier batch could land after the same documents' newer
    writes once Elasticsearch was back: an older snapshot over a newer one.
    """
    tasks = [asyncio.ensure_future(write) for write in writes]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _invalid(record: Record, why: str) -> DeadLetterSpec:
    return DeadLetterSpec(
        topic=record.topic,
        key=record.key_text or "",
        reason=post_pb2.DEAD_LETTER_REASON_INVALID,
        message=why,
        payload=record.value or b"",
        source=_SOURCE,
        headers=record.headers,
        partition=record.partition,
        offset=record.offset,
        parent=record.trace_context,
    )
