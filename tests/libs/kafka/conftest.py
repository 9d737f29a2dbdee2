"""Fixtures for the Kafka helper tests: settings for the local broker, unique topics, an in-memory span exporter."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from qingfeng.kafka import Record, TopicSpec, ensure_topics, run_batches
from qingfeng.settings import KafkaSettings


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=kafka_bootstrap, client_id="qf-test", partitions=1, request_timeout_s=20)


@pytest.fixture
def span_exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    # A provider of our own, passed explicitly: the global one may belong to another test.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
async def new_topic(kafka_settings: KafkaSettings) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Create a topic with a unique name (tests never share topics or consumer groups); deleted afterwards."""
    created: list[str] = []

    async def make(partitions: int = 1, prefix: str = "qftest", config: dict[str, str] | None = None) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:12]}.v1"
        await ensure_topics(kafka_settings, [TopicSpec(name, partitions=partitions, config=config or {})])
        created.append(name)
        return name

    yield make
    await delete_topics(kafka_settings, created)


async def delete_topics(settings: KafkaSettings, names: list[str]) -> None:
    if not names:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


Consume = Callable[..., Awaitable[list[Record]]]


@pytest.fixture
def consume(kafka_settings: KafkaSettings, tracer_provider: TracerProvider) -> Consume:
    """``await consume(topic, group_id, count)``: run the batch runner until ``count`` records arrived."""

    async def run(topic: str, group_id: str, count: int, *, timeout_s: float = 30.0) -> list[Record]:
        stop = asyncio.Event()
        got: list[Record] = []

        async def handler(records: list[Record]) -> None:
            got.extend(records)
            if len(got) >= count:
                stop.set()

        await asyncio.wait_for(
            run_batches(kafka_settings, [topic], group_id, handler, stop, tracer_provider=tracer_provider), timeout_s
        )
        return got

    return run
