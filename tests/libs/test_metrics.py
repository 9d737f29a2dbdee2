"""Consumer lag as a metric: after producing N records and consuming M, the gauge (and /metrics) says N - M."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from qingfeng.kafka import OutgoingRecord, Producer, Record, TopicSpec, ensure_topics, run_batches
from qingfeng.metrics import ConsumerLag, serve_metrics
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import post_pb2

from tests.libs.kafka.conftest import delete_topics

pytestmark = pytest.mark.integration

Lagging = Callable[[int, int], Awaitable[tuple[str, str]]]


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=kafka_bootstrap, client_id="qf-test-lag", partitions=1, request_timeout_s=20)


@pytest.fixture
async def lagging(kafka_settings: KafkaSettings) -> AsyncIterator[Lagging]:
    """``await lagging(n, m)``: a new one-partition topic with ``n`` records, of which a new group consumed and
    committed the first ``m``; returns (topic, group). Topics are deleted afterwards."""
    created: list[str] = []

    async def make(produced: int, consumed: int) -> tuple[str, str]:
        suffix = uuid.uuid4().hex[:12]
        topic, group = f"qftest.lag.{suffix}.v1", f"qftest-lag-{suffix}"
        await ensure_topics(kafka_settings, [TopicSpec(topic, partitions=1)])
        created.append(topic)
        async with Producer(kafka_settings) as producer:
            records = [
                OutgoingRecord(topic, f"p{i}", post_pb2.Post(id=f"p{i}"), "post.collected", f"p{i}")
                for i in range(produced)
            ]
            await producer.send_many(records)
        stop = asyncio.Event()
        seen: list[Record] = []

        async def handle(batch: list[Record]) -> None:
            seen.extend(batch)
            stop.set()  # one batch of at most `consumed` records, committed, then the runner stops

        await asyncio.wait_for(
            run_batches(kafka_settings, [topic], group, handle, stop, max_records=consumed), timeout=60
        )
        assert len(seen) == consumed
        return topic, group

    yield make
    await delete_topics(kafka_settings, created)


async def test_the_lag_gauge_is_end_offset_minus_committed(lagging: Lagging) -> None:
    topic, group = await lagging(30, 10)
    assert ConsumerLag(group).value(topic, 0) == 20.0
    port = serve_metrics(0)
    assert port is not None
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    line = f'qingfeng_kafka_consumer_lag{{group="{group}",partition="0",topic="{topic}"}} 20.0'
    assert line in text.splitlines()


def test_metrics_are_off_without_a_port() -> None:
    assert serve_metrics(None) is None
