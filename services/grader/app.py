"""The grader's composition root: builds the adapters from settings, serves gRPC and runs the loops.

Roles (``QF_GRADER_ROLE``): ``grade`` runs the posts consumer, the engine and the gRPC API, and publishes
everything it decides to Kafka (alerts, event snapshots, post -> event assignments) with its checkpoints in SQL: it
needs no Elasticsearch. ``index`` runs the index role (``indexer.py``): the events index and the posts' event ids
written from those topics. ``all`` (default) runs both in one process as separate tasks; ``qingfeng up`` runs them
as two processes, the index role at the indexers' CPU priority.

Start: topics (and, for the index role, the events index) are ensured, the database migrated, the active policy
settled (the configured file when its version is new, else the one activated last), then the grade role takes the
lease (``lease.py``) or, while another process holds it, follows that leader as a warm standby (``standby.py``),
then the consumer loop recovers the engine from its last checkpoint (or the standby's followed state) and reads on;
health reports SERVING once the role's stores answer (grade: Kafka and the database; index: Kafka and
Elasticsearch) and the engine has recovered (never while a standby follows).

Shutdown (STYLE §4.2, driven by ``run_until_stopped``): health NOT_SERVING, the gRPC server stops taking calls
and lets running ones finish, the loops finish their batch (effects acknowledged; the grade role takes the final
checkpoint) and commit, then the posts reader, the database, Elasticsearch and last the producer (flushing) are
closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from qingfeng.kafka import DeadLetterSender, Producer, TopicSpec, ensure_topics
from qingfeng.kafka.topics import ALERTS, DEADLETTER, EVENTS, POST_EVENTS, POSTS, TOPICS
from qingfeng.metrics import serve_metrics
from qingfeng.readiness import kafka_ready, sql_ready
from qingfeng.rpc import ReadinessCheck, build_server, credential_interceptor, run_until_stopped
from qingfeng.storage import create_engine, run_migrations
from qingfeng.v1 import event_pb2, event_pb2_grpc

from services.grader.adapters.kafka import KafkaAlertLog, KafkaOutputSink, KafkaPostReader
from services.grader.adapters.sql import SqlStateStore
from services.grader.consumer import PostConsumer
from services.grader.core import ClusteringConfig, GraderConfig
from services.grader.history import SqlGradeHistory
from services.grader.lease import lease_for
from services.grader.server import GraderServicer
from services.grader.settings import GraderSettings
from services.grader.standby import Follower
from services.grader.state import EngineOwner

if TYPE_CHECKING:
    # Imported where the index role is built: the grade role never loads the Elasticsearch client (its import is a
    # third of the grader's start-up, which a restart adds to the time without alerts).
    from services.grader.indexer import GraderIndexer

__all__ = [
    "MIGRATIONS",
    "POST_EVENTS_PARTITIONS",
    "VERSION_TABLE",
    "GraderApp",
    "IndexRole",
    "build",
    "build_index_role",
    "engine_config",
    "run",
    "topic_specs_for",
]

_log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_grader"

Cleanup = Callable[[], Awaitable[None]]
Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

# The assignments topic has one partition: the index role reads the records in the order the grader wrote them, so a
# later assignment of a post (its event merged into another) always lands after the earlier one.
POST_EVENTS_PARTITIONS: Final = 1


def topic_specs_for(settings: GraderSettings) -> list[TopicSpec]:
    """The grader's topics under their configured names, with the standard topics' configuration."""
    kafka, topics = settings.kafka, settings.topics
    specs = [
        TopicSpec(name, partitions=kafka.partitions, replication=kafka.replication_factor, config=dict(TOPICS[std]))
        for name, std in (
            (topics.posts, POSTS),
            (topics.events, EVENTS),
            (topics.alerts, ALERTS),
            (topics.deadletter, DEADLETTER),
        )
    ]
    specs.append(
        TopicSpec(
            topics.post_events_topic,
            partitions=POST_EVENTS_PARTITIONS,
            replication=kafka.replication_factor,
            config=dict(TOPICS[POST_EVENTS]),
        )
    )
    return specs


def engine_config(settings: GraderSettings) -> GraderConfig:
    clustering = ClusteringConfig.for_lost_parents() if settings.lost_parents else ClusteringConfig()
    return GraderConfig(clustering=replace(clustering, horizon_seconds=settings.horizon_s))


@dataclass
class IndexRole:
    """The index role's loop and what it needs to be ready."""

    indexer: GraderIndexer
    readiness: list[ReadinessCheck]


