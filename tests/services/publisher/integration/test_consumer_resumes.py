"""The publisher's request consumer outlives a failure: when handling a batch fails (the database down, say), it
resumes from its last commit and the request still becomes exactly one draft (it used to end the process)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from qingfeng.kafka import DeadLetterSender, OutgoingRecord, Producer
from qingfeng.settings import KafkaSettings

from services.publisher.app import consume_requests
from services.publisher.application import Topics
from services.publisher.consumer import RequestConsumer
from services.publisher.settings import PublisherSettings, PublisherTopics
from tests.services.publisher.harness import harness, refutation_request

pytestmark = [pytest.mark.asyncio, pytest.mark.integration]


async def test_a_failed_batch_is_consumed_again_after_the_pause(
    kafka: tuple[KafkaSettings, dict[str, str]], tmp_path: Path
) -> None:
    settings, names = kafka
    topics = Topics(publications=names["publications"], deadletter=names["deadletter"])
    publisher_settings = PublisherSettings(
        kafka=settings,
        topics=PublisherTopics(**names),
        group_id=f"qftest-{uuid.uuid4().hex[:8]}",
        consumer_retry_backoff_s=0.2,
    )
    async with harness(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", topics=topics) as h:
        request = refutation_request("resume", h.clock.now)
        producer = Producer(settings)
        await producer.start()
        try:
            await producer.send_many(
                [OutgoingRecord(names["requests"], request.case_id, request, "publication.requested", request.id)]
            )
            consumer = RequestConsumer(h.publisher, DeadLetterSender(producer, source="publisher",
                                                                     topic=names["deadletter"]).send,
                                       topic=names["requests"])  # fmt: skip
            create = h.publisher.create_from_request
            failures = 0

            async def fails_once(*args: object, **kwargs: object) -> object:
                nonlocal failures
                if failures == 0:
                    failures += 1
                    raise ConnectionError("database is down")
                return await create(*args, **kwargs)  # type: ignore[arg-type]

            h.publisher.create_from_request = fails_once  # type: ignore[method-assign]
            stop = asyncio.Event()
            task = asyncio.create_task(consume_requests(publisher_settings, consumer, stop))
            try:
                for _ in range(150):
                    if await h.publisher.list_drafts(case_id="case-resume", limit=10, offset=0):
                        break
                    assert not task.done(), task.exception() if not task.cancelled() else "cancelled"
                    await asyncio.sleep(0.2)
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
        finally:
            await producer.stop()
        assert failures == 1
        [draft] = await h.publisher.list_drafts(case_id="case-resume", limit=10, offset=0)
        assert draft.request_id == "req-resume-1"
        assert consumer.handled == 1
