"""Fixtures of the grader's integration tests: settings with topics, index, group and database of their own.

``make_settings(**overrides)`` builds ``GraderSettings`` exactly as a deployment would set them, with unique topic
names (three partitions each, so the event-time merge of partitions is exercised), an Elasticsearch index prefix,
a consumer group and a SQLite file per test; everything is deleted afterwards. ``Running`` drives one grader
"process" in-process (role ``all`` unless the settings say otherwise: the grade loop and the index role as tasks):
start it, wait for it, wait for its index role to catch up, stop it gracefully (the grade loop first, then the index
role once it has written everything, so Elasticsearch holds the final state) or crash it (cancel, no final
checkpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr
from qingfeng.elastic import IndexNames, create_client, delete_family
from qingfeng.kafka import Producer, ensure_topics
from qingfeng.settings import DatabaseSettings, ElasticsearchSettings, GrpcSettings, KafkaSettings
from qingfeng.v1 import event_pb2, post_pb2

from services.grader.adapters.kafka import topic_partitions
from services.grader.app import GraderApp, build, topic_specs_for
from services.grader.settings import (
    CheckpointSettings,
    ConsumerSettings,
    GraderSettings,
    GraderTopics,
    IndexRoleSettings,
)
from tests.services.grader.integration.helpers import produce_posts

MakeSettings = Callable[..., GraderSettings]
AlertKey = tuple[str, int, int]


def alert_keys(alerts: list[event_pb2.Alert]) -> list[AlertKey]:
    """What two runs' alerts must agree on: id and level change, sorted."""
    return sorted((a.id, a.from_level, a.to_level) for a in alerts)


async def produce_stream(settings: GraderSettings, posts: list[post_pb2.Post]) -> None:
    """Produce ``posts`` to the settings' posts topic (its topics created first: posts may come before the grader)."""
    await ensure_topics(settings.kafka, topic_specs_for(settings))
    producer = Producer(settings.kafka)
    await producer.start()
    try:
        await produce_posts(producer, settings.topics.posts, posts)
    finally:
        await producer.stop()


@pytest.fixture
async def make_settings(kafka_bootstrap: str, es_url: str, tmp_path: Path) -> AsyncIterator[MakeSettings]:
    made: list[GraderSettings] = []

    def make(**overrides: Any) -> GraderSettings:
        run = uuid.uuid4().hex[:10]
        values: dict[str, Any] = {
            "kafka": KafkaSettings(
                bootstrap_servers=kafka_bootstrap, client_id=f"qftest-{run}", partitions=3, request_timeout_s=20
            ),
            "elasticsearch": ElasticsearchSettings(url=es_url, index_prefix=f"qftest-{run}"),
            "database": DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path / run}.db")),
            "topics": GraderTopics(
                posts=f"qftest.{run}.posts.v1",
                events=f"qftest.{run}.events.v1",
                alerts=f"qftest.{run}.alerts.v1",
                deadletter=f"qftest.{run}.deadletter.v1",
            ),
            "consumer": ConsumerSettings(group_id=f"qftest-{run}-grader", batch_size=25, retry_backoff_s=0.2),
            "checkpoint": CheckpointSettings(every_batches=10_000, every_s=3600),
            "grpc": GrpcSettings(port=0, plaintext=True),
            # No collector's indexer runs here, so the posts never get indexed: stubs at once instead of waiting
            # for them (the wait itself: test_post_event_wait.py).
            "index": IndexRoleSettings(missing_wait_s=0),
        }
        values.update(overrides)
        settings = GraderSettings(**values)
        made.append(settings)
        return settings

    yield make
    # A test that failed half-way leaves its graders running: crashed here, their clients closed, so the failure is
    # reported once and not again as unclosed sockets at some later test's teardown.
    for left in list(_LIVE):
        with contextlib.suppress(Exception):
            await left.crash()
    es_urls = {s.elasticsearch.url for s in made}
    for url in es_urls:
        client = create_client(ElasticsearchSettings(url=url))
        try:
            for s in made:
                await delete_family(client, IndexNames(s.elasticsearch.index_prefix, "events"))
        finally:
            await client.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        topics = sorted({name for s in made for name in s.topics.model_dump().values() if name})
        topics = sorted({*topics, *(s.topics.post_events_topic for s in made)})
        with contextlib.suppress(Exception):  # topics a test never created
            await admin.delete_topics(topics)
    finally:
        await admin.close()


_LIVE: list[Running] = []  # started and neither stopped nor crashed yet


@dataclass
class Running:
    """One grader instance with its consumer loop (``task``) and its index role (role ``all``) running as tasks."""

    app: GraderApp
    stop: asyncio.Event
    task: asyncio.Task[None]
    indexer_task: asyncio.Task[None] | None = None
    index_stop: asyncio.Event | None = None

    @classmethod
    async def start(cls, settings: GraderSettings) -> Running:
        app = await build(settings)
        stop, index_stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(app.consumer.run(stop))
        indexer = asyncio.create_task(app.indexer.run(index_stop)) if app.indexer is not None else None
        running = cls(app, stop, task, indexer, index_stop)
        _LIVE.append(running)
        return running

    async def wait_indexed(self, timeout_s: float = 60.0) -> None:
        """Until the index role has committed everything on the events and post-events topics."""
        settings = self.app.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (behind := await index_lag(settings)) > 0:
            if self.indexer_task is not None and self.indexer_task.done():
                self.indexer_task.result()
                raise AssertionError("the index role ended early")
            if loop.time() > deadline:
                raise AssertionError(f"the index role is {behind} records behind after {timeout_s:.0f} s")
            await asyncio.sleep(0.2)

    async def wait_posts(self, count: int, timeout_s: float = 60.0) -> None:
        """Until the loop has graded ``count`` posts (since this instance started)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.app.consumer.posts < count:
            if self.task.done():
                self.task.result()
                raise AssertionError("the consumer loop ended early")
            if loop.time() > deadline:
                raise AssertionError(f"graded {self.app.consumer.posts} posts, expected {count}")
            await asyncio.sleep(0.001)

    async def graceful(self) -> None:
        if self in _LIVE:
            _LIVE.remove(self)
        self.stop.set()
        await asyncio.wait_for(self.task, 30)
        if self.indexer_task is not None and self.index_stop is not None:
            await self.wait_indexed()  # the final checkpoint published the held snapshots: indexed before it stops
            self.index_stop.set()
            await asyncio.wait_for(self.indexer_task, 30)
        await self.app.close()

    async def crash(self) -> None:
        if self in _LIVE:
            _LIVE.remove(self)
        for task in (self.task, self.indexer_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.app.close()


async def index_lag(settings: GraderSettings) -> int:
    """Records of the events and post-events topics the index role's group has not committed (all when none)."""
    topics = [settings.topics.events, settings.topics.post_events_topic]
    bootstrap = settings.kafka.bootstrap_servers
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        # From the broker, never a metadata cache: a topic not seen yet must not count as caught up.
        tps = [TopicPartition(t, p) for t in topics for p in await topic_partitions(settings.kafka, t)]
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(settings.index_group_id)
        return sum(max(0, end - (committed[tp].offset if tp in committed else 0)) for tp, end in ends.items())
    finally:
        await admin.close()
        await consumer.stop()
