"""Kafka adapters of the grader: the posts reader, the alerts/events publisher, and the alert log for recovery.

- ``KafkaPostReader`` (``PostReader``) assigns itself every partition of the posts topic instead of joining a
  consumer group: the grader's state is one global fold over all posts, so it is a singleton (one replica), and it
  resumes from the offsets stored with its checkpoint, not from the group's. It still commits to its group after
  each batch so lag shows in the usual tools.
- ``KafkaOutputSink`` (``OutputSink``) produces alerts (key event id, event type ``alert.level_changed``, event id
  "<event_id>:<sequence>"), event snapshots (compacted topic, key event id, event type ``event.graded``, event
  id "<event_id>:v<version>") and the batch's post -> event assignments (``PostEventAssignments`` of at most
  ``ASSIGNMENTS_PER_RECORD`` pairs, key ``grader``, event type ``post.event_assigned``, event id "pe:<sha256 of the
  pairs>", so a replay publishes the same ids) through the shared idempotent producer, in one round of
  acknowledgements.
- ``KafkaAlertLog`` (``AlertLog``) reads the alerts topic from given offsets to its current end and returns the
  alert ids found there: what a recovery must not publish again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from qingfeng.kafka import EVENT_ID, OutgoingRecord, Producer, Record
from qingfeng.kafka.headers import header_value
from qingfeng.kafka.records import record_of
from qingfeng.kafka.security import client_kwargs
from qingfeng.kafka.topics import partition_ids
from qingfeng.settings import KafkaSettings
from qingfeng.trace_keep import keep
from qingfeng.v1 import event_pb2, post_event_pb2

from services.grader.errors import Unavailable
from services.grader.ports import Outputs

__all__ = [
    "ALERT_EVENT_TYPE",
    "ASSIGNMENTS_PER_RECORD",
    "EVENT_EVENT_TYPE",
    "POST_EVENTS_EVENT_TYPE",
    "POST_EVENTS_KEY",
    "KafkaAlertLog",
    "KafkaOutputSink",
    "KafkaPostReader",
    "topic_partitions",
]

_log = logging.getLogger(__name__)

ALERT_EVENT_TYPE: Final = "alert.level_changed"
EVENT_EVENT_TYPE: Final = "event.graded"
POST_EVENTS_EVENT_TYPE: Final = "post.event_assigned"
# One key for every assignments record: should the topic have more than one partition, they still share one, in order.
POST_EVENTS_KEY: Final = "grader"
# Pairs per record: ~2,000 x ~70 bytes stays far below the producer's request size whatever the batch size.
ASSIGNMENTS_PER_RECORD: Final = 2000


async def topic_partitions(settings: KafkaSettings, topic: str, *, timeout_s: float = 30.0) -> list[int]:
    """The partition ids of ``topic`` (waits for the metadata of a topic created a moment ago)."""
    found = await partition_ids(settings, topic, wait_s=timeout_s, client="grader-admin")
    if not found:
        raise Unavailable(f"topic {topic} has no partitions available")
    return found


class KafkaPostReader:
    """``PostReader`` over one posts topic, every partition assigned to this process."""

    def __init__(self, settings: KafkaSettings, topic: str, group_id: str, *, max_records: int) -> None:
        self._settings = settings
        self._topic = topic
        self._group_id = group_id
        self._max_records = max_records
        self._consumer: Any = None
        self._partitions: list[int] = []
        self._positions: dict[int, int] = {}

    async def start(self) -> None:
        if self._consumer is not None:
            return
        self._partitions = await topic_partitions(self._settings, self._topic)
        consumer = AIOKafkaConsumer(
            **client_kwargs(self._settings),
            client_id=f"{self._settings.client_id}-grader",
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            request_timeout_ms=int(self._settings.request_timeout_s * 1000),
            max_poll_records=self._max_records,
        )
        await consumer.start()
        consumer.assign([TopicPartition(self._topic, p) for p in self._partitions])
        self._consumer = consumer

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def partitions(self) -> list[int]:
        return list(self._partitions)

    async def seek(self, positions: Mapping[int, int], *, default: str) -> dict[int, int]:
        consumer = self._require()
        tps = [TopicPartition(self._topic, p) for p in self._partitions]
        missing = [tp for tp in tps if tp.partition not in positions]
        # Concrete offsets for the others, so the caller knows every partition's position.
        if not missing:
            resolved: dict[Any, int] = {}
        elif default == "latest":
            resolved = await consumer.end_offsets(missing)
        else:
            resolved = await consumer.beginning_offsets(missing)
        out: dict[int, int] = {}
        for tp in tps:
            out[tp.partition] = positions[tp.partition] if tp.partition in positions else resolved[tp]
            consumer.seek(tp, out[tp.partition])
        self._positions = dict(out)
        return out

    async def fetch(self, partitions: Sequence[int], timeout_ms: int, max_records: int) -> dict[int, list[Record]]:
        consumer = self._require()
        tps = [TopicPartition(self._topic, p) for p in partitions]
        fetched = await consumer.getmany(*tps, timeout_ms=timeout_ms, max_records=max_records)
        for tp in tps:
            # The fetch position also moves past records a consumer never sees (transaction markers), which the
            # offset after the last record returned would not: without it a partition could never look caught up.
            self._positions[tp.partition] = await consumer.position(tp)
        return {tp.partition: [record_of(m) for m in msgs] for tp, msgs in fetched.items() if msgs}

    def caught_up(self, partition: int, next_offset: int) -> bool:
        consumer = self._require()
        tp = TopicPartition(self._topic, partition)
        end = consumer.last_stable_offset(tp)
        if end is None:
            end = consumer.highwater(tp)
        return end is not None and max(next_offset, self._positions.get(partition, 0)) >= end

    def lag(self, partition: int, next_offset: int) -> int:
        consumer = self._require()
        tp = TopicPartition(self._topic, partition)
        end = consumer.last_stable_offset(tp)
        if end is None:
            end = consumer.highwater(tp)
        return 0 if end is None else max(0, end - max(next_offset, self._positions.get(partition, 0)))

    async def commit(self, positions: Mapping[int, int]) -> None:
        if not positions:
            return
        try:
            await self._require().commit({TopicPartition(self._topic, p): o for p, o in positions.items()})
        except KafkaError as err:  # informational only: the checkpoint, not the group, says where to resume
            _log.warning("offset commit to group %s failed: %s", self._group_id, err)

    async def committed(self) -> dict[int, int]:
        consumer = self._require()
        tps = [TopicPartition(self._topic, p) for p in self._partitions]
        offsets = await asyncio.gather(*(consumer.committed(tp) for tp in tps))
        return {tp.partition: int(o) for tp, o in zip(tps, offsets, strict=True) if o is not None and o >= 0}

    def _require(self) -> Any:
        if self._consumer is None:
            raise RuntimeError("KafkaPostReader.start() has not been called")
        return self._consumer


class KafkaOutputSink:
    """``OutputSink``: alerts, event snapshots and post -> event assignments through the shared producer."""

    def __init__(
        self, producer: Producer, *, alerts_topic: str, events_topic: str, post_events_topic: str | None = None
    ) -> None:
        self._producer = producer
        self._alerts = alerts_topic
        self._events = events_topic
        self._post_events = post_events_topic

    async def publish(self, outputs: Outputs) -> dict[int, int]:
        causes = outputs.causes
        records = [
            # keep(): an alert's trace is exported whatever the sampling ratio (qingfeng.trace_keep).
            OutgoingRecord(self._alerts, a.event_id, a, ALERT_EVENT_TYPE, a.id, parent=keep(causes.get(a.event_id)))
            for a in outputs.alerts
        ] + [
            OutgoingRecord(self._events, e.id, e, EVENT_EVENT_TYPE, f"{e.id}:v{e.version}", parent=causes.get(e.id))
            for e in outputs.events
        ]
        if self._post_events is not None and outputs.assignments:
            records += [
                OutgoingRecord(
                    self._post_events, POST_EVENTS_KEY, message, POST_EVENTS_EVENT_TYPE, assignments_id(message)
                )
                for message in assignment_records(outputs.assignments)
            ]
        if not records:
            return {}
        deliveries = await self._producer.send_many(records)
        written: dict[int, int] = {}
        for d in deliveries:
            if d.topic == self._alerts and d.offset + 1 > written.get(d.partition, -1):
                written[d.partition] = d.offset + 1
        return written


def assignment_records(assignments: Mapping[str, str]) -> list[post_event_pb2.PostEventAssignments]:
    """The assignments as records of at most ``ASSIGNMENTS_PER_RECORD`` pairs, in their order."""
    pairs = [post_event_pb2.PostEventAssignment(post_id=p, event_id=e) for p, e in assignments.items()]
    return [
        post_event_pb2.PostEventAssignments(assignments=pairs[start : start + ASSIGNMENTS_PER_RECORD])
        for start in range(0, len(pairs), ASSIGNMENTS_PER_RECORD)
    ]


def assignments_id(message: post_event_pb2.PostEventAssignments) -> str:
    """A record's event id from its content: the same batch replayed after a crash carries the same id."""
    digest = hashlib.sha256(message.SerializeToString(deterministic=True)).hexdigest()
    return f"pe:{digest[:32]}"


