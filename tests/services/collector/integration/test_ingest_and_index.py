"""Pipeline -> real Kafka -> indexer -> real Elasticsearch: posts arrive once on each, rejects are dead-lettered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from elasticsearch import AsyncElasticsearch
from qingfeng.elastic import ensure_index
from qingfeng.kafka import Producer
from qingfeng.v1 import common_pb2, post_pb2

from services.collector.app import build_pipeline
from services.collector.indexer import PostIndexer
from services.collector.ports import IngestSummary, Rejected
from services.collector.settings import CollectorSettings
from tests.services.collector.integration.helpers import dead_letters, read_topic, wait_for_count

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
STORIES = [
    "临沂市某局长涉嫌受贿数百万元，纪委已经介入调查",
    "城东道路施工封闭一周，请市民注意绕行安排出行",
    "某县教育局挪用扶贫款修建办公楼，群众强烈不满",
    "今天全市中小学开学，家长注意孩子上下学交通安全",
]


def post(native_id: str, text: str, minutes: int = 0, parent: str = "") -> post_pb2.Post:
    p = post_pb2.Post(
        id=f"weibo:test:{native_id}",
        source_id="test",
        source_kind=common_pb2.SOURCE_KIND_WEIBO_API,
        native_id=native_id,
        text=text,
        parent_id=parent,
    )
    p.created_at.FromDatetime(T0 + timedelta(minutes=minutes))
    return p


def the_posts() -> list[post_pb2.Post | Rejected]:
    items: list[post_pb2.Post | Rejected] = [post(str(i), text, i) for i, text in enumerate(STORIES)]
    items.append(post("copy", STORIES[0] + " http://t.cn/A6x", 10))  # a copy of story 0 (same once normalised)
    items.append(post("rt", "", 11, parent="weibo:test:0"))  # a repost without words
    items.append(post("big", "长" * 60_000, 12))  # too large
    items.append(
        Rejected(post_pb2.DEAD_LETTER_REASON_MALFORMED, "invalid JSON: Expecting value", b"{oops", "test", "f.jsonl:9")
    )
    return items


async def run_indexer_until(
    settings: CollectorSettings, es: AsyncElasticsearch, producer: Producer, expected: int
) -> tuple[str, int]:
    names = await ensure_index(es, settings.elasticsearch.index_prefix, "posts")
    indexer = PostIndexer(
        es, names.write_alias, producer, kafka=settings.kafka, topics=settings.topics, settings=settings.indexer
    )
    stop = asyncio.Event()
    task = asyncio.create_task(indexer.run(stop))
    try:
        count = await wait_for_count(es, names.read_alias, expected)
    finally:
        stop.set()
        await task
    return names.read_alias, count


async def test_posts_arrive_once_on_kafka_and_in_elasticsearch(
    settings: CollectorSettings, es: AsyncElasticsearch
) -> None:
    async with Producer(settings.kafka) as producer:
        pipeline = build_pipeline(settings, producer)
        summary = await pipeline(the_posts())
        again = await pipeline(the_posts()[:4])  # the same items delivered again (a re-fetch)
        assert summary == IngestSummary(accepted=5, duplicate=1, rejected=2)
        assert again == IngestSummary(duplicate=4)

        produced = await read_topic(settings, settings.topics.posts, expect=6)
        keys = [key for key, _ in produced]
        assert sorted(keys) == sorted({*(f"weibo:test:{i}" for i in range(4)), "weibo:test:copy", "weibo:test:rt"})
        copy = next(post_pb2.Post.FromString(v) for k, v in produced if k == "weibo:test:copy")
        assert copy.dedupe.duplicate_of == "weibo:test:0"

        read_alias, count = await run_indexer_until(settings, es, producer, expected=6)
    assert count == 6
    found = await es.search(index=read_alias, query={"match_phrase": {"text_simplified": "受贿"}})
    assert [hit["_id"] for hit in found.body["hits"]["hits"]] != []
    assert {hit["_id"] for hit in found.body["hits"]["hits"]} == {"weibo:test:0", "weibo:test:copy"}
    doc = (await es.get(index=settings.elasticsearch.index_prefix + "-posts", id="weibo:test:0")).body["_source"]
    assert "CORRUPTION_CATEGORY_BRIBERY" in doc["corruption_categories"]
    assert doc["source_kind"] == "SOURCE_KIND_WEIBO_API" and doc["duplicate_of"] == ""
    assert "371300" in doc["region_codes"]


async def test_rejects_land_in_the_dead_letter_topic_with_reasons(settings: CollectorSettings) -> None:
    async with Producer(settings.kafka) as producer:
        await build_pipeline(settings, producer)(the_posts())
    letters = dead_letters(await read_topic(settings, settings.topics.posts_deadletter, expect=2))
    by_reason = {letter.reason: letter for letter in letters}
    assert set(by_reason) == {post_pb2.DEAD_LETTER_REASON_TOO_LARGE, post_pb2.DEAD_LETTER_REASON_MALFORMED}
    too_large = by_reason[post_pb2.DEAD_LETTER_REASON_TOO_LARGE]
    assert "60000 characters" in too_large.message and too_large.key == "weibo:test:big"
    malformed = by_reason[post_pb2.DEAD_LETTER_REASON_MALFORMED]
    assert malformed.payload == b"{oops" and "f.jsonl:9" in malformed.message
    assert all(letter.topic == settings.topics.posts for letter in letters)


async def test_undecodable_records_are_dead_lettered_by_the_indexer(
    settings: CollectorSettings, es: AsyncElasticsearch
) -> None:
    raw = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await raw.start()
    try:
        await raw.send_and_wait(settings.topics.posts, b"\xff\xfenot a post", key=b"junk")
    finally:
        await raw.stop()
    async with Producer(settings.kafka) as producer:
        await build_pipeline(settings, producer)([post("ok", STORIES[1])])
        _, count = await run_indexer_until(settings, es, producer, expected=1)
    assert count == 1
    [letter] = dead_letters(await read_topic(settings, settings.topics.deadletter, expect=1))
    assert letter.reason == post_pb2.DEAD_LETTER_REASON_UNDECODABLE
    assert letter.payload == b"\xff\xfenot a post" and letter.key == "junk"
    assert letter.source == "collector-indexer"
