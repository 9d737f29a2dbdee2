"""The pipeline over a sink that reports each record (``Producer.send_each``): when part of a slice fails, the posts
Kafka acknowledged are remembered (memory and store) and the rest are not, and the call still raises."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

import pytest
from qingfeng.kafka import Delivery, OutgoingRecord
from qingfeng.text import default_enricher
from qingfeng.v1 import post_pb2

from services.collector.core import Deduper
from services.collector.pipeline import Outcome, Pipeline, SettlingSink
from services.collector.settings import PipelineSettings
from tests.services.collector.unit.test_pipeline import NOW, STORY, TOPICS, FakeSink, post


class SettlingFake(FakeSink):
    """``send_each``: records whose event id is in ``refuse`` fail (as the records of a refused batch do)."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: set[str] = set()

    async def send_each(self, records: Iterable[OutgoingRecord]) -> list[Delivery | Exception]:
        out: list[Delivery | Exception] = []
        for i, record in enumerate(records):
            if record.event_id in self.refuse:
                out.append(ConnectionError(f"batch of {record.event_id} refused"))
            else:
                self.sent.append(record)
                out.append(Delivery(record.topic, 0, i))
        return out


class MemoryIds:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    async def known(self, post_ids: Sequence[str]) -> set[str]:
        return self.ids.intersection(post_ids)

    async def remember(self, post_ids: Collection[str], at: datetime) -> None:
        self.ids.update(post_ids)


def pipeline(sink: FakeSink, store: MemoryIds) -> Pipeline:
    return Pipeline(
        sink,
        enricher=default_enricher(),
        deduper=Deduper(),
        settings=PipelineSettings(slice_size=4),
        topics=TOPICS,
        clock=lambda: NOW,
        produced_ids=store,
    )


def posts(n: int) -> list[post_pb2.Post]:
    return [post(f"p{i}", f"{STORY}，补充细节编号{i * 7919}", minutes=i) for i in range(n)]


async def test_acknowledged_posts_of_a_failed_call_are_remembered_the_refused_are_not() -> None:
    sink, store = SettlingFake(), MemoryIds()
    assert isinstance(sink, SettlingSink) and not isinstance(FakeSink(), SettlingSink)
    ingest = pipeline(sink, store)
    sink.refuse = {"p2", "p5"}
    with pytest.raises(ConnectionError, match="p2"):  # the first failure in input order
        await ingest.ingest(posts(10))
    assert store.ids == {f"p{i}" for i in range(10)} - {"p2", "p5"}

    sink.refuse = set()
    sink.sent.clear()
    report = await ingest.ingest(posts(10))
    # The retry produces exactly the refused posts; the others are re-deliveries.
    assert sorted(r.event_id for r in sink.on(TOPICS.posts)) == ["p2", "p5"]
    redelivered = [r.post.id for r in report.results if r.redelivered and r.post is not None]
    assert sorted(redelivered) == sorted(f"p{i}" for i in range(10) if i not in (2, 5))
    assert all(r.outcome is Outcome.DUPLICATE for r in report.results if r.redelivered)
    assert store.ids == {f"p{i}" for i in range(10)}


async def test_a_sink_without_send_each_forgets_the_whole_failed_slice() -> None:
    sink, store = FakeSink(), MemoryIds()
    ingest = pipeline(sink, store)
    sink.fail = ConnectionError("down")
    with pytest.raises(ConnectionError):
        await ingest.ingest(posts(3))
    assert store.ids == set()
