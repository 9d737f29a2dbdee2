"""The grader's composition root: builds the adapters from settings, serves gRPC and runs the consumer loop.

Start: topics and the events index are ensured, the database migrated, the active policy settled (the configured
file when its version is new, else the one activated last), then the consumer loop recovers the engine from its
last checkpoint and reads on; health reports SERVING once Kafka, Elasticsearch and the database answer and the
engine has recovered.

Shutdown (STYLE §4.2, driven by ``run_until_stopped``): health NOT_SERVING, the gRPC server stops taking calls
and lets running ones finish, the consumer loop finishes its batch (effects acknowledged), takes the final
checkpoint and commits, then the posts reader, the database, Elasticsearch and last the producer (flushing) are
closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
from elasticsearch import AsyncElasticsearch
from google.protobuf.descriptor import ServiceDescriptor
from qingfeng.elastic import IndexNames, create_client, ensure_index
from qingfeng.kafka import DeadLetterSender, Producer, TopicSpec, ensure_topics
from qingfeng.kafka.topics import ALERTS, DEADLETTER, EVENTS, POSTS, TOPICS
from qingfeng.readiness import elasticsearch_ready, kafka_ready, sql_ready
from qingfeng.rpc import ReadinessCheck, build_server, credential_interceptor, run_until_stopped
from qingfeng.storage import create_engine, run_migrations
from qingfeng.v1 import event_pb2, event_pb2_grpc

from services.grader.adapters.elastic import ElasticEventIndex
from services.grader.adapters.kafka import KafkaAlertLog, KafkaOutputSink, KafkaPostReader
from services.grader.adapters.post_events import ElasticPostEvents
from services.grader.adapters.sql import SqlStateStore
from services.grader.consumer import PostConsumer
from services.grader.core import ClusteringConfig, GraderConfig
from services.grader.history import SqlGradeHistory
from services.grader.server import GraderServicer
from services.grader.settings import GraderSettings
from services.grader.state import EngineOwner

__all__ = ["MIGRATIONS", "VERSION_TABLE", "GraderApp", "build", "engine_config", "run", "topic_specs_for"]

_log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_grader"

Cleanup = Callable[[], Awaitable[None]]


def topic_specs_for(settings: GraderSettings) -> list[TopicSpec]:
    """The grader's topics under their configured names, with the standard topics' configuration."""
    kafka, topics = settings.kafka, settings.topics
    return [
        TopicSpec(name, partitions=kafka.partitions, replication=kafka.replication_factor, config=dict(TOPICS[std]))
        for name, std in (
            (topics.posts, POSTS),
            (topics.events, EVENTS),
            (topics.alerts, ALERTS),
            (topics.deadletter, DEADLETTER),
        )
    ]


def engine_config(settings: GraderSettings) -> GraderConfig:
    clustering = ClusteringConfig.for_lost_parents() if settings.lost_parents else ClusteringConfig()
    return GraderConfig(clustering=replace(clustering, horizon_seconds=settings.horizon_s))


@dataclass
class GraderApp:
    """Everything ``run`` wires, exposed so tests can drive the loop, crash it, and serve the API themselves."""

    settings: GraderSettings
    owner: EngineOwner
    consumer: PostConsumer
    servicer: GraderServicer
    es: AsyncElasticsearch
    index: ElasticEventIndex
    readiness: list[ReadinessCheck] = field(default_factory=list)
    cleanups: list[Cleanup] = field(default_factory=list)

    def services(self) -> list[tuple[ServiceDescriptor, Callable[[grpc.aio.Server], None]]]:
        servicer = self.servicer
        return [
            (
                event_pb2.DESCRIPTOR.services_by_name["GraderService"],
                lambda s: event_pb2_grpc.add_GraderServiceServicer_to_server(servicer, s),
            )
        ]

    async def close(self) -> None:
        """Close every client, last registered first (no checkpoint: the consumer loop takes it on a clean stop)."""
        cleanups, self.cleanups = self.cleanups, []
        for cleanup in reversed(cleanups):
            try:
                await cleanup()
            except Exception:
                _log.exception("cleanup failed")


async def build(settings: GraderSettings) -> GraderApp:
    """Build and connect every adapter; on failure, close what was opened and re-raise."""
    cleanups: list[Cleanup] = []
    try:
        return await _build(settings, cleanups)
    except BaseException:
        for cleanup in reversed(cleanups):
            await cleanup()
        raise


async def _build(settings: GraderSettings, cleanups: list[Cleanup]) -> GraderApp:
    topics = settings.topics
    await ensure_topics(settings.kafka, topic_specs_for(settings))
    producer = Producer(settings.kafka)
    await producer.start()
    cleanups.append(producer.stop)
    es = create_client(settings.elasticsearch)
    cleanups.append(es.close)
    names = await ensure_index(es, settings.elasticsearch.index_prefix, "events")
    await run_migrations(settings.database.url.get_secret_value(), MIGRATIONS, VERSION_TABLE)
    engine = create_engine(settings.database, application_name="qingfeng-grader")
    cleanups.append(engine.dispose)
    store = SqlStateStore(engine, posts_topic=topics.posts, alerts_topic=topics.alerts)
    reader = KafkaPostReader(settings.kafka, topics.posts, settings.consumer.group_id,
                             max_records=settings.consumer.batch_size)  # fmt: skip
    await reader.start()
    cleanups.append(reader.stop)
    index = ElasticEventIndex(es, names.write_alias)
    owner = EngineOwner(
        store,
        KafkaOutputSink(producer, alerts_topic=topics.alerts, events_topic=topics.events),
        index,
        KafkaAlertLog(settings.kafka, topics.alerts),
        config=engine_config(settings),
        cadence=settings.checkpoint,
        # The posts family is the collector's; the grader only adds event_id to its documents.
        post_events=ElasticPostEvents(es, IndexNames(settings.elasticsearch.index_prefix, "posts")).assign
        if settings.post_event_ids
        else None,
        post_events_pending=settings.post_event_ids_pending,
        order_log=store,  # a recovery replays in the order the lost run fed the engine (issue 13)
        history=SqlGradeHistory(engine),  # each event's level changes with their reasons (issue 10)
        snapshot_interval_s=settings.snapshot_interval_s,  # unchanged events' snapshots paced (pacing.py)
    )
    policy_file = settings.policy_file
    await owner.activate_configured(policy_file.read_text(encoding="utf-8"), str(policy_file))
    dead_letters = DeadLetterSender(producer, source="grader", topic=topics.deadletter)
    stores = [kafka_ready(settings.kafka), elasticsearch_ready(es), sql_ready(engine)]

    async def stores_answer() -> None:
        # After a failure the loop recovers only once every store answers (see consumer.py, "Failures").
        for check in stores:
            try:
                await asyncio.wait_for(check.probe(), settings.consumer.store_probe_timeout_s)
            except Exception as err:
                raise ConnectionError(f"{check.name}: {type(err).__name__}: {err}") from err

    consumer = PostConsumer(owner, reader, dead_letters, settings.consumer, idle_tick_s=settings.idle_tick_s,
                            stores_answer=stores_answer)  # fmt: skip

    async def recovered() -> None:
        if owner.stale:
            raise RuntimeError("the engine is recovering from its checkpoint")

    readiness = [*stores, ReadinessCheck("engine", recovered)]
    return GraderApp(
        settings=settings,
        owner=owner,
        consumer=consumer,
        servicer=GraderServicer(owner, store),
        es=es,
        index=index,
        readiness=readiness,
        cleanups=cleanups,
    )


async def run(settings: GraderSettings) -> None:
    """Run the grader until SIGTERM."""
    authenticate = credential_interceptor(settings.identity, env_prefix="QF_GRADER_")  # no trust, no start
    app = await build(settings)
    server = build_server(settings.grpc, services=app.services(), interceptors=[authenticate])
    _log.info("grader starting", extra={"settings": settings.describe()})
    await run_until_stopped(
        server,
        readiness=app.readiness,
        background=[app.consumer.run],
        cleanups=app.cleanups,
        grace_s=settings.grpc.shutdown_grace_s,
    )
