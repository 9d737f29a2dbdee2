"""Read the keys of the last records of a topic: what a producer knows it produced, from the topic itself.

    tail = await read_tail_keys(settings, "qingfeng.posts.v1", last=50_000, timeout_s=10, event_type="post.collected")
    remember(tail.keys)

A bare assigned consumer (no group, nothing committed) reads each partition from ``max(beginning, end - n)`` to the
end as of the call, where ``n`` is ``last`` split evenly over the partitions. Only keys and headers are looked at:
payloads are never decoded. With ``event_type`` only records carrying that ``event-type`` header count (other
writers of the topic, or records without our headers, are skipped). Records produced while reading are not waited
for: the end is fixed when reading starts.

Bounded in time: after ``timeout_s`` the keys read so far are returned with ``complete=False``; connecting is
bounded by the clients' request timeout instead. A broker that cannot be reached raises (aiokafka's error).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from qingfeng.kafka.headers import EVENT_TYPE
from qingfeng.kafka.security import client_kwargs
from qingfeng.kafka.topics import partition_ids
from qingfeng.settings import KafkaSettings

__all__ = ["TailKeys", "read_tail_keys"]

_MAX_RECORDS = 5_000  # per getmany: keeps one poll's work on the event loop short


@dataclass(frozen=True)
class TailKeys:
    """The keys read (each partition's in offset order, partitions interleaved as fetched) and how the read went."""

    keys: list[str]
    records: int  # records read, counted or not
    partitions: int
    complete: bool  # every partition read up to its end (False: the time ran out)
    elapsed_s: float


async def read_tail_keys(
    settings: KafkaSettings,
    topic: str,
    *,
    last: int,
    timeout_s: float,
    event_type: str | None = None,
) -> TailKeys:
    """The keys of the last ``last`` records of ``topic`` (split over its partitions), read within ``timeout_s``."""
    started = time.monotonic()
    keys: list[str] = []
    read = [0, 0]  # records read, partitions
    # Connecting (the admin client's lookup, the consumer's start) is bounded by the clients' request timeout, not
    # by ``timeout_s``: cancelled half-way, aiokafka can leave a connection it never closes.
    partitions = await partition_ids(settings, topic, client="tail-admin")
    if not partitions or last <= 0:
        return TailKeys(keys, 0, 0, True, time.monotonic() - started)
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings),
        client_id=f"{settings.client_id}-tail",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # an offset deleted by retention meanwhile: from what is left
        isolation_level="read_committed",
        request_timeout_ms=int(settings.request_timeout_s * 1000),
    )
    complete = False
    timer = asyncio.timeout(max(0.0, timeout_s - (time.monotonic() - started)))
    try:
        await consumer.start()
        async with timer:
            await _read(consumer, topic, partitions, last, event_type, keys, read)
            complete = True
    except TimeoutError:
        if not timer.expired():  # a client's own timeout: an error like any other
            raise
    finally:
        await consumer.stop()
    return TailKeys(keys, read[0], read[1], complete, time.monotonic() - started)


async def _read(
    consumer: Any,
    topic: str,
    partitions: list[int],
    last: int,
    event_type: str | None,
    keys: list[str],
    read: list[int],
) -> None:
    tps = [TopicPartition(topic, p) for p in partitions]
    read[1] = len(tps)
    consumer.assign(tps)
    starts: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    per_partition = -(-last // len(tps))
    pending: dict[TopicPartition, int] = {}
    for tp in tps:
        begin = max(starts[tp], ends[tp] - per_partition)
        if begin < ends[tp]:
            consumer.seek(tp, begin)
            pending[tp] = ends[tp]
    wanted = event_type.encode("utf-8") if event_type is not None else None
    while pending:
        fetched = await consumer.getmany(*pending, timeout_ms=500, max_records=_MAX_RECORDS)
        for tp, messages in fetched.items():
            end = pending.get(tp, 0)
            for msg in messages:
                if msg.offset >= end:
                    break
                read[0] += 1
                key = _key_of(msg, wanted)
                if key is not None:
                    keys.append(key)
        pending = {tp: end for tp, end in pending.items() if await consumer.position(tp) < end}


def _key_of(msg: Any, event_type: bytes | None) -> str | None:
    if msg.key is None:
        return None
    if event_type is not None and not any(k == EVENT_TYPE and v == event_type for k, v in msg.headers or ()):
        return None
    try:
        return bytes(msg.key).decode("utf-8")
    except UnicodeDecodeError:  # not a key we wrote
        return None
