from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.trace import TracerProvider
from qingfeng.storage import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    OutboxRelayError,
    add_to_outbox,
    outbox_table,
    purge_published,
    relay_outbox,
    run_relay,
)
from sqlalchemy import MetaData, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

_outbox = outbox_table(MetaData())


@dataclass(frozen=True)
class Sent:
    topic: str
    key: str | None
    payload: bytes
    headers: dict[str, bytes]


@dataclass
class FakeSend:
    """The relay's port, in memory: records what was acknowledged, fails on chosen payloads."""

    fail_on: set[bytes] = field(default_factory=set)
    sent: list[Sent] = field(default_factory=list)
    attempts: int = 0

    async def __call__(self, topic: str, key: str | None, payload: bytes, headers: Sequence[tuple[str, bytes]]) -> None:
        self.attempts += 1
        if payload in self.fail_on:
            raise ConnectionError("broker unavailable")
        self.sent.append(Sent(topic, key, payload, dict(headers)))


async def _add(session: AsyncSession, n: int, key: str = "case-1", **extra: object) -> None:
    await add_to_outbox(
        session,
        topic="qingfeng.cases.v1",
        key=key,
        event_type="case.updated",
        event_id=f"evt-{n}",
        payload=f"p{n}".encode(),
        **extra,  # type: ignore[arg-type]
    )


async def _unpublished(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(_outbox).where(_outbox.c.published_at.is_(None))
        return int((await session.execute(query)).scalar_one())


async def test_only_committed_rows_are_relayed_in_order_exactly_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        for n in (1, 2, 3):
            await _add(session, n, key="case-1" if n != 2 else "case-2")
    async with sessions() as session:
        await _add(session, 99)
        await session.rollback()
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            await _add(session, 98)
            raise RuntimeError("the service's own write failed")
    async with sessions() as session, session.begin():
        await _add(session, 4)

    send = FakeSend()
    assert await relay_outbox(sessions, send) == 4
    assert await relay_outbox(sessions, send) == 0

    assert [s.payload for s in send.sent] == [b"p1", b"p2", b"p3", b"p4"]
    assert [s.key for s in send.sent] == ["case-1", "case-2", "case-1", "case-1"]
    first = send.sent[0]
    assert first.topic == "qingfeng.cases.v1"
    assert first.headers[EVENT_TYPE_HEADER] == b"case.updated"
    assert first.headers[EVENT_ID_HEADER] == b"evt-1"
    assert await _unpublished(sessions) == 0


async def test_failed_send_leaves_it_and_later_rows_for_the_next_run(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        for n in range(1, 6):
            await _add(session, n)

    flaky = FakeSend(fail_on={b"p3"})
    with pytest.raises(OutboxRelayError) as caught:
        await relay_outbox(sessions, flaky)
    assert caught.value.published == 2
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert [s.payload for s in flaky.sent] == [b"p1", b"p2"]
    assert await _unpublished(sessions) == 3

    healthy = FakeSend()
    assert await relay_outbox(sessions, healthy) == 3
    assert [s.payload for s in healthy.sent] == [b"p3", b"p4", b"p5"]
    assert await _unpublished(sessions) == 0


async def test_relay_takes_batches(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        for n in range(1, 8):
            await _add(session, n)
    send = FakeSend()
    counts = [await relay_outbox(sessions, send, batch_size=3) for _ in range(4)]
    assert counts == [3, 3, 1, 0]
    assert [s.payload for s in send.sent] == [f"p{n}".encode() for n in range(1, 8)]
    with pytest.raises(ValueError, match="batch_size"):
        await relay_outbox(sessions, send, batch_size=0)


async def test_trace_context_is_stored_with_the_row(sessions: async_sessionmaker[AsyncSession]) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("handle request") as span:
        async with sessions() as session, session.begin():
            await _add(session, 1)
        trace_id = format(span.get_span_context().trace_id, "032x")
    async with sessions() as session, session.begin():
        await _add(session, 2, headers={"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01", "x-origin": "网关"})

    send = FakeSend()
    await relay_outbox(sessions, send)
    assert trace_id in send.sent[0].headers["traceparent"].decode()
    assert send.sent[1].headers["traceparent"] == ("00-" + "ab" * 16 + "-" + "cd" * 8 + "-01").encode()
    assert send.sent[1].headers["x-origin"] == "网关".encode()


async def test_event_id_is_unique(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        await _add(session, 1)
    with pytest.raises(IntegrityError):
        async with sessions() as session, session.begin():
            await _add(session, 1)


async def test_purge_removes_only_old_published_rows(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        for n in (1, 2):
            await _add(session, n)
    await relay_outbox(sessions, FakeSend(), batch_size=1)
    async with sessions() as session, session.begin():
        assert await purge_published(session, older_than=timedelta(hours=1)) == 0
        later = datetime.now(UTC) + timedelta(hours=2)
        assert await purge_published(session, older_than=timedelta(hours=1), now=later) == 1
    assert await _unpublished(sessions) == 1


async def test_run_relay_drains_and_stops(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        for n in range(1, 6):
            await _add(session, n)
    retried, drained = asyncio.Event(), asyncio.Event()

    @dataclass
    class WatchedSend(FakeSend):
        async def __call__(
            self, topic: str, key: str | None, payload: bytes, headers: Sequence[tuple[str, bytes]]
        ) -> None:
            try:
                await super().__call__(topic, key, payload, headers)
            finally:
                if self.attempts >= 6:  # p4 failed at least twice: the loop retried after a failure
                    retried.set()
                if len(self.sent) == 5:
                    drained.set()

    send = WatchedSend(fail_on={b"p4"})
    stop = asyncio.Event()
    task = asyncio.create_task(run_relay(sessions, send, stop, batch_size=2, idle_s=0.01, retry_s=0.01))
    await asyncio.wait_for(retried.wait(), timeout=5)
    send.fail_on.clear()
    await asyncio.wait_for(drained.wait(), timeout=5)
    stop.set()
    await asyncio.wait_for(task, timeout=5)  # the batch in flight is marked before the loop exits
    assert [s.payload for s in send.sent] == [f"p{n}".encode() for n in range(1, 6)]
    assert await _unpublished(sessions) == 0


def test_header_names_match_the_kafka_kernel() -> None:
    headers = pytest.importorskip("qingfeng.kafka.headers")
    assert (EVENT_TYPE_HEADER, EVENT_ID_HEADER) == (headers.EVENT_TYPE, headers.EVENT_ID)
