"""The coordinator and the publisher over the real Kafka of the local stack: a false-rumour case's publication
request becomes, after sign-off, exactly one refutation on the channel; its Publication event carries the case id,
and the coordinator's case shows the refutation clock met. Each service runs in-process on its own SQLite store;
the two only share topics (the test's own, deleted afterwards)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import SecretStr
from qingfeng.kafka import DeadLetterSender, OutboxSender, Producer, ensure_topics, run_batches
from qingfeng.settings import DatabaseSettings, GrpcSettings, KafkaSettings
from qingfeng.storage import relay_outbox
from qingfeng.v1 import common_pb2, event_pb2, publication_pb2

from services.coordinator.adapters.sql import CaseFilter
from services.coordinator.app import CoordinatorApp, build
from services.coordinator.core.model import Disposition
from services.coordinator.service import Viewer
from services.coordinator.settings import ConsumerSettings, CoordinatorSettings, CoordinatorTopics, LoopSettings
from services.publisher.app import OUTBOX_TYPES, topic_specs_for
from services.publisher.application import Topics
from services.publisher.consumer import RequestConsumer
from services.publisher.core.model import Decision, DraftStatus, Kind
from services.publisher.settings import PublisherSettings, PublisherTopics
from tests.services.coordinator.conftest import T0, FakeClock
from tests.services.publisher.fakes import Clock
from tests.services.publisher.harness import DEPUTY, DIRECTOR, DIRECTOR_2, harness
from tests.shared_servers import drop_groups_only, drop_run_async

pytestmark = [pytest.mark.asyncio, pytest.mark.integration]
T = TypeVar("T")


async def until(check: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 60.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def settings(kafka_bootstrap: str, es_url: str, tmp_path: Path) -> AsyncIterator[CoordinatorSettings]:
    run = uuid.uuid4().hex[:10]
    topics = CoordinatorTopics(**{name: f"qftest.{run}.{name}.v1" for name in CoordinatorTopics.model_fields})
    made = CoordinatorSettings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, client_id=f"qftest-{run}", partitions=1,
                            request_timeout_s=20),
        database=DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path / 'coordinator.db'}")),
        topics=topics,
        consumer=ConsumerSettings(group_id=f"qftest-{run}-coordinator", retry_backoff_s=0.2),
        loops=LoopSettings(deadline_every_s=0.1, relay_idle_s=0.05),
        grpc=GrpcSettings(port=0),
        node_name="itest",
    )  # fmt: skip
    yield made
    # Every topic of the run (the publisher's dead-letter topic included) and the consumer groups, checked gone: a
    # silent failed delete here once left `qftest.<run>.publications.v1.deadletter` topics behind.
    await drop_run_async(kafka_bootstrap, es_url, f"qftest.{run}")
    await drop_groups_only(kafka_bootstrap, (f"qftest-{run}-coordinator", f"qftest-{run}-publisher"))


@pytest.fixture
async def coordinator(settings: CoordinatorSettings) -> AsyncIterator[CoordinatorApp]:
    built = await build(settings, clock=FakeClock())
    stop = asyncio.Event()
    tasks = [asyncio.create_task(loop(stop)) for loop in built.background()]
    try:
        yield built
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        for cleanup in reversed(built.cleanups):
            await cleanup()


def alert() -> event_pb2.Alert:
    out = event_pb2.Alert(id="ev-r:1", event_id="ev-r", sequence=1, from_level=common_pb2.WARNING_LEVEL_NONE,
                          to_level=common_pb2.WARNING_LEVEL_YELLOW, event_title="网传某局长被带走调查")  # fmt: skip
    out.emitted_at.FromDatetime(T0)
    out.reasons.add(criterion="relevance", value=0.9)
    return out


async def test_false_rumour_case_to_one_refutation_and_the_clock_met(
    settings: CoordinatorSettings, coordinator: CoordinatorApp, tmp_path: Path
) -> None:
    t = settings.topics
    publisher_topics = PublisherTopics(requests=t.publication_requests, publications=t.publications,
                                       deadletter=f"{t.publications}.deadletter")  # fmt: skip
    await ensure_topics(
        settings.kafka, topic_specs_for(PublisherSettings(kafka=settings.kafka, topics=publisher_topics))
    )
    office = Viewer("office.duty", "opinion_office")
    clock = Clock(now=T0 + timedelta(minutes=30))
    topics = Topics(publications=publisher_topics.publications, deadletter=publisher_topics.deadletter)
    async with harness(f"sqlite+aiosqlite:///{tmp_path / 'publisher.db'}", clock=clock, topics=topics) as h, \
            Producer(settings.kafka) as producer:  # fmt: skip
        # The coordinator opens a case from the alert and, on "false information", asks for a refutation.
        a = alert()
        await producer.send(t.alerts, a.event_id, a, event_type="alert.level_changed", event_id=a.id)

        async def the_case() -> Any:
            async with coordinator.handling.store.unit() as unit:
                found, _ = await unit.cases(CaseFilter(event_id="ev-r"), page_size=1)
            return found

        [case] = await until(the_case, "the case")
        await coordinator.api.acknowledge(office, case.id, "收到")
        await coordinator.api.set_disposition(office, case.id, Disposition.FALSE_INFORMATION, "经核查不实")

        # The publisher consumes the request (its own consumer group) and drafts the refutation once.
        dead = DeadLetterSender(producer, source="publisher", topic=publisher_topics.deadletter)
        consumer = RequestConsumer(h.publisher, dead.send, topic=publisher_topics.requests)
        stop = asyncio.Event()
        task = asyncio.create_task(run_batches(settings.kafka, [publisher_topics.requests],
                                               f"{settings.kafka.client_id}-publisher", consumer, stop))  # fmt: skip

        async def refutation_draft() -> Any:
            drafts = await h.publisher.list_drafts(case_id=case.id, limit=10, offset=0)
            return [d for d in drafts if d.kind is Kind.REFUTATION]

        [draft] = await until(refutation_draft, "the refutation draft")
        stop.set()
        await task
        assert draft.request_id and draft.event_id == "ev-r" and draft.due_at is not None

        # People sign it off: the office submits, two signers approve (yellow), it is published once.
        draft = await h.publisher.submit(DIRECTOR, draft.id)
        for signer in (DIRECTOR_2, DEPUTY):
            draft = await h.publisher.sign_off(signer, draft.id, Decision.APPROVED, "同意", draft.revision)
        assert draft.status is DraftStatus.APPROVED
        clock.advance(minutes=60)
        await h.publisher.publish(DEPUTY, draft.id, ["weibo-qingfeng"])
        await h.publisher.publish(DEPUTY, draft.id, ["weibo-qingfeng"])
        await h.worker.run_once()
        await h.worker.run_once()
        assert len(h.platform.posts) == 1
        while await relay_outbox(h.store.sessions, OutboxSender(producer, OUTBOX_TYPES)):
            pass

        async def refuted() -> Any:
            got = await coordinator.api.get_case(office, case.id)
            return got if got.refuted_at is not None else None

        shown = await until(refuted, "the case to show the refutation")
        assert shown.refuted_at == T0 + timedelta(minutes=90)
        assert shown.refutation_due_at is not None and shown.refuted_at <= shown.refutation_due_at
        [pub] = [p for p, _ in await h.publisher.list_publications(case_id=case.id, limit=10, offset=0)]
        message = h.publisher.publication_message(pub, (await h.publisher.get_draft(draft.id))[0])
        assert message.case_id == case.id
        assert message.response_clock_status == publication_pb2.RESPONSE_CLOCK_STATUS_MET
