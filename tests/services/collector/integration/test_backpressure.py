"""Backpressure against the real broker: a held produce budget makes ImportPosts answer RESOURCE_EXHAUSTED with
RetryInfo, and `qingfeng import` waits as advised and re-sends, so every post reaches Kafka exactly once."""

from __future__ import annotations

import asyncio
import io
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from qingfeng.cli.import_posts import ImportTotals, import_file
from qingfeng.kafka import Delivery, OutgoingRecord, Producer
from qingfeng.rpc import CredentialInterceptor, build_server
from qingfeng.rpc.errors import retry_delay_of
from qingfeng.settings import GrpcSettings
from qingfeng.text import default_enricher
from qingfeng.v1 import post_pb2, source_pb2, source_pb2_grpc

from services.collector.core import Deduper
from services.collector.pipeline import Pipeline
from services.collector.server import CollectorServicer
from services.collector.settings import CollectorSettings, PipelineSettings
from services.collector.tips import TipDesk
from tests.identity import TRUST, as_caller, signed_channel
from tests.services.collector.harness import migrated_store
from tests.services.collector.integration.helpers import read_topic

pytestmark = pytest.mark.integration

_IMPORT = "/qingfeng.v1.CollectorService/ImportPosts"
RETRY_S = 0.3


class PausedDelivery:
    """The real producer behind a gate: records wait (unacknowledged, in the budget) until ``gate`` is set."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.gate = asyncio.Event()

    @property
    def max_request_size(self) -> int:
        return self.producer.max_request_size

    async def send_many(self, records: Iterable[OutgoingRecord]) -> list[Delivery]:
        batch = list(records)
        await self.gate.wait()
        return await self.producer.send_many(batch)


@dataclass
class Env:
    sink: PausedDelivery
    pipeline: Pipeline
    port: int
    settings: CollectorSettings


@pytest.fixture
async def env(settings: CollectorSettings, tmp_path: Path) -> AsyncIterator[Env]:
    async with Producer(settings.kafka) as producer, migrated_store(tmp_path / "collector.db") as (_, store):
        sink = PausedDelivery(producer)
        pipeline = Pipeline(
            sink,
            enricher=default_enricher(),
            deduper=Deduper(),
            # A budget of one post: one unacknowledged post holds it.
            settings=PipelineSettings(max_in_flight=1, admission_wait_s=0.2, retry_after_s=RETRY_S),
            topics=settings.topics,
        )
        servicer = CollectorServicer(store, pipeline, TipDesk(store, pipeline, None), import_chunk=100)
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
        try:
            yield Env(sink, pipeline, server.port, settings)
        finally:
            sink.gate.set()
            await server.server.stop(0)


def _line(i: int) -> str:
    item = {
        "id": f"bp{i}",
        "text": f"第{i}号通报：某县第{i * 7}局局长涉嫌受贿{i * 13}万元，纪委已介入",
        "created_at": "2015-03-01T10:00:00+08:00",
        "source": "weibo",
        "author": f"a{i}",
        "followers": 10,
        "reposts": 0,
        "comments": 0,
        "likes": 0,
    }
    return json.dumps(item, ensure_ascii=False)


def _held_post() -> post_pb2.Post:
    """A post of a scheduled source whose delivery is paused: it holds the whole budget."""
    post = post_pb2.Post(id="held-1", source_id="hz-daily", text="某市住建局副局长被查，涉嫌严重违纪违法")
    post.created_at.GetCurrentTime()
    return post


async def _import(port: int, lines: list[str]) -> source_pb2.ImportPostsResponse:
    async with signed_channel(f"127.0.0.1:{port}") as channel:
        stub = source_pb2_grpc.CollectorServiceStub(channel)
        requests = [source_pb2.ImportPostsRequest(jsonl_line=line) for line in lines]
        answer: source_pb2.ImportPostsResponse = await stub.ImportPosts(iter(requests))
        return answer


async def test_a_held_budget_answers_resource_exhausted_with_retry_info(env: Env) -> None:
    held = asyncio.create_task(env.pipeline.ingest([_held_post()]))
    await asyncio.sleep(0.05)
    assert env.pipeline.budget.in_flight == 1
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _import(env.port, [_line(i) for i in range(5)])
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_delay_of(refused.value) == pytest.approx(RETRY_S)
    env.sink.gate.set()
    await held
    answer = await _import(env.port, [_line(i) for i in range(5)])  # what the advice says: the same posts again
    assert answer.summary.accepted + answer.summary.duplicate == 5
    keys = Counter(key for key, _ in await read_topic(env.settings, env.settings.topics.posts, expect=6))
    assert len(keys) == 6
    assert set(keys.values()) == {1}


async def test_qingfeng_import_waits_as_advised_and_delivers_every_post_once(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(_line(i) + "\n" for i in range(40)), encoding="utf-8")
    held = asyncio.create_task(env.pipeline.ingest([_held_post()]))
    await asyncio.sleep(0.05)
    progress = io.StringIO()

    def run_import() -> ImportTotals:
        with grpc.insecure_channel(f"127.0.0.1:{env.port}") as channel:
            stub = source_pb2_grpc.CollectorServiceStub(channel)
            return import_file(
                stub,
                path,
                metadata=lambda: as_caller(_IMPORT, principal="ops-import", roles=("ops",)),
                chunk_lines=10,
                timeout_s=30,
                progress=progress,
                max_wait_s=60,
            )

    client = asyncio.create_task(asyncio.to_thread(run_import))
    await asyncio.sleep(1.5)  # the client is refused a few times meanwhile
    assert not client.done()
    env.sink.gate.set()
    totals = await asyncio.wait_for(client, timeout=60)
    await held
    assert totals.lines_sent == 40
    assert totals.accepted + totals.duplicate == 40
    assert totals.advised_retries >= 2
    assert "collector busy (RESOURCE_EXHAUSTED" in progress.getvalue()
    assert "resending lines 1-10" in progress.getvalue()
    records = await read_topic(env.settings, env.settings.topics.posts, expect=41)
    keys = Counter(key for key, _ in records)
    assert len(keys) == 41  # the held post and the 40 imported ones
    assert set(keys.values()) == {1}  # none twice
