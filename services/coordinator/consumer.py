"""The coordinator's Kafka input: alerts, event snapshots (only their merge redirects matter here) and publications,
one consumer group, commit after the database commit (``run_batches``). Every input is idempotent (processed-once
keys in the same transaction as its effect), so a redelivered batch changes nothing. Undecodable records go to the
dead-letter topic with the reason; the loop restarts with backoff after a failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from qingfeng.kafka import BadRecord, DeadLetterSender, Record, parse, run_batches_resuming
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import event_pb2, post_pb2, publication_pb2

from services.coordinator.convert import from_timestamp
from services.coordinator.core.cases import AlertView
from services.coordinator.core.model import Level
from services.coordinator.errors import InvalidArgument
from services.coordinator.handling import Handling
from services.coordinator.settings import ConsumerSettings, CoordinatorTopics

__all__ = ["InputConsumer", "alert_view"]

_log = logging.getLogger(__name__)
_INVALID = post_pb2.DEAD_LETTER_REASON_INVALID


def _level(value: int) -> Level:
    return Level(value) if value in Level._value2member_map_ else Level.NONE


def alert_view(alert: event_pb2.Alert, received_at: datetime) -> AlertView:
    at = from_timestamp(alert.emitted_at) if alert.HasField("emitted_at") else received_at
    reasons = [(r.criterion, r.value) for r in alert.reasons]
    reasons += [(r.criterion, r.value) for r in alert.grade.reasons]
    return AlertView(
        id=alert.id or f"{alert.event_id}:{alert.sequence}",
        event_id=alert.event_id,
        sequence=alert.sequence,
        from_level=_level(alert.from_level),
        to_level=_level(alert.to_level),
        title=alert.event_title,
        at=at,
        regions=tuple((r.code, r.name) for r in alert.regions),
        reasons=tuple(reasons),
        reason_texts=tuple(dict.fromkeys(r.message for r in (*alert.reasons, *alert.grade.reasons) if r.message)),
        relevance=alert.corruption_relevance if alert.HasField("corruption_relevance") else None,
    )


class InputConsumer:
    def __init__(
        self,
        kafka: KafkaSettings,
        topics: CoordinatorTopics,
        settings: ConsumerSettings,
        handling: Handling,
        dead_letters: DeadLetterSender,
        clock: Callable[[], datetime],
    ) -> None:
        self._kafka = kafka
        self._topics = topics
        self._settings = settings
        self._handling = handling
        self._dead_letters = dead_letters
        self._clock = clock
        self._handled = 0  # records handled (and committed to the database): what the resume loop calls progress

    async def handle(self, records: list[Record]) -> None:
        """One batch, in offset order per partition; returns once every effect is committed to the database."""
        bad: list[BadRecord] = []
        for record in records:
            with record.traced():
                problem = await self._one(record)
            if problem is not None:
                bad.append(problem)
        if bad:
            await self._dead_letters.send_bad(bad)
        self._handled += len(records)

    async def _one(self, record: Record) -> BadRecord | None:
        now = self._clock()
        if record.topic == self._topics.alerts:
            alert = parse(record, event_pb2.Alert)
            if isinstance(alert, BadRecord):
                return alert
            if not alert.event_id:
                return BadRecord(record, _INVALID, "alert without event_id")
            try:
                view = alert_view(alert, now)
            except InvalidArgument as err:  # emitted_at outside years 1-9999: this record only, not the batch
                return BadRecord(record, _INVALID, f"alert {err}")
            await self._handling.on_alert(view, now)
        elif record.topic == self._topics.events:
            if record.value is None:
                return None  # a compaction tombstone
            event = parse(record, event_pb2.Event)
            if isinstance(event, BadRecord):
                return event
            await self._handling.on_event_snapshot(event.id, list(event.representative_post_ids), now)
            if event.merged_into:
                await self._handling.on_merge(event.id, event.merged_into, now)
        elif record.topic == self._topics.publications:
            publication = parse(record, publication_pb2.Publication)
            if isinstance(publication, BadRecord):
                return publication
            if publication.status == publication_pb2.PUBLICATION_STATUS_PUBLISHED and publication.case_id:
                try:
                    at = from_timestamp(publication.published_at) if publication.HasField("published_at") else now
                except InvalidArgument as err:
                    return BadRecord(record, _INVALID, f"publication {err}")
                await self._handling.on_publication(publication.id, publication.case_id, at, now)
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop``; after a failure wait (doubling, reset once a batch went through) and resume from
        the last commit."""
        await run_batches_resuming(
            self._kafka,
            [self._topics.alerts, self._topics.events, self._topics.publications],
            self._settings.group_id,
            self.handle,
            stop,
            max_records=self._settings.batch_size,
            backoff_s=self._settings.retry_backoff_s,
            backoff_max_s=self._settings.retry_backoff_max_s,
            progress=lambda: self._handled,
            name="coordinator consumer",
        )
