"""What the soak sees downstream: every record on the posts and alerts topics while it runs, and Elasticsearch after.

Posts topic: how often each post id was produced (keys are post ids), read_committed. Alerts topic: every alert
with the wall time it arrived here. Latency of an alert = arrival - ``grade.graded_at``, which is the ``created_at``
of the post that tipped it (as in bench/bench_grader_latency.py); the feeder stamps ``created_at`` when it sends the
line to ImportPosts, so the figure covers feed -> collector -> Kafka -> grader -> alerts topic, a little more than
the target's "post into Kafka -> alert". That difference matters around a broker restart: a post sent while the broker
is down waits in the collector (or the feeder re-sends it) and counts the outage itself. So the observer also notes
when it first read each post on the posts topic (keyed by its ``created_at`` in microseconds, which the feeder stamps
per line and the alert carries as ``graded_at``): alert arrival minus that is "post into Kafka -> alert", measured
by one reader of both topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC

from aiokafka import AIOKafkaConsumer, TopicPartition
from elasticsearch import Elasticsearch, helpers
from qingfeng.kafka import ALERTS, POSTS
from qingfeng.kafka.topics import POST_EVENTS
from qingfeng.v1 import event_pb2, post_event_pb2, post_pb2

__all__ = ["EsAudit", "Observer", "SeenAlert", "audit_elasticsearch"]

# The broker is restarted on purpose: its reconnect warnings (hundreds a second) would bury the soak's own lines.
logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class SeenAlert:
    arrived: float  # time.time()
    latency_s: float
    id: str
    event_id: str
    from_level: int
    to_level: int
    sequence: int
    graded_us: int = 0  # grade.graded_at in microseconds: the created_at of the post that tipped the alert


@dataclass
class Observer:
    """Consumes both topics from the beginning in a thread of its own until ``stop``."""

    bootstrap: str
    posts_topic: str = POSTS
    alerts_topic: str = ALERTS
    post_events_topic: str = POST_EVENTS
    produced: Counter[str] = field(default_factory=Counter)
    # post id -> the grader's last assignment on the post-events topic (what ES should hold after the drain).
    last_event: dict[str, str] = field(default_factory=dict)
    alerts: list[SeenAlert] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    # Kafka timestamps (s) of every copy of a post id after its first: when the collector produced it again.
    reproduced_at: list[float] = field(default_factory=list)
    # created_at (microseconds) of each post -> when this observer first read it on the posts topic (time.time()).
    post_arrival: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="observer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    async def _main(self) -> None:
        await asyncio.gather(
            self._consume(self.posts_topic, self._on_post),
            self._consume(self.alerts_topic, self._on_alert),
            self._consume(self.post_events_topic, self._on_assignments),
        )

    def _on_assignments(self, key: bytes | None, value: bytes | None, arrived: float, timestamp_ms: int = 0) -> None:
        if value is None:
            return
        with contextlib.suppress(Exception):  # not ours: the index role dead-letters it
            last = self.last_event
            events: dict[str, str] = {}  # one string per event id, not one per post
            for pair in post_event_pb2.PostEventAssignments.FromString(value).assignments:
                last[pair.post_id] = events.setdefault(pair.event_id, pair.event_id)

    def _on_post(self, key: bytes | None, value: bytes | None, arrived: float, timestamp_ms: int = 0) -> None:
        if key is not None:
            post_id = key.decode()
            self.produced[post_id] += 1
            if self.produced[post_id] > 1:
                self.reproduced_at.append(timestamp_ms / 1000)
        if value is not None:
            with contextlib.suppress(Exception):  # a payload this reader cannot decode only lacks its arrival
                created_us = post_pb2.Post.FromString(value).created_at.ToMicroseconds()
                self.post_arrival.setdefault(created_us, arrived)

    def _on_alert(self, key: bytes | None, value: bytes | None, arrived: float, timestamp_ms: int = 0) -> None:
        if value is None:
            return
        alert = event_pb2.Alert.FromString(value)
        graded = alert.grade.graded_at.ToDatetime(tzinfo=UTC).timestamp()
        self.alerts.append(
            SeenAlert(
                arrived,
                arrived - graded,
                alert.id,
                alert.event_id,
                alert.from_level,
                alert.to_level,
                alert.sequence,
                alert.grade.graded_at.ToMicroseconds(),
            )
        )

    async def _consume(self, topic: str, handle: object) -> None:
        while not self._stop.is_set():
            # The broker restarts during the soak: a consumer that fails is rebuilt and resumes where it was.
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                enable_auto_commit=False,
                isolation_level="read_committed",
                max_partition_fetch_bytes=4 * 1024 * 1024,
            )
            try:
                await consumer.start()
                partitions = await self._partitions(consumer, topic)
                consumer.assign(partitions)
                for tp in partitions:
                    position = self.positions.get(tp)
                    if position is None:
                        await consumer.seek_to_beginning(tp)
                    else:
                        consumer.seek(tp, position)
                while not self._stop.is_set():
                    batch = await consumer.getmany(timeout_ms=200, max_records=5_000)
                    arrived = time.time()
                    for tp, messages in batch.items():
                        for message in messages:
                            handle(message.key, message.value, arrived, message.timestamp)  # type: ignore[operator]
                        if messages:
                            self.positions[tp] = messages[-1].offset + 1
            except Exception as err:
                self.errors.append(f"{topic}: {type(err).__name__}: {err}")
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
        for _ in range(120):
            found = consumer.partitions_for_topic(topic)
            if found:
                return [TopicPartition(topic, p) for p in sorted(found)]
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.5)
        raise RuntimeError(f"topic {topic} does not exist")


@dataclass
class EsAudit:
    """Post ids found in the posts indices (with how many indices hold each) and the events' representatives."""

    post_copies: Counter[str]
    events: int
    events_sharing_posts: int
    shared_representatives: int
    shared_sample: list[tuple[str, list[str]]]
    # post id -> the event_id its document holds (posts without one are absent)
    post_event_ids: dict[str, str] = field(default_factory=dict)


