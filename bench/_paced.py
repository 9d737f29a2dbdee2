"""Posts produced onto a topic at a steady rate, as a live stream would bring them (the grader benchmarks' feed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from qingfeng.kafka import OutgoingRecord, Producer
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import post_pb2

__all__ = ["produce_paced"]


async def produce_paced(
    kafka: KafkaSettings,
    topic: str,
    rate: float,
    duration_s: float,
    post_at: Callable[[float, datetime], post_pb2.Post],
    *,
    tick_s: float = 0.01,
) -> tuple[int, float]:
    """``rate`` posts/s onto ``topic`` for ``duration_s``, each made by ``post_at(seconds since start, now)``.

    Every ``tick_s`` the posts due so far go out as one ``send_many`` without waiting for the previous one (a slow
    acknowledgement must not slow the feed). Returns the number produced and the seconds until all were
    acknowledged."""
    producer = Producer(kafka)
    await producer.start()
    sent = 0
    in_flight: set[asyncio.Task[object]] = set()
    start = time.monotonic()
    try:
        while (elapsed := time.monotonic() - start) < duration_s:
            due = int(rate * elapsed) - sent
            if due > 0:
                now = datetime.now(UTC)
                posts = [post_at(elapsed, now) for _ in range(due)]
                records = [OutgoingRecord(topic, p.id, p, "post.collected", p.id) for p in posts]
                task = asyncio.create_task(producer.send_many(records))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                sent += due
            await asyncio.sleep(tick_s)
        await asyncio.gather(*in_flight)
        return sent, time.monotonic() - start
    finally:
        await producer.stop()
