"""Statistics and the rapid report from the coordinator's records: tables on a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.coordinator.core.cases import acknowledge, open_case, publication_published
from services.coordinator.core.model import Case, Instruction, Level, Rung, Task, TaskStatus
from services.coordinator.core.policy import Directory, RoutingPolicy
from services.coordinator.core.rapid_report import NoPostsYet, rapid_report
from services.coordinator.core.statistics import statistics_report
from services.coordinator.reports.model import ResponseClock, WarningLevel

from .conftest import T0, alert


def _case(routing: RoutingPolicy, directory: Directory, level: Level, event: str, **kw: object) -> Case:
    case = open_case(routing, directory, alert(level, event=event, **kw), T0).case  # type: ignore[arg-type]
    assert case is not None
    return case


def test_statistics_counts_levels_clocks_overdue_reported_and_instructions(
    routing: RoutingPolicy, directory: Directory
) -> None:
    met = publication_published(_case(routing, directory, Level.ORANGE, "a"), "p", T0 + timedelta(minutes=80), T0).case
    late = publication_published(_case(routing, directory, Level.RED, "b"), "p", T0 + timedelta(hours=3), T0).case
    waiting = _case(routing, directory, Level.ORANGE, "c")
    rumour = _case(routing, directory, Level.YELLOW, "d", rumour=True)
    blue = replace(_case(routing, directory, Level.BLUE, "e"), closed_at=T0 + timedelta(hours=5))
    assert met is not None and late is not None
    cases = [met, late, waiting, rumour, blue]
    overdue = Task("t1", met.id, "police_cyber", "查处", T0 + timedelta(hours=1), TaskStatus.OPEN, T0, T0)
    done = replace(overdue, id="t2", status=TaskStatus.DONE)
    instruction = Instruction("i1", met.id, "sec", "李", "纪委书记", Rung.SECRETARY, "迅速核查", T0, T0, "o", ("t1",))
    now = T0 + timedelta(hours=2, minutes=30)
    report = statistics_report(
        routing, cases, [overdue, done], [instruction], T0 - timedelta(days=1), T0 + timedelta(days=1), now
    )
    counts = {c.level: (c.opened, c.closed, c.open_at_end) for c in report.cases_by_level}
    assert counts == {
        WarningLevel.BLUE: (1, 1, 0),
        WarningLevel.YELLOW: (1, 0, 1),
        WarningLevel.ORANGE: (2, 0, 2),
        WarningLevel.RED: (1, 0, 1),
    }
    clocks = {c.clock: c for c in report.clocks}
    golden = clocks[ResponseClock.GOLDEN_PERIOD]
    assert (golden.met, golden.missed, golden.pending) == (1, 2, 0)  # c is past due at 2h30 without a release
    assert golden.worst == timedelta(hours=3) and golden.median == timedelta(minutes=130)
    refutation = clocks[ResponseClock.REFUTATION]
    assert (refutation.met, refutation.missed, refutation.pending) == (0, 0, 1)
    assert [t.task_id for t in report.overdue_tasks] == ["t1"]
    assert {r.case_id for r in report.reported_items} == {met.id, late.id, waiting.id, rumour.id}
    assert [(i.leader, i.tasks_created) for i in report.instructions] == [("纪委书记李", 1)]


def test_rapid_report_cites_the_events_posts(routing: RoutingPolicy, directory: Directory) -> None:
    case = replace(_case(routing, directory, Level.ORANGE, "a"), level_reasons=("1小时内转发量 1200 ≥ 1000",))
    acked = acknowledge(case, "sec", None, "", T0 + timedelta(minutes=5)).case
    assert acked is not None
    task = Task("t1", case.id, "police_cyber", "依法查处", T0 + timedelta(hours=5), TaskStatus.OPEN, T0, T0)
    report = rapid_report(routing, directory, acked, 7, ["p1", "p2", "p1"], [task], T0 + timedelta(minutes=10))
    assert report.issue_number == 7 and report.level.level is WarningLevel.ORANGE
    assert [c.text for c in report.level.reasons] == ["1小时内转发量 1200 ≥ 1000"]
    assert all(c.post_ids == ("p1", "p2") for c in (*report.summary, *report.level.reasons))
    assert [e.claim.text for e in report.timeline] == ["首次预警", "责任领导签收"]
    assert any("公安网安" in step and "依法查处" in step for step in report.next_steps)
    assert any("黄金期" in step for step in report.next_steps)
    with pytest.raises(NoPostsYet):
        rapid_report(routing, directory, acked, 8, [], [], T0)