@dataclass
class GraderApp:
    """Everything ``run`` wires, exposed so tests can drive the loops, crash them, and serve the API themselves.

    ``indexer`` is the index role running beside the grade role (role ``all``), None for role ``grade``."""

    settings: GraderSettings
    owner: EngineOwner
    consumer: PostConsumer
    servicer: GraderServicer
    indexer: GraderIndexer | None = None
    # The warm standby's follower and lease watch (None: an in-memory database, one process by construction).
    follower: Follower | None = None
    readiness: list[ReadinessCheck] = field(default_factory=list)
    cleanups: list[Cleanup] = field(default_factory=list)

    @property
    def loops(self) -> list[Loop]:
        """The background loops: the posts consumer, and the index role's when it runs here."""
        loops: list[Loop] = [self.consumer.run]
        if self.follower is not None:
            loops.append(self.follower.watch)
        if self.indexer is not None:
            loops.append(self.indexer.run)
        return loops

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
    """Build and connect every adapter of the grade role (and of the index role for role ``all``); on failure, close
    what was opened and re-raise."""
    if settings.role == "index":
        raise ValueError("role index has no engine: use build_index_role")
    cleanups: list[Cleanup] = []
    try:
        return await _build(settings, cleanups)
    except BaseException:
        for cleanup in reversed(cleanups):
            await cleanup()
        raise


async def _build(settings: GraderSettings, cleanups: list[Cleanup]) -> GraderApp:
    topics = settings.topics
    started = time.perf_counter()
    await ensure_topics(settings.kafka, topic_specs_for(settings))
    producer = Producer(settings.kafka)
    await producer.start()
    cleanups.append(producer.stop)
    kafka_s = time.perf_counter() - started
    await run_migrations(settings.database.url.get_secret_value(), MIGRATIONS, VERSION_TABLE)
    migrations_s = time.perf_counter() - started - kafka_s
    engine = create_engine(settings.database, application_name="qingfeng-grader")
    cleanups.append(engine.dispose)
    store = SqlStateStore(engine, posts_topic=topics.posts, alerts_topic=topics.alerts)
    reader = KafkaPostReader(settings.kafka, topics.posts, settings.consumer.group_id,
                             max_records=settings.consumer.batch_size)  # fmt: skip
    await reader.start()
    cleanups.append(reader.stop)
    sink = KafkaOutputSink(
        producer,
        alerts_topic=topics.alerts,
        events_topic=topics.events,
        post_events_topic=topics.post_events_topic if settings.post_event_ids else None,
    )
    owner = EngineOwner(
        store,
        sink,
        KafkaAlertLog(settings.kafka, topics.alerts),
        config=engine_config(settings),
        cadence=settings.checkpoint,
        post_event_ids=settings.post_event_ids,  # published for the index role (search by event)
        order_log=store,  # a recovery replays in the order the lost run fed the engine (issue 13)
        history=SqlGradeHistory(engine),  # each event's level changes with their reasons (issue 10)
        snapshot_interval_s=settings.snapshot_interval_s,  # unchanged events' snapshots paced (pacing.py)
    )
    policy_file = settings.policy_file
    await owner.activate_configured(policy_file.read_text(encoding="utf-8"), str(policy_file))
    _log.info("built in %.2fs: topics and producer %.2fs, migrations %.2fs", time.perf_counter() - started, kafka_s,
              migrations_s)  # fmt: skip
    dead_letters = DeadLetterSender(producer, source="grader", topic=topics.deadletter)
    # Kafka and SQL only: Elasticsearch is the index role's, so its outages never stall grading or alerts.
    stores = [kafka_ready(settings.kafka), sql_ready(engine)]

    async def stores_answer() -> None:
        # After a failure the loop recovers only once every store answers (see consumer.py, "Failures").
        for check in stores:
            try:
                await asyncio.wait_for(check.probe(), settings.consumer.store_probe_timeout_s)
            except Exception as err:
                raise ConnectionError(f"{check.name}: {type(err).__name__}: {err}") from err

    lease = lease_for(settings.database.url.get_secret_value(), engine, topics.posts)
    follower = None
    if lease is not None:
        follower = Follower(owner, reader, store, lease, settings.standby, batch_limit=settings.consumer.batch_size)
        cleanups.insert(0, lease.release)  # released last: after the final checkpoint, the commit and the flush
    consumer = PostConsumer(owner, reader, dead_letters, settings.consumer, idle_tick_s=settings.idle_tick_s,
                            stores_answer=stores_answer, follow=follower.run if follower else None)  # fmt: skip

    async def recovered() -> None:
        if follower is not None and not follower.leading:
            raise RuntimeError("standby: another grader leads; this one follows it")
        if owner.stale:
            raise RuntimeError("the engine is recovering from its checkpoint")

    readiness = [*stores, ReadinessCheck("engine", recovered)]
    indexer = None
    if settings.role == "all":
        role = await _index_role(settings, producer, cleanups)
        indexer = role.indexer
        readiness += role.readiness
    return GraderApp(
        settings=settings,
        owner=owner,
        consumer=consumer,
        follower=follower,
        servicer=GraderServicer(owner, store),
        indexer=indexer,
        readiness=readiness,
        cleanups=cleanups,
    )


