"""Readiness probes for the outside systems a process depends on (used by ``qingfeng.rpc.run_until_stopped``).

A process reports SERVING over gRPC health only while every probe passes: Kafka answers a metadata request,
Elasticsearch is at least yellow, the SQL database runs a trivial query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from qingfeng.kafka.security import client_kwargs
from qingfeng.rpc import ReadinessCheck
from qingfeng.settings import KafkaSettings

if TYPE_CHECKING:  # the client is imported by whoever probes it: a process without Elasticsearch starts faster
    from elasticsearch import AsyncElasticsearch

__all__ = ["elasticsearch_ready", "kafka_ready", "sql_ready"]


def kafka_ready(settings: KafkaSettings) -> ReadinessCheck:
    async def probe() -> None:
        admin = AIOKafkaAdminClient(**client_kwargs(settings), client_id=f"{settings.client_id}-readiness")
        await admin.start()
        try:
            await admin.list_topics()
        finally:
            await admin.close()

    return ReadinessCheck("kafka", probe)


def elasticsearch_ready(es: AsyncElasticsearch) -> ReadinessCheck:
    from qingfeng.elastic import health

    async def probe() -> None:
        state = await health(es)
        if not state.ok:
            raise ConnectionError(f"elasticsearch {state.status}: {state.detail}")

    return ReadinessCheck("elasticsearch", probe)


def sql_ready(engine: AsyncEngine) -> ReadinessCheck:
    async def probe() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return ReadinessCheck("database", probe)
