"""The ingest pipeline against an in-memory sink: validation, enrichment, dedupe, re-delivery, dead letters, acks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from qingfeng.kafka import Delivery, OutgoingRecord
from qingfeng.kafka.deadletter import ORIGINAL_TOPIC
from qingfeng.text import default_enricher
from qingfeng.v1 import common_pb2, post_pb2

from services.collector.core import Deduper
from services.collector.pipeline import POST_EVENT_TYPE, Outcome, Pipeline
from services.collector.ports import IngestSummary, Rejected
from services.collector.settings import CollectorTopics, PipelineSettings

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
TOPICS = CollectorTopics(posts="t.posts", posts_deadletter="t.posts.dl", deadletter="t.dl")


class FakeSink:
    """Records what the pipeline sends; ``fail`` makes the next send raise like a Kafka outage."""

    def __init__(self, max_request_size: int = 1_048_576) -> None:
        self.max_request_size = max_request_size
        self.sent: list[OutgoingRecord] = []
        self.fail: Exception | None = None
        self.calls = 0
        self.gate: asyncio.Event | None = None  # when set, sends wait for it (acks held back)

    async def send_many(self, records: Iterable[OutgoingRecord]) -> list[Delivery]:
        self.calls += 1
        batch = list(records)
        fail = self.fail
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        if fail is not None:
            raise fail
        self.sent.extend(batch)
        return [Delivery(r.topic, 0, i) for i, r in enumerate(batch)]

    def on(self, topic: str) -> list[OutgoingRecord]:
        return [r for r in self.sent if r.topic == topic]


def make_pipeline(sink: FakeSink, **limits: Any) -> Pipeline:
    return Pipeline(
        sink,
        enricher=default_enricher(),
        deduper=Deduper(),
        settings=PipelineSettings(**limits),
        topics=TOPICS,
        clock=lambda: NOW,
    )


def post(post_id: str, text: str, *, minutes: int = 0, **fields: Any) -> post_pb2.Post:
    p = post_pb2.Post(id=post_id, source_id="src", source_kind=common_pb2.SOURCE_KIND_WEIBO_API, text=text, **fields)
    p.created_at.FromDatetime(NOW - timedelta(hours=1) + timedelta(minutes=minutes))
    return p


STORY = "临沂市委书记涉嫌受贿数百万元，群众明天准备去市政府门口静坐，要求纪委彻查此事"


async def test_new_post_is_enriched_and_produced_keyed_by_id() -> None:
    sink = FakeSink()
    summary = await make_pipeline(sink)([post("p1", STORY)])
    assert summary == IngestSummary(accepted=1)
    [record] = sink.on(TOPICS.posts)
    assert (record.key, record.event_id, record.event_type) == ("p1", "p1", POST_EVENT_TYPE)
    produced = record.message
    assert isinstance(produced, post_pb2.Post)
    assert produced.text_simplified.startswith("临沂市委书记")
    assert {t.term for t in produced.enrichment.corruption_terms} >= {"受贿"}
    assert post_pb2.CORRUPTION_CATEGORY_BRIBERY in {t.category for t in produced.enrichment.corruption_terms}
    assert produced.enrichment.regions[0].code == "371300"  # 临沂市, the most specific region, first
    assert "370000" in {r.code for r in produced.enrichment.regions}  # the province it implies
    sit_in = [s for s in produced.enrichment.offline_signals if s.term == "静坐"]
    assert sit_in and sit_in[0].kind == post_pb2.OFFLINE_ACTION_KIND_SIT_IN and sit_in[0].planned
    assert produced.enrichment.relevance > 0.5 and produced.enrichment.relevance_reasons
    assert produced.dedupe.content_hash and produced.dedupe.simhash and not produced.dedupe.duplicate_of
    assert produced.keywords
    assert produced.collected_at.ToDatetime(UTC) == NOW


async def test_traditional_text_is_simplified_for_search() -> None:
    sink = FakeSink()
    await make_pipeline(sink)([post("p1", "臨沂市委書記貪污受賄被雙規")])
    produced = sink.on(TOPICS.posts)[0].message
    assert isinstance(produced, post_pb2.Post)
    assert produced.text == "臨沂市委書記貪污受賄被雙規"
    assert produced.text_simplified == "临沂市委书记贪污受贿被双规"


async def test_copies_are_produced_linked_to_the_original_and_counted_as_duplicates() -> None:
    sink = FakeSink()
    pipeline = make_pipeline(sink)
    summary = await pipeline(
        [
            post("orig", STORY),
            post("copy", STORY + " http://t.cn/abc", minutes=5),
            post("other", "今天天气很好适合出门散步"),
        ]
    )
    assert summary == IngestSummary(accepted=2, duplicate=1)
    produced = {r.key: r.message for r in sink.on(TOPICS.posts)}
    assert set(produced) == {"orig", "copy", "other"}
    copy = produced["copy"]
    assert isinstance(copy, post_pb2.Post)
    assert copy.dedupe.duplicate_of == "orig"
    assert copy.dedupe.duplicate_kind == post_pb2.DUPLICATE_KIND_EXACT


async def test_redelivered_ids_are_not_produced_again() -> None:
    sink = FakeSink()
    pipeline = make_pipeline(sink)
    await pipeline([post("p1", STORY)])
    report = await pipeline.ingest([post("p1", STORY), post("p2", "另一条完全不同的消息内容，关于道路施工")])
    assert report.summary == IngestSummary(accepted=1, duplicate=1)
    assert report.results[0].redelivered
    assert [r.key for r in sink.on(TOPICS.posts)] == ["p1", "p2"]


async def test_the_same_id_twice_in_one_call_is_produced_once() -> None:
    sink = FakeSink()
    items = [post("same", STORY)] + [post(f"x{i}", f"第{i}条不相关的消息，内容各不相同{i * 7919}") for i in range(5)]
    items.append(post("same", STORY))
    summary = await make_pipeline(sink, slice_size=2)(items)
    assert summary == IngestSummary(accepted=6, duplicate=1)
    assert [r.key for r in sink.on(TOPICS.posts)].count("same") == 1


@pytest.mark.parametrize(
    ("bad", "reason", "words"),
    [
        (post("", "有内容"), post_pb2.DEAD_LETTER_REASON_INVALID, "no id"),
        (post_pb2.Post(id="p", text="有内容"), post_pb2.DEAD_LETTER_REASON_INVALID, "source_id"),
        (post("p", "   "), post_pb2.DEAD_LETTER_REASON_INVALID, "neither text nor title"),
        (post("p", "长" * 60_000), post_pb2.DEAD_LETTER_REASON_TOO_LARGE, "60000 characters"),
        (post("p", "有内容", reposts=-1), post_pb2.DEAD_LETTER_REASON_INVALID, "negative"),
    ],
)
async def test_invalid_posts_are_dead_lettered_with_the_reason(bad: post_pb2.Post, reason: int, words: str) -> None:
    sink = FakeSink()
    report = await make_pipeline(sink).ingest([bad])
    assert report.summary == IngestSummary(rejected=1)
    assert report.results[0].rejected is not None and words in report.results[0].rejected.message
    assert not sink.on(TOPICS.posts)
    [record] = sink.on(TOPICS.posts_deadletter)
    letter = record.message
    assert isinstance(letter, post_pb2.DeadLetter)
    assert letter.reason == reason and words in letter.message
    assert letter.topic == TOPICS.posts
    assert post_pb2.Post.FromString(letter.payload).id == bad.id
    assert (ORIGINAL_TOPIC, TOPICS.posts.encode()) in record.extra_headers


async def test_a_repost_without_words_is_a_valid_post() -> None:
    sink = FakeSink()
    summary = await make_pipeline(sink)([post("orig", STORY), post("rt", "", parent_id="orig")])
    assert summary == IngestSummary(accepted=2)


async def test_a_post_from_the_future_is_invalid() -> None:
    sink = FakeSink()
    future = post("p", "有内容")
    future.created_at.FromDatetime(NOW + timedelta(days=3))
    assert (await make_pipeline(sink)([future])).rejected == 1


async def test_rejects_from_adapters_go_to_the_dead_letter_topic() -> None:
    sink = FakeSink()
    rejected = Rejected(
        reason=post_pb2.DEAD_LETTER_REASON_MALFORMED,
        message="line 3: bad JSON",
        payload=b"{not json",
        source_id="import",
        origin="file.jsonl:3",
    )
    summary = await make_pipeline(sink)([rejected, post("ok", STORY)])
    assert summary == IngestSummary(accepted=1, rejected=1)
    letter = sink.on(TOPICS.posts_deadletter)[0].message
    assert isinstance(letter, post_pb2.DeadLetter)
    assert letter.payload == b"{not json" and letter.source == "import"
    assert "file.jsonl:3" in letter.message and letter.headers["origin"] == "file.jsonl:3"


async def test_an_enriched_post_over_the_record_limit_is_too_large() -> None:
    sink = FakeSink(max_request_size=8 * 1024)
    summary = await make_pipeline(sink)([post("big", "受贿" * 2_400)])
    assert summary == IngestSummary(rejected=1)
    letter = sink.on(TOPICS.posts_deadletter)[0].message
    assert isinstance(letter, post_pb2.DeadLetter) and letter.reason == post_pb2.DEAD_LETTER_REASON_TOO_LARGE


async def test_a_failed_send_raises_and_nothing_is_remembered_as_produced() -> None:
    sink = FakeSink()
    pipeline = make_pipeline(sink)
    sink.fail = ConnectionError("broker down")
    with pytest.raises(ConnectionError):
        await pipeline([post("p1", STORY)])
    sink.fail = None
    # The retry produces it: the failed attempt is not mistaken for a re-delivery.
    assert await pipeline([post("p1", STORY)]) == IngestSummary(accepted=1)
    assert [r.key for r in sink.on(TOPICS.posts)] == ["p1"]


async def test_missing_created_at_defaults_to_collection_time() -> None:
    sink = FakeSink()
    p = post_pb2.Post(id="p", source_id="src", text="某局长涉嫌受贿")
    await make_pipeline(sink)([p])
    produced = sink.on(TOPICS.posts)[0].message
    assert isinstance(produced, post_pb2.Post)
    assert produced.created_at == produced.collected_at


async def test_the_source_regions_on_the_post_come_first_and_the_input_is_not_modified() -> None:
    sink = FakeSink()
    p = post("p", "临沂市委书记涉嫌受贿")
    p.enrichment.regions.add(code="371302", name="兰山区")
    await make_pipeline(sink)([p])
    produced = sink.on(TOPICS.posts)[0].message
    assert isinstance(produced, post_pb2.Post)
    assert [r.code for r in produced.enrichment.regions][:2] == ["371302", "371300"]
    assert not p.text_simplified  # the caller's message is left as it was


async def test_slices_are_acknowledged_before_the_call_returns() -> None:
    sink = FakeSink()
    items = [post(f"p{i}", f"第{i}条消息：某县{i}号文件关于道路{i * 31}号维修的通知") for i in range(23)]
    report = await make_pipeline(sink, slice_size=5).ingest(items)
    assert sink.calls == 5
    assert len(sink.on(TOPICS.posts)) == 23
    assert [r.outcome for r in report.results].count(Outcome.REJECTED) == 0


async def test_concurrent_calls_never_produce_the_same_post_twice() -> None:
    sink = FakeSink()
    sink.gate = asyncio.Event()
    pipeline = make_pipeline(sink)
    items = [post(f"p{i}", f"第{i}条：某县{i}号道路维修工程通知，编号{i * 7919}") for i in range(6)]
    first = asyncio.create_task(pipeline(items[:4]))
    await asyncio.sleep(0.01)  # the first call's records are sent, not yet acknowledged
    second = asyncio.create_task(pipeline(items[2:]))
    await asyncio.sleep(0.01)
    assert not second.done()  # it waits for p2, p3 to settle rather than producing them again
    sink.gate.set()
    assert await first == IngestSummary(accepted=4)
    assert await second == IngestSummary(accepted=2, duplicate=2)
    assert sorted(str(r.key) for r in sink.on(TOPICS.posts)) == [f"p{i}" for i in range(6)]


async def test_a_post_whose_concurrent_send_failed_is_produced_by_the_waiting_call() -> None:
    sink = FakeSink()
    sink.gate = asyncio.Event()
    pipeline = make_pipeline(sink)
    sink.fail = ConnectionError("broker down")
    first = asyncio.create_task(pipeline([post("p1", STORY)]))
    await asyncio.sleep(0.01)
    sink.fail = None
    second = asyncio.create_task(pipeline([post("p1", STORY)]))
    await asyncio.sleep(0.01)
    sink.gate.set()
    with pytest.raises(ConnectionError):
        await first
    assert await second == IngestSummary(accepted=1)
    assert [r.key for r in sink.on(TOPICS.posts)] == ["p1"]


async def test_a_slice_is_enriched_together_with_one_result_per_item_in_order() -> None:
    # Long posts are enriched a batch at a time (enrich_posts); the results must follow the items one to one.
    sink = FakeSink()
    places = ["临沂", "潍坊", "济宁", "烟台", "威海", "德州"]
    offices = ["交通局", "教育局", "卫健委", "国土局", "水务局", "住建局"]
    long_texts = [
        "".join(
            f"{places[i]}{offices[(i + k) % 6]}第{k * 31 + i}号通报：{k + i * 17}名干部违规收受礼金{k * 97}元。"
            for k in range(12)
        )
        for i in range(6)
    ]
    items: list[post_pb2.Post | Rejected] = [post(f"l{i}", text) for i, text in enumerate(long_texts)]
    items.insert(2, post("", "无编号"))
    items.insert(4, post("l0", long_texts[0]))
    report = await make_pipeline(sink, slice_size=100).ingest(items)
    outcomes = [(r.outcome, r.post.id if r.post is not None else "") for r in report.results]
    assert outcomes == [
        (Outcome.ACCEPTED, "l0"),
        (Outcome.ACCEPTED, "l1"),
        (Outcome.REJECTED, ""),
        (Outcome.ACCEPTED, "l2"),
        (Outcome.DUPLICATE, "l0"),
        (Outcome.ACCEPTED, "l3"),
        (Outcome.ACCEPTED, "l4"),
        (Outcome.ACCEPTED, "l5"),
    ]
    assert report.results[4].redelivered
    one_by_one = FakeSink()
    single = make_pipeline(one_by_one, slice_size=1)
    for i, text in enumerate(long_texts):
        await single([post(f"l{i}", text)])
    assert [r.message for r in sink.on(TOPICS.posts)] == [r.message for r in one_by_one.on(TOPICS.posts)]


async def test_a_second_copy_of_a_refused_post_is_judged_again_not_called_a_redelivery() -> None:
    sink = FakeSink(max_request_size=8 * 1024)
    report = await make_pipeline(sink).ingest([post("big", "受贿" * 2_400), post("big", "受贿" * 2_400)])
    assert [r.outcome for r in report.results] == [Outcome.REJECTED, Outcome.REJECTED]
    assert not sink.on(TOPICS.posts)
