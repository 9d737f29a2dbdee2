"""Issue 13: ids read back from the posts topic's tail join the pipeline's memory of produced ids.

A restarted pipeline (empty memory, no store) told the ids of the tail answers a re-sent chunk as re-deliveries and
sends nothing for them; ids it does not know are produced as usual; the memory stays bounded by ``remember_ids``.
"""

from __future__ import annotations

from services.collector.pipeline import Outcome
from tests.services.collector.unit.test_pipeline import STORY, TOPICS, FakeSink, make_pipeline, post

TEXTS = [f"{STORY}，第{i}位网友补充了新的细节编号{i * 7919}" for i in range(6)]


async def test_recalled_ids_are_redeliveries_and_not_produced() -> None:
    sink = FakeSink()
    pipeline = make_pipeline(sink)
    assert pipeline.recall_produced(["p0", "p1", "p2", "p1"]) == 3
    report = await pipeline.ingest([post(f"p{i}", text) for i, text in enumerate(TEXTS[:4])])
    outcomes = [(r.outcome, r.redelivered) for r in report.results]
    assert outcomes == [(Outcome.DUPLICATE, True)] * 3 + [(Outcome.ACCEPTED, False)]
    assert [r.key for r in sink.on(TOPICS.posts)] == ["p3"]


async def test_recall_counts_only_ids_memory_did_not_know() -> None:
    sink = FakeSink()
    pipeline = make_pipeline(sink)
    await pipeline.ingest([post("p0", TEXTS[0])])
    assert pipeline.recall_produced(["p0", "p1"]) == 1
    assert pipeline.recall_produced([]) == 0


async def test_recall_keeps_the_last_ids_within_remember_ids() -> None:
    sink = FakeSink()
    pipeline = make_pipeline(sink, remember_ids=2)
    pipeline.recall_produced(["p0", "p1", "p2"])  # offset order: p0 is the oldest
    report = await pipeline.ingest([post(f"p{i}", text) for i, text in enumerate(TEXTS[:3])])
    assert [r.redelivered for r in report.results] == [False, True, True]
    assert [r.key for r in sink.on(TOPICS.posts)] == ["p0"]