async def build_index_role(settings: GraderSettings) -> tuple[IndexRole, list[Cleanup]]:
    """The index role alone (role ``index``): its producer (dead letters), Elasticsearch client and loop, with the
    cleanups to run on stop; on failure, closes what was opened and re-raises."""
    cleanups: list[Cleanup] = []
    try:
        await ensure_topics(settings.kafka, topic_specs_for(settings))  # it may start before the grade role
        producer = Producer(settings.kafka)
        await producer.start()
        cleanups.append(producer.stop)
        role = await _index_role(settings, producer, cleanups)
        return IndexRole(role.indexer, [kafka_ready(settings.kafka), *role.readiness]), cleanups
    except BaseException:
        for cleanup in reversed(cleanups):
            await cleanup()
        raise


async def _index_role(settings: GraderSettings, producer: Producer, cleanups: list[Cleanup]) -> IndexRole:
    from qingfeng.elastic import IndexNames, create_client, ensure_index
    from qingfeng.readiness import elasticsearch_ready

    from services.grader.adapters.elastic import ElasticEventIndex
    from services.grader.adapters.post_events import ElasticPostEvents
    from services.grader.indexer import GraderIndexer

    es = create_client(settings.elasticsearch)
    cleanups.append(es.close)
    prefix = settings.elasticsearch.index_prefix
    names = IndexNames(prefix, "events")
    indexer = GraderIndexer(
        ElasticEventIndex(es, names.write_alias),
        # The posts family is the collector's; the grader only adds event_id to its documents.
        ElasticPostEvents(es, IndexNames(prefix, "posts"), poll_s=settings.index.missing_poll_s)
        if settings.post_event_ids
        else None,
        producer,
        kafka=settings.kafka,
        topics=settings.topics,
        group_id=settings.index_group_id,
        settings=settings.index,
        # In the loop, not here: Elasticsearch being down at start delays indexing, never the start (role all).
        prepare=lambda: ensure_index(es, prefix, "events"),
    )
    return IndexRole(indexer, [elasticsearch_ready(es)])


async def run(settings: GraderSettings) -> None:
    """Run the grader in its configured role until SIGTERM."""
    authenticate = credential_interceptor(settings.identity, env_prefix="QF_GRADER_")  # no trust, no start
    if settings.role == "index":
        role, cleanups = await build_index_role(settings)
        services: list[tuple[ServiceDescriptor, Callable[[grpc.aio.Server], None]]] = []  # health only
        loops: list[Loop] = [role.indexer.run]
        readiness = role.readiness
    else:
        app = await build(settings)
        services, readiness, loops, cleanups = app.services(), app.readiness, app.loops, app.cleanups
    server = build_server(settings.grpc, services=services, interceptors=[authenticate])
    # The index role's consumer lag (qingfeng_kafka_consumer_lag), scraped from loopback when configured.
    serve_metrics(settings.metrics_port, host=settings.metrics_host)
    _log.info("grader starting", extra={"role": settings.role, "settings": settings.describe()})
    await run_until_stopped(
        server,
        readiness=readiness,
        background=loops,
        cleanups=cleanups,
        grace_s=settings.grpc.shutdown_grace_s,
    )
