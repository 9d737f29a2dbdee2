"""The collector's real parts wired in-process for unit tests: a migrated SQLite store, a pipeline over an
in-memory producer, and the gRPC servicer on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr
from qingfeng.rpc import CredentialInterceptor, build_server
from qingfeng.settings import DatabaseSettings, GrpcSettings
from qingfeng.storage import create_engine, run_migrations
from qingfeng.text import default_enricher
from qingfeng.v1 import source_pb2, source_pb2_grpc

from services.collector.adapters.sql import SqlStore
from services.collector.app import MIGRATIONS, VERSION_TABLE
from services.collector.core import Deduper
from services.collector.pipeline import Pipeline
from services.collector.registry import BUILTIN_SOURCES
from services.collector.server import CollectorServicer
from services.collector.settings import CollectorTopics, PipelineSettings
from tests.identity import TRUST, signed_channel
from tests.services.collector.fakes import FakeProducer

TOPICS = CollectorTopics(posts="t.posts", posts_deadletter="t.posts.dl", deadletter="t.dl")
NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


@asynccontextmanager
async def migrated_store(db_path: Path) -> AsyncIterator[tuple[str, SqlStore]]:
    """A SQLite store at ``db_path`` with the collector's migrations and built-in sources; (url, store)."""
    url = f"sqlite+aiosqlite:///{db_path}"
    await run_migrations(url, MIGRATIONS, VERSION_TABLE)
    engine = create_engine(DatabaseSettings(url=SecretStr(url)))
    try:
        store = SqlStore(engine)
        await store.ensure_builtin(BUILTIN_SOURCES, NOW)
        yield url, store
    finally:
        await engine.dispose()


def pipeline_over(sink: FakeProducer) -> Pipeline:
    return Pipeline(sink, enricher=default_enricher(), deduper=Deduper(), settings=PipelineSettings(), topics=TOPICS)


@asynccontextmanager
async def serving(servicer: CollectorServicer) -> AsyncIterator[source_pb2_grpc.CollectorServiceStub]:
    """``servicer`` on a loopback port behind the credential check; a stub whose calls carry the analyst's
    credential unless a call brings its own (``tests.identity.as_caller``)."""
    server = build_server(
        GrpcSettings(port=0, plaintext=True),
        services=[
            (
                source_pb2.DESCRIPTOR.services_by_name["CollectorService"],
                lambda s: source_pb2_grpc.add_CollectorServiceServicer_to_server(servicer, s),
            )
        ],
        interceptors=[CredentialInterceptor(TRUST)],
    )
    await server.server.start()
    channel = signed_channel(f"127.0.0.1:{server.port}")
    try:
        yield source_pb2_grpc.CollectorServiceStub(channel)
    finally:
        await channel.close()
        await server.server.stop(0)
