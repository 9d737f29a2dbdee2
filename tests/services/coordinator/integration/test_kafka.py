"""The coordinator on the real Kafka of the local stack and SQLite: alerts in (twice: one case), the case, task and
publication-request records out through the outbox relay, a publication back in marking the golden period met, and
an undecodable record dead-lettered. Topics, group and database are the test's own and are deleted afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr
from qingfeng.kafka import Producer
from qingfeng.settings import DatabaseSettings, GrpcSettings, KafkaSettings
from qingfeng.v1 import case_pb2, common_pb2, event_pb2, publication_pb2, publication_request_pb2

from services.coordinator.adapters.sql import CaseFilter
from services.coordinator.app import CoordinatorApp, build
from services.coordinator.core.model import Disposition
from services.coordinator.service import Viewer
from services.coordinator.settings import ConsumerSettings, CoordinatorSettings, CoordinatorTopics, LoopSettings

from ..conftest import T0, FakeClock

pytestmark = pytest.mark.integration
T = TypeVar("T")


@pytest.fixture
async def settings(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[CoordinatorSettings]:
    run = uuid.uuid4().hex[:10]
    topics = CoordinatorTopics(**{name: f"qftest.{run}.{name}.v1" for name in CoordinatorTopics.model_fields})
    made = CoordinatorSettings(
        kafka=KafkaSettings(
            bootstrap_servers=kafka_bootstrap, client_id=f"qftest-{run}", partitions=2, request_timeout_s=20
        ),
        database=DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path / 'coordinator.db'}")),
        topics=topics,
        consumer=ConsumerSettings(group_id=f"qftest-{run}-coordinator", retry_backoff_s=0.2),
        loops=LoopSettings(deadline_every_s=0.1, relay_idle_s=0.05),
        grpc=GrpcSettings(port=0),
        node_name="itest",
    )
    yield made
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics(sorted(topics.model_dump().values()))
    finally:
        await admin.close()


@pytest.fixture
async def app(settings: CoordinatorSettings) -> AsyncIterator[tuple[CoordinatorApp, FakeClock]]:
    clock = FakeClock()
    built = await build(settings, clock=clock)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(loop(stop)) for loop in built.background()]
    try:
        yield built, clock
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        for cleanup in reversed(built.cleanups):
            await cleanup()


async def _until(check: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 60.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _read(settings: CoordinatorSettings, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka.bootstrap_servers, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    got: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while len(got) < count and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            got += [m for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()
    return got


def _alert(
    seq: int, level: common_pb2.WarningLevel.ValueType, prev: common_pb2.WarningLevel.ValueType
) -> event_pb2.Alert:
    alert = event_pb2.Alert(
        id=f"ev-k:{seq}",
        event_id="ev-k",
        sequence=seq,
        from_level=prev,
        to_level=level,
        event_title="网传某局长收受红包",
    )
    alert.emitted_at.FromDatetime(T0)
    alert.reasons.add(criterion="relevance", value=0.9)
    return alert


async def test_alerts_to_cases_tasks_requests_and_back(
    settings: CoordinatorSettings, app: tuple[CoordinatorApp, FakeClock]
) -> None:
    coordinator, clock = app
    t = settings.topics
    office = Viewer("office.duty", "opinion_office")
    alerts = [
        _alert(1, common_pb2.WARNING_LEVEL_YELLOW, common_pb2.WARNING_LEVEL_NONE),
        _alert(2, common_pb2.WARNING_LEVEL_ORANGE, common_pb2.WARNING_LEVEL_YELLOW),
    ]
    async with Producer(settings.kafka) as producer:
        for _ in range(2):  # replayed: still one case
            for a in alerts:
                await producer.send(t.alerts, a.event_id, a, event_type="alert.level_changed", event_id=a.id)

        async def orange_case() -> Any:
            async with coordinator.handling.store.unit() as unit:
                found, _ = await unit.cases(CaseFilter(), page_size=10)
            return found if found and found[0].level == 4 else None

        cases = await _until(orange_case, "the orange case")
        await asyncio.sleep(1.0)  # let the replayed copies arrive too
        assert len(await orange_case() or []) == 1
        case_id = cases[0].id

        await coordinator.api.acknowledge(office, case_id, "收到")
        await coordinator.api.set_disposition(office, case_id, Disposition.FALSE_INFORMATION, "经核查不实")
        requests = await _read(settings, t.publication_requests, 1)
        request = publication_request_pb2.PublicationRequest.FromString(requests[0].value)
        assert request.case_id == case_id and request.kind == publication_pb2.DRAFT_KIND_REFUTATION
        assert requests[0].key == case_id.encode()
        task_records = await _read(settings, t.tasks, 2)
        assert {case_pb2.Task.FromString(r.value).agency for r in task_records} == {
            common_pb2.AGENCY_POLICE_CYBER,
            common_pb2.AGENCY_PROPAGANDA,
        }
        case_records = await _read(settings, t.cases, 4)
        types = [dict(r.headers)["event-type"].decode() for r in case_records]
        assert types[:2] == ["case.opened", "case.level_changed"] and "case.disposition_set" in types

        # The publisher reports the refutation published 90 minutes after the first alert.
        publication = publication_pb2.Publication(
            id="pub-1", case_id=case_id, status=publication_pb2.PUBLICATION_STATUS_PUBLISHED
        )
        publication.published_at.FromDatetime(T0 + timedelta(minutes=90))
        await producer.send(
            t.publications, publication.id, publication, event_type="publication.published", event_id="pub-1:published"
        )
        await producer.send(t.alerts, "junk", publication, event_type="x", event_id="junk")  # wrong type

        async def met() -> Any:
            case = await coordinator.api.get_case(office, case_id)
            return case if case.first_response_at is not None else None

        case = await _until(met, "the golden period met")
        assert case.first_response_at == T0 + timedelta(minutes=90) and case.refuted_at == case.first_response_at
        assert case.first_response_due_at == T0 + timedelta(hours=2)
        async with coordinator.handling.store.unit() as unit:
            stored = await unit.audit_count()
        audit = await _read(settings, t.audit, stored)
        records = [case_pb2.AuditRecord.FromString(r.value) for r in audit]
        assert sorted({r.seq for r in records})[:stored] == list(range(1, stored + 1))  # every record streamed
        assert {"case.open", "case.acknowledge", "case.set_disposition"} <= {r.action for r in records}
        dead = await _read(settings, t.deadletter, 1)
        assert dead and dead[0].key == b"junk"

    # The deadline loop escalates a missed acknowledgement on its own.
    other = _alert(1, common_pb2.WARNING_LEVEL_YELLOW, common_pb2.WARNING_LEVEL_NONE)
    other.id, other.event_id = "ev-y:1", "ev-y"
    async with Producer(settings.kafka) as producer:
        await producer.send(t.alerts, other.event_id, other, event_type="alert.level_changed", event_id=other.id)

    async def yellow() -> Any:
        async with coordinator.handling.store.unit() as unit:
            found, _ = await unit.cases(CaseFilter(event_id="ev-y"), page_size=1)
        return found

    await _until(yellow, "the yellow case")
    clock.advance(timedelta(hours=2, minutes=1))

    async def escalated() -> Any:
        found = await yellow()
        return found if found[0].escalations else None

    case = (await _until(escalated, "the escalation"))[0]
    assert [e.cause for e in case.escalations] == ["ack_deadline_missed"]