def audit_elasticsearch(url: str, prefix: str = "qingfeng") -> EsAudit:
    """Scan every posts index (all generations, not only the alias) and the events index."""
    es = Elasticsearch(url, request_timeout=120)
    try:
        es.indices.refresh(index=f"{prefix}-posts-*")
        copies: Counter[str] = Counter()
        event_ids: dict[str, str] = {}
        for hit in helpers.scan(es, index=f"{prefix}-posts-*", query={"query": {"match_all": {}}},
                                _source=["event_id"], size=5_000, scroll="5m"):  # fmt: skip
            copies[hit["_id"]] += 1
            event_id = (hit.get("_source") or {}).get("event_id")
            if event_id:
                event_ids[hit["_id"]] = event_id
        es.indices.refresh(index=f"{prefix}-events-*")
        owners: dict[str, set[str]] = {}
        events = 0
        for hit in helpers.scan(es, index=f"{prefix}-events-*", query={"query": {"match_all": {}}},
                                _source=["id", "representative_post_ids", "merged_into"], size=2_000,
                                scroll="5m"):  # fmt: skip
            source = hit["_source"]
            if source.get("merged_into"):
                continue
            events += 1
            for post_id in source.get("representative_post_ids") or ():
                owners.setdefault(post_id, set()).add(str(source.get("id") or hit["_id"]))
        shared = {post_id: ids for post_id, ids in owners.items() if len(ids) > 1}
        sharing_events = {event_id for ids in shared.values() for event_id in ids}
        sample = [(post_id, sorted(ids)) for post_id, ids in sorted(shared.items())[:3]]
        return EsAudit(copies, events, len(sharing_events), len(shared), sample, event_ids)
    finally:
        es.close()


def es_post_count(url: str, prefix: str = "qingfeng") -> int:
    es = Elasticsearch(url, request_timeout=30)
    try:
        es.indices.refresh(index=f"{prefix}-posts-*")
        return int(es.count(index=f"{prefix}-posts-*")["count"])
    finally:
        es.close()
