"""Backpressure: the produce budget refuses with retry advice instead of buffering, and nothing is produced twice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from aiokafka.errors import KafkaConnectionError
from google.rpc import code_pb2, error_details_pb2  # type: ignore[import-untyped]
from qingfeng.kafka import Delivery, OutgoingRecord
from qingfeng.rpc.errors import retry_delay_of, status_of
from qingfeng.text import default_enricher
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.budget import BudgetConfig, KafkaStalled, ProduceBudget, ProduceOverloaded
from services.collector.core import Deduper
from services.collector.pipeline import Outcome, Pipeline
from services.collector.ports import IngestSummary
from services.collector.scheduler import Scheduler, SchedulerConfig
from services.collector.server import CollectorServicer
from services.collector.settings import CollectorTopics, PipelineSettings
from services.collector.sources.base import Outcome as FetchOutcome
from services.collector.tips import TipDesk
from tests.services.collector.fakes import FakeSourceStore, make_source
from tests.services.collector.harness import migrated_store, serving

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
TOPICS = CollectorTopics(posts="t.posts", posts_deadletter="t.posts.dl", deadletter="t.dl")


class HeldSink:
    """A Kafka that takes records and acknowledges them only when ``gate`` is set (a stalled broker)."""

    max_request_size = 1_048_576

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.sent: list[OutgoingRecord] = []

    async def send_many(self, records: Iterable[OutgoingRecord]) -> list[Delivery]:
        batch = list(records)
        await self.gate.wait()
        self.sent.extend(batch)
        return [Delivery(r.topic, 0, i) for i, r in enumerate(batch)]


def _post(i: int) -> post_pb2.Post:
    post = post_pb2.Post(id=f"p{i}", source_id="s", text=f"第{i}条：某局长涉嫌受贿，网友热议。")
    post.created_at.FromDatetime(NOW)
    return post


def _pipeline(sink: HeldSink, **settings: float) -> Pipeline:
    return Pipeline(
        sink,
        enricher=default_enricher(),
        deduper=Deduper(),
        settings=PipelineSettings(slice_size=2, **settings),  # type: ignore[arg-type]
        topics=TOPICS,
        clock=lambda: NOW,
    )


def _details(err: Exception) -> dict[str, object]:
    status = status_of(err)  # type: ignore[arg-type]
    found: dict[str, object] = {"code": status.code}
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            found["retry_s"] = info.retry_delay.ToMilliseconds() / 1000
    return found


async def test_a_full_budget_refuses_with_resource_exhausted_and_retry_info() -> None:
    budget = ProduceBudget(BudgetConfig(limit=3, admission_wait_s=0.05, retry_after_s=1.5))
    await budget.acquire(3)
    assert budget.saturated
    with pytest.raises(ProduceOverloaded) as caught:
        await budget.acquire(1)
    assert _details(caught.value) == {"code": code_pb2.RESOURCE_EXHAUSTED, "retry_s": 1.5}
    await budget.release(2, acknowledged=True)
    await budget.acquire(1)  # room again
    assert budget.in_flight == 2


async def test_one_batch_larger_than_the_budget_is_admitted_when_nothing_is_in_flight() -> None:
    budget = ProduceBudget(BudgetConfig(limit=1, admission_wait_s=0.01))
    await budget.acquire(500)
    assert budget.in_flight == 500


async def test_a_budget_without_acknowledgements_says_kafka_is_unavailable() -> None:
    now = [100.0]
    budget = ProduceBudget(
        BudgetConfig(limit=1, admission_wait_s=0.01, stall_after_s=10, stalled_retry_after_s=7),
        clock=lambda: now[0],
    )
    await budget.acquire(1)
    now[0] += 11
    assert budget.stalled
    with pytest.raises(KafkaStalled) as caught:
        await budget.acquire(1)
    assert _details(caught.value) == {"code": code_pb2.UNAVAILABLE, "retry_s": 7.0}


async def test_a_held_kafka_refuses_the_next_call_and_its_retry_produces_each_post_once() -> None:
    sink = HeldSink()
    pipeline = _pipeline(sink, max_in_flight=2, admission_wait_s=0.05)
    first = asyncio.create_task(pipeline.ingest([_post(1), _post(2)]))
    await asyncio.sleep(0.01)
    assert pipeline.budget.in_flight == 2
    with pytest.raises(ProduceOverloaded):
        await pipeline.ingest([_post(3), _post(1)])
    sink.gate.set()
    report = await first
    assert [r.outcome for r in report.results] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    again = await pipeline.ingest([_post(3), _post(1)])  # the client's retry of the refused call
    assert [r.outcome for r in again.results] == [Outcome.ACCEPTED, Outcome.DUPLICATE]
    assert sorted(str(r.key) for r in sink.sent) == ["p1", "p2", "p3"]
    assert pipeline.budget.in_flight == 0


async def test_unacknowledged_sends_time_out_as_unavailable_and_are_not_produced_again() -> None:
    sink = HeldSink()
    pipeline = _pipeline(sink, ack_timeout_s=0.05, admission_wait_s=0.05)
    with pytest.raises(KafkaStalled) as caught:
        await pipeline.ingest([_post(1), _post(2), _post(3)])
    assert _details(caught.value)["code"] == code_pb2.UNAVAILABLE
    assert pipeline.budget.in_flight == 3  # still in flight: the budget keeps counting them
    # A retry while those sends are still pending waits for them, then is refused again rather than re-sending.
    with pytest.raises(ProduceOverloaded):
        await pipeline.ingest([_post(1)])
    sink.gate.set()
    for _ in range(20):
        await asyncio.sleep(0)
    retry = await pipeline.ingest([_post(1), _post(2), _post(3)])
    assert [r.outcome for r in retry.results] == [Outcome.DUPLICATE] * 3
    assert [r.redelivered for r in retry.results] == [True] * 3
    assert sorted(str(r.key) for r in sink.sent) == ["p1", "p2", "p3"]
    assert pipeline.budget.in_flight == 0


async def test_a_cancelled_call_leaves_its_sends_to_settle_and_be_remembered() -> None:
    sink = HeldSink()
    pipeline = _pipeline(sink)
    call = asyncio.create_task(pipeline.ingest([_post(1), _post(2)]))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    sink.gate.set()
    for _ in range(20):
        await asyncio.sleep(0)
    again = await pipeline.ingest([_post(1), _post(2)])
    assert [r.outcome for r in again.results] == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert len(sink.sent) == 2


async def test_the_scheduler_starts_no_fetch_while_the_budget_is_full() -> None:
    store = FakeSourceStore([make_source(common_pb2.SOURCE_KIND_RSS, "a", url="https://example.org/feed")])
    full = [True]

    async def ingest(items: object) -> object:
        raise AssertionError("nothing is fetched")

    scheduler = Scheduler(store, ingest, {}, SchedulerConfig(), pressure=lambda: full[0])  # type: ignore[arg-type]
    assert await scheduler.tick() == []
    full[0] = False
    started = await scheduler.tick()
    assert len(started) == 1
    await asyncio.gather(*started)


async def test_a_refused_page_is_handed_again_after_the_advice() -> None:
    calls: list[int] = []

    async def ingest(items: list[post_pb2.Post]) -> object:
        calls.append(len(items))
        if len(calls) < 3:
            raise ProduceOverloaded("busy", retry_delay_s=0.01)
        return IngestSummary(accepted=len(items))

    class OnePage:
        async def collect(self, source: object, state: object, emit: object) -> object:
            await emit([_post(1), _post(2)])  # type: ignore[operator]
            return FetchOutcome()

    source = make_source(common_pb2.SOURCE_KIND_RSS, "a", url="https://example.org/feed")
    store = FakeSourceStore([source])
    scheduler = Scheduler(store, ingest, {common_pb2.SOURCE_KIND_RSS: OnePage()})  # type: ignore[arg-type,dict-item]
    report = await scheduler.fetch(source)
    assert report.error is None
    assert calls == [2, 2, 2]
    assert report.summary.accepted == 2


class BrokenSink(HeldSink):
    """A Kafka that fails every send, as an unreachable broker does once aiokafka gives up."""

    async def send_many(self, records: Iterable[OutgoingRecord]) -> list[Delivery]:
        raise KafkaConnectionError("no broker")


async def _refusal_of(pipeline: Pipeline, tmp_path: Path) -> grpc.aio.AioRpcError:
    async with migrated_store(tmp_path / "c.db") as (_, store):
        servicer = CollectorServicer(store, pipeline, TipDesk(store, pipeline, None), kafka_retry_after_s=4.0)
        async with serving(servicer) as stub:
            requests = [source_pb2.ImportPostsRequest(post=_post(i)) for i in range(3)]
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ImportPosts(iter(requests))
    return refused.value


async def test_import_over_an_unreachable_kafka_is_unavailable_with_retry_info(tmp_path: Path) -> None:
    refused = await _refusal_of(_pipeline(BrokenSink()), tmp_path)
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    assert retry_delay_of(refused) == 4.0


async def test_import_over_a_stalled_kafka_is_unavailable_with_the_stall_advice(tmp_path: Path) -> None:
    sink = HeldSink()
    refused = await _refusal_of(_pipeline(sink, ack_timeout_s=0.1, stalled_retry_after_s=6.0), tmp_path)
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    assert retry_delay_of(refused) == 6.0
    sink.gate.set()
