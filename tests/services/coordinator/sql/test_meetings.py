"""Meetings through the store: a red alert convenes an emergency meeting once (replays too); the quarterly meeting
fires from its durable timer with the open cases on the agenda, and arms the next one."""

from __future__ import annotations

from datetime import UTC, datetime

from services.coordinator.adapters.sql import SqlStore
from services.coordinator.core.cases import AlertView
from services.coordinator.core.model import Level
from services.coordinator.handling import Handling

from ..conftest import T0, FakeClock


def _alert(event: str, level: Level) -> AlertView:
    return AlertView(f"{event}:1", event, 1, Level.NONE, level, f"事件{event}", T0, (), (("relevance", 0.9),))


async def test_red_convenes_one_emergency_meeting(handling: Handling, store: SqlStore, clock: FakeClock) -> None:
    red = await handling.on_alert(_alert("ev-red", Level.RED), clock.now)
    await handling.on_alert(_alert("ev-red", Level.RED), clock.now)
    await handling.on_alert(_alert("ev-orange", Level.ORANGE), clock.now)
    async with store.unit() as unit:
        meetings = await unit.meetings(kind="emergency", case_id="", attendee=None)
    assert [(m.kind, m.case_ids) for m in meetings] == [("emergency", (red,))]
    assert "police_cyber" in meetings[0].attendees


async def test_quarterly_meeting_from_its_timer(handling: Handling, store: SqlStore, clock: FakeClock) -> None:
    await handling.on_alert(_alert("ev-1", Level.YELLOW), clock.now)
    await handling.on_alert(_alert("ev-2", Level.ORANGE), clock.now)
    await handling.ensure_quarterly(clock.now)
    await handling.ensure_quarterly(clock.now)  # idempotent: one pending quarterly timer
    clock.now = datetime(2026, 7, 15, 1, 0, tzinfo=UTC)
    fired = await handling.fire_due(clock.now)
    assert fired >= 1
    async with store.unit() as unit:
        quarterly = await unit.meetings(kind="quarterly", case_id="", attendee=None)
        assert await unit.has_pending_timer("quarterly")
    assert len(quarterly) == 1
    assert quarterly[0].title == "2026年第3季度涉腐网络舆情联席会议"
    assert len(quarterly[0].case_ids) == 2
    assert await handling.fire_due(clock.now) == 0  # the next one is in October
