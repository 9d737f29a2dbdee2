"""Each event's level history: recorded with the alerts, on SQLite through the migrations; bounded per event,
idempotent under replay, surviving a restart, and served by ListEventGrades over a real gRPC server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from qingfeng.rpc import CredentialInterceptor, build_server
from qingfeng.settings import GrpcSettings
from qingfeng.storage import build_engine, run_migrations
from qingfeng.v1 import common_pb2, event_pb2, event_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.grader.adapters.policy_yaml import DEFAULT_POLICY
from services.grader.adapters.sql import SqlStateStore
from services.grader.app import MIGRATIONS, VERSION_TABLE
from services.grader.core import GraderConfig
from services.grader.history import SqlGradeHistory
from services.grader.server import GraderServicer
from services.grader.settings import CheckpointSettings
from services.grader.state import EngineOwner
from tests.identity import TRUST, signed_channel
from tests.libs.storage.conftest import pg_admin_url, pg_database_url
from tests.services.grader.unit.test_state import T0, FakeAlertLog, FakeSink, feed, story

__all__ = ["pg_admin_url", "pg_database_url"]  # fixtures of the throwaway PostgreSQL cluster

W = common_pb2.WarningLevel


async def _database(directory: Path) -> str:
    os.makedirs(directory, exist_ok=True)  # tmp_path: local and instant
    url = f"sqlite+aiosqlite:///{directory / 'grader.db'}"
    await run_migrations(url, MIGRATIONS, VERSION_TABLE)
    return url


def _owner(
    engine: AsyncEngine, sink: FakeSink, history: SqlGradeHistory | None, every_batches: int = 1000
) -> EngineOwner:
    store = SqlStateStore(engine, posts_topic="posts", alerts_topic="alerts")
    return EngineOwner(
        store, sink, FakeAlertLog(sink), config=GraderConfig(),
        cadence=CheckpointSettings(every_batches=every_batches, every_s=3600), history=history,
    )  # fmt: skip


async def _started(owner: EngineOwner) -> EngineOwner:
    await owner.activate_configured(DEFAULT_POLICY.read_text(encoding="utf-8"), str(DEFAULT_POLICY))
    await owner.recover()
    return owner


def _alert(event_id: str, sequence: int, to: int = W.WARNING_LEVEL_BLUE) -> event_pb2.Alert:
    alert = event_pb2.Alert(id=f"{event_id}:{sequence}", event_id=event_id, sequence=sequence, to_level=to)  # type: ignore[arg-type]
    alert.grade.graded_at.FromDatetime(T0 + timedelta(minutes=sequence))
    alert.reasons.add(criterion="posts", value=float(sequence), threshold=1.0, op=common_pb2.COMPARISON_OPERATOR_GE)
    return alert


def _keys(alerts: list[event_pb2.Alert]) -> list[tuple[str, int, int, int]]:
    return [(a.id, a.from_level, a.to_level, len(a.reasons)) for a in alerts]


async def test_grading_records_every_level_change_with_its_reasons_and_it_survives_a_restart(tmp_path: Path) -> None:
    url = await _database(tmp_path)
    engine = build_engine(url)
    sink = FakeSink()
    owner = await _started(_owner(engine, sink, SqlGradeHistory(engine)))
    await feed(owner, story(120))  # ev-p0 climbs blue, yellow, orange
    await owner.close()
    await engine.dispose()
    published = [a for a in sink.alerts if a.event_id == "ev-p0"]
    assert [a.to_level for a in published][-1] == W.WARNING_LEVEL_ORANGE and len(published) >= 3

    engine = build_engine(url)  # a new process: nothing but the database is shared
    try:
        history = await SqlGradeHistory(engine).changes("ev-p0")
    finally:
        await engine.dispose()
    assert _keys(history) == _keys(published)
    assert [a.sequence for a in history] == sorted(a.sequence for a in history)
    for change in history:
        assert change.reasons, change.id  # every grade has its reasons
        fired = [r for r in change.reasons if r.criterion not in ("baseline", "below_lowest_level")]
        assert all(r.threshold > 0 and r.op for r in fired), change.id
        assert change.grade.graded_at.seconds > 0 and change.grade.level == change.to_level
    assert [c.rising for c in history] == [c.rising for c in published]


async def test_a_crash_replay_records_the_same_history_not_a_second_copy(tmp_path: Path) -> None:
    posts = story(150)
    reference_url = await _database(tmp_path / "reference")
    ref_engine = build_engine(reference_url)
    ref_owner = await _started(_owner(ref_engine, FakeSink(), SqlGradeHistory(ref_engine)))
    await feed(ref_owner, posts)
    expected = _keys(await SqlGradeHistory(ref_engine).changes("ev-p0"))
    await ref_engine.dispose()

    url = await _database(tmp_path / "run")
    engine = build_engine(url)
    sink = FakeSink()
    first = await _started(_owner(engine, sink, SqlGradeHistory(engine), every_batches=3))
    await feed(first, posts[:70])  # checkpoint at 60 posts, the 7th batch's effects out, then "crash"
    second = await _started(_owner(engine, sink, SqlGradeHistory(engine), every_batches=3))
    await feed(second, posts[60:])  # the replay regenerates the 7th batch's alerts (suppressed on the topic)
    try:
        assert _keys(await SqlGradeHistory(engine).changes("ev-p0")) == expected
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh database of the throwaway PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'grader.db'}"
    return str(request.getfixturevalue("pg_database_url"))


async def test_history_keeps_the_last_changes_of_each_event_and_replaces_a_rewritten_one(db_url: str) -> None:
    await run_migrations(db_url, MIGRATIONS, VERSION_TABLE)
    engine = build_engine(db_url)
    history = SqlGradeHistory(engine, keep=3)
    try:
        await history.record([_alert("ev-a", n) for n in range(1, 5)] + [_alert("ev-b", 1)])
        await history.record([_alert("ev-a", 5), _alert("ev-a", 4, to=W.WARNING_LEVEL_RED)])
        kept = await history.changes("ev-a")
        assert [a.sequence for a in kept] == [3, 4, 5]
        assert kept[1].to_level == W.WARNING_LEVEL_RED  # the last write of an alert id wins
        assert [a.sequence for a in await history.changes("ev-b")] == [1]  # other events keep theirs
        await history.record([_alert("ev-a", 1)])  # a replay of a change older than the bound is not kept
        assert [a.sequence for a in await history.changes("ev-a")] == [3, 4, 5]
        assert await history.changes("ev-none") == []
    finally:
        await engine.dispose()


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[event_pb2_grpc.GraderServiceStub]:
    engine = build_engine(await _database(tmp_path))
    sink = FakeSink()
    owner = await _started(_owner(engine, sink, SqlGradeHistory(engine)))
    await feed(owner, story(120))  # ev-p0: orange
    await feed(owner, story(1, start=T0 + timedelta(minutes=20), prefix="q"))  # ev-q0: live, never changed level
    servicer = GraderServicer(owner, SqlStateStore(engine, posts_topic="posts", alerts_topic="alerts"))
    server = build_server(
        GrpcSettings(port=0, plaintext=True),
        services=[
            (
                event_pb2.DESCRIPTOR.services_by_name["GraderService"],
                lambda s: event_pb2_grpc.add_GraderServiceServicer_to_server(servicer, s),
            )
        ],
        interceptors=[CredentialInterceptor(TRUST)],
    )
    await server.server.start()
    channel = signed_channel(f"127.0.0.1:{server.port}", principal="alice", agency="opinion_office", roles=())
    try:
        yield event_pb2_grpc.GraderServiceStub(channel)
    finally:
        await channel.close()
        await server.server.stop(0)
        await engine.dispose()


async def test_list_event_grades_serves_the_history_oldest_first(stub: event_pb2_grpc.GraderServiceStub) -> None:
    response = await stub.ListEventGrades(event_pb2.ListEventGradesRequest(event_id="ev-p0"))
    levels = [(c.from_level, c.to_level) for c in response.changes]
    assert levels[0] == (W.WARNING_LEVEL_NONE, W.WARNING_LEVEL_BLUE)
    assert levels[-1][1] == W.WARNING_LEVEL_ORANGE
    assert all(c.reasons and c.grade.label for c in response.changes)
    event = await stub.GetEvent(event_pb2.GetEventRequest(id="ev-p0"))
    assert response.changes[-1].grade.level == event.event.level


async def test_list_event_grades_of_a_live_event_without_changes_is_empty_and_unknown_is_not_found(
    stub: event_pb2_grpc.GraderServiceStub,
) -> None:
    quiet = await stub.ListEventGrades(event_pb2.ListEventGradesRequest(event_id="ev-q0"))
    assert list(quiet.changes) == []
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.ListEventGrades(event_pb2.ListEventGradesRequest(event_id="ev-nowhere"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await stub.ListEventGrades(event_pb2.ListEventGradesRequest())
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
