"""A coordinator's publication request on real Kafka becomes, after sign-off, exactly one refutation on the channel,
and its Publication event on Kafka (via the outbox relay) carries the case id and the refutation clock met."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from qingfeng.kafka import DeadLetterSender, OutboxSender, OutgoingRecord, Producer, run_batches
from qingfeng.settings import KafkaSettings
from qingfeng.storage import relay_outbox
from qingfeng.v1 import post_pb2, publication_pb2

from services.publisher.app import OUTBOX_TYPES
from services.publisher.application import Topics
from services.publisher.consumer import RequestConsumer
from services.publisher.core.model import Decision, DraftStatus
from tests.services.publisher.harness import DEPUTY, DIRECTOR, DIRECTOR_2, harness, refutation_request

pytestmark = [pytest.mark.asyncio, pytest.mark.integration]


async def read_all(settings: KafkaSettings, topic: str, expect: int, timeout_s: float = 30.0) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False,
                                isolation_level="read_committed")  # fmt: skip
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        out: list[bytes] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            end = (await consumer.end_offsets([tp]))[tp]
            if await consumer.position(tp) >= end and len(out) >= expect:
                break
            for messages in (await consumer.getmany(timeout_ms=300)).values():
                out += [m.value for m in messages]
        return out
    finally:
        await consumer.stop()


async def test_request_to_exactly_one_refutation_with_its_clock(
    kafka: tuple[KafkaSettings, dict[str, str]], tmp_path: Path
) -> None:
    settings, names = kafka
    topics = Topics(publications=names["publications"], deadletter=names["deadletter"])
    async with harness(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", topics=topics) as h:
        request = refutation_request("rumour", h.clock.now)
        producer = Producer(settings)
        await producer.start()
        try:
            # The request twice (a replay), and one record that is not a request at all.
            for _ in range(2):
                await producer.send_many([OutgoingRecord(names["requests"], request.case_id, request,
                                                         "publication.requested", request.id)])  # fmt: skip
            junk = post_pb2.Post(id="not-a-request")
            await producer.send_many([OutgoingRecord(names["requests"], "x", junk, "post.collected", "junk")])
            dead = DeadLetterSender(producer, source="publisher", topic=names["deadletter"])
            consumer = RequestConsumer(h.publisher, dead.send, topic=names["requests"])
            stop = asyncio.Event()
            task = asyncio.create_task(run_batches(settings, [names["requests"]], f"qftest-{uuid.uuid4().hex[:8]}",
                                                   consumer, stop))  # fmt: skip
            for _ in range(150):
                drafts = await h.publisher.list_drafts(case_id="case-rumour", limit=10, offset=0)
                if drafts and await read_all(settings, names["deadletter"], 0, timeout_s=0.5):
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # let the replayed record be handled too
            stop.set()
            await task

            [draft] = await h.publisher.list_drafts(case_id="case-rumour", limit=10, offset=0)
            assert draft.request_id == "req-rumour-1" and draft.event_id == "ev-rumour"
            assert draft.due_at == h.clock.now + timedelta(hours=24)
            draft = await h.publisher.submit(DIRECTOR, draft.id)  # a person takes the coordinator's draft forward
            draft = await h.publisher.sign_off(DIRECTOR_2, draft.id, Decision.APPROVED, "同意", draft.revision)
            draft = await h.publisher.sign_off(DEPUTY, draft.id, Decision.APPROVED, "同意", draft.revision)
            assert draft.status is DraftStatus.APPROVED
            h.clock.advance(hours=3)
            await h.publisher.publish(DEPUTY, draft.id, ["weibo-qingfeng"])
            await h.publisher.publish(DEPUTY, draft.id, ["weibo-qingfeng"])  # a repeated click changes nothing
            await h.worker.run_once()
            await h.worker.run_once()
            assert len(h.platform.posts) == 1
            [post] = h.platform.posts.values()
            assert post.title == "关于网传“某局长被带走调查”的说明"

            while await relay_outbox(h.store.sessions, OutboxSender(producer, OUTBOX_TYPES)):
                pass
        finally:
            await producer.stop()
        [value] = await read_all(settings, names["publications"], 1)
        event = publication_pb2.Publication.FromString(value)
        assert event.case_id == "case-rumour" and event.publication_request_id == "req-rumour-1"
        assert event.status == publication_pb2.PUBLICATION_STATUS_PUBLISHED and event.external_id
        assert event.response_clock == "refutation_24h"
        assert event.response_clock_status == publication_pb2.RESPONSE_CLOCK_STATUS_MET
        letters = [post_pb2.DeadLetter.FromString(v) for v in await read_all(settings, names["deadletter"], 1)]
        [letter] = letters
        assert letter.key == "x" and letter.source == "publisher"
        assert letter.reason != post_pb2.DEAD_LETTER_REASON_UNSPECIFIED and "Post" in letter.message
