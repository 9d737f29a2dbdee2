"""Helpers of the grader's integration tests: a synthetic post stream, producing it, reading topics back.

The stream (event time from T0, one post id space, posts in time order):
- "trickle": an original and four reposts, 20 minutes apart: blue;
- "media burst": a media account's original and 80 reposts in 8 minutes, many comments, two cities of one
  province: orange;
- "offline": 360 reposts in 30 minutes from distinct authors across provinces, planned gatherings mentioned, media
  joining: red, then, once the offline talk has left the 1-hour window and the cool-down passed, back down;
- "tail": one post every 5 minutes for ~2 hours of event time (a story of its own), which moves event time on;
- a few one-off posts that open events of their own and stay below blue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from qingfeng.kafka import OutgoingRecord, Producer
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import common_pb2, event_pb2, post_pb2

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
POST_EVENT_TYPE = "post.collected"


def _post(n: int, at: datetime, *, author: str, parent: str = "", **fields: object) -> post_pb2.Post:
    regions = fields.pop("regions", ())
    offline = fields.pop("offline", False)
    media = bool(fields.pop("media", False))
    followers = int(fields.pop("followers", 1000))  # type: ignore[call-overload]
    text = str(fields.pop("text", f"帖子 {n}"))
    post = post_pb2.Post(
        id=f"jsonl:synthetic:{n}",
        source_id="synthetic",
        source_kind=common_pb2.SOURCE_KIND_JSONL_IMPORT,
        platform="weibo.com",
        author=post_pb2.Author(id=author, name=author, followers=followers, is_media=media),
        text=text,
        text_simplified=text,
        parent_id=parent,
        root_id=parent,
        **fields,  # type: ignore[arg-type]
    )
    post.created_at.FromDatetime(at)
    post.collected_at.FromDatetime(at)
    post.enrichment.relevance = 0.5
    for code in regions:  # type: ignore[attr-defined]
        post.enrichment.regions.add(code=code, name=f"地区{code}")
    if offline:
        post.enrichment.offline_signals.add(kind=post_pb2.OFFLINE_ACTION_KIND_GATHERING, term="聚集", planned=True)
    return post


def synthetic_stream() -> list[post_pb2.Post]:
    """About 530 posts over 3.5 hours of event time, in time order (see the module docstring)."""
    rows: list[tuple[datetime, dict[str, object]]] = []

    def add(at: datetime, **fields: object) -> None:
        rows.append((at, fields))

    # trickle
    add(T0, key="a0", author="ta0", text="某县教育局长被指收受家长礼金")
    for i in range(1, 5):
        add(T0 + timedelta(minutes=20 * i), parent="a0", author=f"ta{i}")
    # media burst
    b0 = T0 + timedelta(minutes=10)
    add(
        b0,
        key="b0",
        author="news",
        media=True,
        followers=800_000,
        text="某市住建局副局长违规经商办企业",
        regions=("330100",),
    )
    for i in range(1, 81):
        add(b0 + timedelta(seconds=6 * i), parent="b0", author=f"tb{i}", comments=40,
            regions=("330100",) if i % 2 else ("330200",))  # fmt: skip
    # offline
    c0 = T0 + timedelta(minutes=30)
    add(c0, key="c0", author="tc0", text="某区征地补偿款被挪用，村民相约明天到区政府聚集", regions=("110105",))
    for i in range(1, 361):
        add(c0 + timedelta(seconds=5 * i), parent="c0", author=f"tc{i}", offline=i % 10 == 0,
            media=i % 90 == 0, regions=(("110105",), ("310101",), ("440103",))[i % 3])  # fmt: skip
    # tail: moves event time on for two hours
    e0 = T0 + timedelta(minutes=60)
    add(e0, key="e0", author="te0", text="某镇卫生院院长被举报公车私用")
    for i in range(1, 30):
        add(e0 + timedelta(minutes=5 * i), parent="e0", author=f"te{i}")
    # one-offs
    for i in range(12):
        add(T0 + timedelta(minutes=7 + 15 * i, seconds=3), author=f"solo{i}", text=f"无关帖子 {i}")
    rows.sort(key=lambda r: r[0])
    keys: dict[str, str] = {}
    posts: list[post_pb2.Post] = []
    for n, (at, fields) in enumerate(rows):
        key = str(fields.pop("key", ""))
        parent = str(fields.pop("parent", ""))
        # Strictly increasing times: the order of the stream is then the same however it is split or fetched.
        at += timedelta(microseconds=n)
        post = _post(n, at, parent=keys.get(parent, ""), **fields)  # type: ignore[arg-type]
        if key:
            keys[key] = post.id
        posts.append(post)
    return posts


async def produce_posts(producer: Producer, topic: str, posts: Sequence[post_pb2.Post]) -> None:
    """Produce in order, keyed by post id, as the collector does."""
    records = [OutgoingRecord(topic, p.id, p, POST_EVENT_TYPE, p.id) for p in posts]
    for i in range(0, len(records), 200):
        await producer.send_many(records[i : i + 200])


async def read_topic(
    settings: KafkaSettings, topic: str, *, expect: int = 0, timeout_s: float = 30.0
) -> list[tuple[str, bytes, dict[str, bytes]]]:
    """Every (key, value, headers) on ``topic`` from the beginning to its end (waiting for ``expect`` records)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        out: list[tuple[str, bytes, dict[str, bytes]]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            ends = await consumer.end_offsets(partitions)
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= ends[tp] for tp in partitions) and len(out) >= expect:
                break
            batch = await consumer.getmany(timeout_ms=300)
            for messages in batch.values():
                out += [(m.key.decode() if m.key else "", m.value, dict(m.headers or ())) for m in messages]
        return out
    finally:
        await consumer.stop()


async def read_alerts(settings: KafkaSettings, topic: str, *, expect: int = 0) -> list[event_pb2.Alert]:
    return [event_pb2.Alert.FromString(value) for _, value, _ in await read_topic(settings, topic, expect=expect)]
