"""The collector's composition root: builds the adapters from settings, serves gRPC and runs the loops.

Roles (``QF_COLLECTOR_ROLE``): ``fetch`` runs the gRPC API, the scheduler and the pipeline (sources → Kafka);
``index`` runs the posts indexer (Kafka → Elasticsearch); ``all`` (default) runs both in one process. Indexing is a
separate consumer either way, so indexing lag never blocks collection.

Shutdown (STYLE §4.2, done by ``run_until_stopped``): health NOT_SERVING, the gRPC server stops taking calls and
lets running ones finish, the loops stop (the indexer finishes and commits its batch, the scheduler its fetches),
then Elasticsearch, the database and last the producer (flushing what the loops produced) are closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from qingfeng.elastic import create_client, ensure_index
from qingfeng.kafka import Producer, TopicSpec, ensure_topics
from qingfeng.kafka.topics import DEADLETTER, POSTS, POSTS_DEADLETTER, TOPICS
from qingfeng.metrics import serve_metrics
from qingfeng.readiness import elasticsearch_ready, kafka_ready, sql_ready
from qingfeng.rpc import ReadinessCheck, build_server, credential_interceptor, run_until_stopped
from qingfeng.storage import create_engine, run_migrations
from qingfeng.text import Enricher
from qingfeng.v1 import source_pb2, source_pb2_grpc

from services.collector.adapters.produced_ids import SqlProducedIds
from services.collector.adapters.produced_tail import recall_produced_tail
from services.collector.adapters.sql import SqlStore
from services.collector.core import DedupeConfig, Deduper
from services.collector.fetch import Fetcher, FetcherConfig
from services.collector.indexer import PostIndexer
from services.collector.pipeline import Pipeline, ProducedIds
from services.collector.registry import BUILTIN_SOURCES
from services.collector.scheduler import Scheduler, SchedulerConfig
from services.collector.server import CollectorServicer
from services.collector.settings import CollectorSettings
from services.collector.sources import SourceContext, build_adapters
from services.collector.tips import TipCipher, TipDesk

__all__ = [
    "MIGRATIONS",
    "VERSION_TABLE",
    "build_enricher",
    "build_pipeline",
    "build_scheduler",
    "run",
    "topic_specs_for",
]

_log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_collector"


def topic_specs_for(settings: CollectorSettings) -> list[TopicSpec]:
    """The collector's topics under their configured names, with the standard topics' configuration."""
    kafka, topics = settings.kafka, settings.topics
    return [
        TopicSpec(name, partitions=kafka.partitions, replication=kafka.replication_factor, config=dict(TOPICS[std]))
        for name, std in (
            (topics.posts, POSTS),
            (topics.posts_deadletter, POSTS_DEADLETTER),
            (topics.deadletter, DEADLETTER),
        )
    ]


def build_enricher(settings: CollectorSettings) -> Enricher:
    """The enricher over the built-in lexicons plus the ``*.yaml`` files of ``pipeline.lexicon_dir``."""
    directory = settings.pipeline.lexicon_dir
    extra = sorted(directory.glob("*.yaml")) if directory is not None else []
    if directory is not None and not extra:
        raise ValueError(f"QF_COLLECTOR_PIPELINE__LEXICON_DIR={directory} holds no *.yaml lexicon files")
    return Enricher(extra_lexicons=extra)


def build_pipeline(
    settings: CollectorSettings,
    producer: Producer,
    enricher: Enricher | None = None,
    produced_ids: ProducedIds | None = None,
) -> Pipeline:
    """The ingest pipeline over ``producer`` with the configured dedupe window (and durable produced ids)."""
    dedupe = settings.dedupe
    deduper = Deduper(
        DedupeConfig(
            max_entries=dedupe.max_entries,
            max_age=timedelta(days=dedupe.max_age_days),
            max_distance=dedupe.max_distance,
        )
    )
    return Pipeline(
        producer,
        enricher=enricher or build_enricher(settings),
        deduper=deduper,
        settings=settings.pipeline,
        topics=settings.topics,
        produced_ids=produced_ids,
    )


def _secret_reader(directory: Path | None) -> Callable[[str], str | None]:
    """Reads a named token file of the secrets directory (never a path outside it)."""

    def read(name: str) -> str | None:
        if directory is None or not name or Path(name).name != name or name.startswith("."):
            return None
        try:
            return (directory / name).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    return read


def build_scheduler(
    settings: CollectorSettings, store: SqlStore, pipeline: Pipeline, cleanups: list[Callable[[], Awaitable[None]]]
) -> Scheduler:
    """The fetch loop over the registry, with one adapter per source kind sharing one polite fetcher."""
    fetcher = Fetcher(FetcherConfig(address_policy=settings.fetch.address_policy()))  # the SSRF guard's allowlist
    cleanups.append(fetcher.aclose)
    context = SourceContext(
        fetcher=fetcher, secret=_secret_reader(settings.source_secrets_dir), file_roots=settings.fetch.file_roots
    )
    return Scheduler(
        store,
        pipeline,
        build_adapters(context),
        SchedulerConfig(tick_s=settings.scheduler_tick_s),
        pressure=lambda: pipeline.budget.saturated,  # a full produce budget holds new fetches back
    )


async def run(settings: CollectorSettings) -> None:
    """Run the collector in its configured role until SIGTERM."""
    tip_key = settings.resolved_tip_key()
    cipher = TipCipher(tip_key) if tip_key is not None else None  # a malformed key fails here, at start
    authenticate = credential_interceptor(settings.identity, env_prefix="QF_COLLECTOR_")  # no trust, no start
    await ensure_topics(settings.kafka, topic_specs_for(settings))
    producer = Producer(settings.kafka)
    await producer.start()
    cleanups: list[Callable[[], Awaitable[None]]] = [producer.stop]
    try:
        wiring = await _wire(settings, producer, cipher, cleanups)
    except BaseException:
        for cleanup in reversed(cleanups):
            await cleanup()
        raise
    server = build_server(settings.grpc, services=wiring.services, interceptors=[authenticate])
    # Consumer lag of the indexer, the produce budget (in flight, refused): scraped from loopback when configured.
    serve_metrics(settings.metrics_port, host=settings.metrics_host)
    _log.info("collector starting", extra={"role": settings.role, "settings": settings.describe()})
    await run_until_stopped(
        server,
        readiness=wiring.readiness,
        background=wiring.background,
        cleanups=cleanups,
        grace_s=settings.grpc.shutdown_grace_s,
    )


@dataclass
class _Wiring:
    readiness: list[ReadinessCheck] = field(default_factory=list)
    background: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = field(default_factory=list)
    services: list[tuple[ServiceDescriptor, Callable[[grpc.aio.Server], None]]] = field(default_factory=list)


async def _wire(
    settings: CollectorSettings,
    producer: Producer,
    cipher: TipCipher | None,
    cleanups: list[Callable[[], Awaitable[None]]],
) -> _Wiring:
    """Build every adapter of the role; each one that holds connections registers its cleanup as soon as it exists."""
    wiring = _Wiring(readiness=[kafka_ready(settings.kafka)])
    if settings.role in ("all", "fetch"):
        url = settings.database.url.get_secret_value()
        await run_migrations(url, MIGRATIONS, VERSION_TABLE)
        engine = create_engine(settings.database, application_name="qingfeng-collector")
        cleanups.append(engine.dispose)
        wiring.readiness.append(sql_ready(engine))
        store = SqlStore(engine)
        await store.ensure_builtin(BUILTIN_SOURCES, datetime.now(UTC))
        # Produced ids survive a restart: a re-fetched feed or a re-run import is not produced again (issue 13).
        pipeline = build_pipeline(settings, producer, produced_ids=SqlProducedIds(engine))
        # ... and so do the ids Kafka acknowledged just before a kill -9 kept them from the database: read back from
        # the posts topic's tail before anything is served or fetched. Only this role produces posts.
        await recall_produced_tail(settings, pipeline)
        if cipher is None:
            _log.warning("no QF_COLLECTOR_TIP_KEY: SubmitTip is refused (submitters are never stored unencrypted)")
        servicer = CollectorServicer(
            store,
            pipeline,
            TipDesk(store, pipeline, cipher),
            kafka_retry_after_s=settings.pipeline.stalled_retry_after_s,
        )
        wiring.services.append(
            (
                source_pb2.DESCRIPTOR.services_by_name["CollectorService"],
                lambda s: source_pb2_grpc.add_CollectorServiceServicer_to_server(servicer, s),
            )
        )
        wiring.background.append(build_scheduler(settings, store, pipeline, cleanups).run)
    if settings.role in ("all", "index"):
        es = create_client(settings.elasticsearch)
        cleanups.append(es.close)
        wiring.readiness.append(elasticsearch_ready(es))
        names = await ensure_index(es, settings.elasticsearch.index_prefix, "posts")
        indexer = PostIndexer(
            es,
            names.write_alias,
            producer,
            kafka=settings.kafka,
            topics=settings.topics,
            settings=settings.indexer,
        )
        wiring.background.append(indexer.run)
    return wiring