class KafkaAlertLog:
    """``AlertLog``: the alert ids on the alerts topic from given offsets to the end as of the call."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self._settings = settings
        self._topic = topic

    async def emitted(self, since: Mapping[int, int]) -> set[str]:
        partitions = await topic_partitions(self._settings, self._topic)
        consumer = AIOKafkaConsumer(
            **client_kwargs(self._settings),
            client_id=f"{self._settings.client_id}-grader-alertlog",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # an offset already deleted by retention: from what is left
            isolation_level="read_committed",
            request_timeout_ms=int(self._settings.request_timeout_s * 1000),
        )
        await consumer.start()
        found: set[str] = set()
        try:
            tps = [TopicPartition(self._topic, p) for p in partitions]
            consumer.assign(tps)
            ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
            for tp in tps:
                if tp.partition in since:
                    consumer.seek(tp, since[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
            while pending:
                fetched = await consumer.getmany(*pending, timeout_ms=1000, max_records=5000)
                for msgs in fetched.values():
                    for msg in msgs:
                        alert_id = _alert_id(msg)
                        if alert_id:
                            found.add(alert_id)
                pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        finally:
            await consumer.stop()
        _log.info("alert log read", extra={"topic": self._topic, "since": dict(since), "alerts": len(found)})
        return found


def _alert_id(msg: Any) -> str | None:
    headers = [(str(k), bytes(v)) for k, v in (msg.headers or ()) if v is not None]
    alert_id = header_value(headers, EVENT_ID)
    if alert_id:
        return alert_id
    try:  # a record without our headers: read the id from the payload
        return event_pb2.Alert.FromString(msg.value or b"").id or None
    except Exception:  # not an alert at all: nothing to suppress
        return None
