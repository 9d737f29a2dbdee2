"""The SQL adapter on SQLite and PostgreSQL: one case per event (replays, merges), durable timers that fire once
(after a restart too, and with two replicas), the outbox rows and the audit chain written with every change."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from qingfeng.storage import build_engine, outbox_table, verify_chain
from sqlalchemy import MetaData, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.coordinator.adapters.sql import CaseFilter, SqlStore, TaskFilter
from services.coordinator.core.cases import AlertView
from services.coordinator.core.model import CaseStatus, Level, Rung
from services.coordinator.handling import Handling, Policies

from ..conftest import T0, TOPICS, FakeClock

_outbox = outbox_table(MetaData())


def _alert(seq: int, level: Level, prev: Level = Level.NONE, event: str = "ev-1", relevance: float = 0.9) -> AlertView:
    return AlertView(f"{event}:{seq}", event, seq, prev, level, "某局长违规收礼", T0, (), (("relevance", relevance),))


async def _outbox_topics(store: SqlStore) -> list[tuple[str, str]]:
    async with store.unit() as unit:
        rows = await unit.session.execute(select(_outbox.c.topic, _outbox.c.event_type).order_by(_outbox.c.id))
        return [(r.topic, r.event_type) for r in rows]


async def test_replaying_alerts_twice_yields_one_case(handling: Handling, store: SqlStore, clock: FakeClock) -> None:
    stream = [_alert(1, Level.YELLOW), _alert(2, Level.ORANGE, Level.YELLOW), _alert(3, Level.RED, Level.ORANGE)]
    ids = {await handling.on_alert(a, clock.now) for a in stream}
    before = await _outbox_topics(store)
    ids |= {await handling.on_alert(a, clock.advance(timedelta(seconds=1))) for a in stream}
    assert len(ids) == 1
    async with store.unit() as unit:
        cases, _ = await unit.cases(CaseFilter(), page_size=10)
        assert [(c.level, c.routed_to) for c in cases] == [(Level.RED, Rung.MUNICIPAL_COMMITTEE)]
        assert [e.cause for e in cases[0].escalations] == ["level_raised", "level_raised"]
        assert (await verify_chain(unit.session)).ok
    assert await _outbox_topics(store) == before  # the replay announced nothing new
    assert ("qftest.cases", "case.opened") in before and before.count(("qftest.cases", "case.routed")) == 2


async def test_merged_event_alerts_go_to_the_kept_case(handling: Handling, store: SqlStore, clock: FakeClock) -> None:
    first = await handling.on_alert(_alert(1, Level.YELLOW, event="ev-a"), clock.now)
    await handling.on_merge("ev-a", "ev-b", clock.now)
    second = await handling.on_alert(_alert(1, Level.ORANGE, Level.YELLOW, event="ev-b"), clock.now)
    # An old alert of the merged-away event arriving late lands there too.
    third = await handling.on_alert(_alert(2, Level.ORANGE, Level.YELLOW, event="ev-a"), clock.now)
    assert first == second == third
    async with store.unit() as unit:
        cases, _ = await unit.cases(CaseFilter(), page_size=10)
    assert len(cases) == 1 and cases[0].level is Level.ORANGE


async def test_restart_between_deadline_and_firing_fires_once(
    engine: AsyncEngine, coordinator_db_url: str, policies: Policies, clock: FakeClock
) -> None:
    handling = Handling(SqlStore(engine, TOPICS, node="before"), policies)
    case_id = await handling.on_alert(_alert(1, Level.RED), clock.now)
    assert await handling.fire_due(clock.now) == 0  # not due yet
    # "Restart": a new engine and store on the same database.
    fresh = build_engine(coordinator_db_url)
    try:
        again = Handling(SqlStore(fresh, TOPICS, node="after"), policies)
        late = clock.advance(timedelta(minutes=16))
        assert await again.fire_due(late) == 1
        assert await again.fire_due(late) == 0
        async with again.store.unit() as unit:
            case = await unit.case(str(case_id))
            fired = await unit.fired_timers()
        assert case is not None and case.status is CaseStatus.AWAITING_ACK
        assert [e.cause for e in case.escalations] == []  # red is at the top: the miss is recorded, no climb
        assert [(k, by) for _, k, by in fired] == [("ack", "after")]
    finally:
        await fresh.dispose()


async def test_two_replicas_fire_each_deadline_once(
    engine: AsyncEngine, coordinator_db_url: str, policies: Policies, clock: FakeClock
) -> None:
    first = Handling(SqlStore(engine, TOPICS, node="replica-a"), policies)
    for n in range(12):
        await first.on_alert(_alert(1, Level.YELLOW, event=f"ev-{n}"), clock.now)
    other = build_engine(coordinator_db_url)
    try:
        second = Handling(SqlStore(other, TOPICS, node="replica-b"), policies)
        late = clock.advance(timedelta(hours=2, minutes=1))
        counts = await asyncio.gather(first.fire_due(late), second.fire_due(late))
        assert sum(counts) == 12
        async with first.store.unit() as unit:
            fired = await unit.fired_timers()
            cases, _ = await unit.cases(CaseFilter(), page_size=50)
        assert len(fired) == len({i for i, _, _ in fired}) == 12
        # Each case escalated exactly once: yellow -> secretary after the missed 2 h.
        assert sorted(len(c.escalations) for c in cases) == [1] * 12
        assert {c.routed_to for c in cases} == {Rung.SECRETARY}
    finally:
        await other.dispose()


async def test_playbook_rows_outbox_and_supervision(
    handling: Handling, store: SqlStore, policies: Policies, clock: FakeClock
) -> None:
    from services.coordinator.core.cases import acknowledge
    from services.coordinator.core.model import Disposition
    from services.coordinator.core.playbooks import set_disposition

    case_id = await handling.on_alert(_alert(1, Level.ORANGE), clock.now)
    async with store.unit() as unit:
        case = await unit.case(str(case_id), lock=True)
        assert case is not None
        change = acknowledge(case, "sec", "discipline_commission", "", clock.now)
        assert change.case is not None
        change += set_disposition(
            policies.routing,
            policies.playbooks,
            change.case,
            Disposition.FALSE_INFORMATION,
            "经核查不实",
            "office",
            "opinion_office",
            clock.now,
        )
        await handling.commit(unit, change, clock.now)
    topics = await _outbox_topics(store)
    assert topics.count(("qftest.publication-requests", "publication.requested")) == 1
    assert topics.count(("qftest.tasks", "task.created")) == 2
    # Overdue: the police task is reminded, then supervision climbs.
    await handling.fire_due(clock.advance(timedelta(hours=24, minutes=1)))
    await handling.fire_due(clock.advance(timedelta(hours=4)))
    async with store.unit() as unit:
        tasks, _ = await unit.tasks(TaskFilter(agency="police_cyber"), page_size=10)
        overdue, _ = await unit.tasks(TaskFilter(overdue_at=clock.now), page_size=10)
        assert (await verify_chain(unit.session)).ok
        audited = await unit.session.execute(select(func.count()).select_from(_outbox))
    assert tasks[0].supervision.reminders == 2 and tasks[0].supervision.supervised_by is Rung.DEPUTY_STANDING_MEMBER
    assert len(overdue) == 2
    assert audited.scalar_one() > 0


async def test_alerts_and_deadlines_concurrently_on_two_replicas(
    engine: AsyncEngine, coordinator_db_url: str, policies: Policies, clock: FakeClock
) -> None:
    """One replica raises levels (re-routing, cancelling timers) while the other fires the same cases' deadlines:
    no deadlock, every timer fired at most once, every case ends routed by its new level or escalated once."""
    first = Handling(SqlStore(engine, TOPICS, node="a"), policies)
    for n in range(10):
        await first.on_alert(_alert(1, Level.YELLOW, event=f"ev-{n}"), clock.now)
    other = build_engine(coordinator_db_url)
    try:
        second = Handling(SqlStore(other, TOPICS, node="b"), policies)
        late = clock.advance(timedelta(hours=2, minutes=1))

        async def raise_levels() -> None:
            for n in range(10):
                await first.on_alert(_alert(2, Level.ORANGE, Level.YELLOW, event=f"ev-{n}"), late)

        await asyncio.gather(raise_levels(), second.fire_due(late))
        async with first.store.unit() as unit:
            fired = await unit.fired_timers()
            cases, _ = await unit.cases(CaseFilter(), page_size=50)
        assert len(fired) == len({i for i, _, _ in fired}) <= 10
        for case in cases:
            assert case.level is Level.ORANGE and case.routed_to in (Rung.SECRETARY, Rung.MUNICIPAL_COMMITTEE)
            assert [e.cause for e in case.escalations].count("ack_deadline_missed") <= 1
    finally:
        await other.dispose()
