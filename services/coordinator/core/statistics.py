"""The periodic statistics for the joint meeting, from the coordinator's records: cases by level, the response
clocks (黄金期 and refutation) met and missed, overdue tasks under 督办, items reported upward, leaders' instructions.

Pure: the caller passes the records, the period and ``now``; the result is the ``reports`` package's value, which
renders it (HTML/PDF)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from statistics import median

from services.coordinator.core.model import Case, Instruction, Level, Rung, Task
from services.coordinator.core.policy import RoutingPolicy
from services.coordinator.reports.model import (
    ClockStatistics,
    InstructionRecord,
    LevelCount,
    LevelScheme,
    OverdueTask,
    ReportedItem,
    ResponseClock,
    StatisticsReport,
    WarningLevel,
)

__all__ = ["RUNG_LABELS", "report_level", "statistics_report"]

RUNG_LABELS = {
    Rung.OPINION_OFFICE: "舆情信息办公室",
    Rung.DEPUTY_STANDING_MEMBER: "分管常委",
    Rung.SECRETARY: "纪委副书记/书记",
    Rung.MUNICIPAL_COMMITTEE: "市委",
}
_LEVELS = (Level.BLUE, Level.YELLOW, Level.ORANGE, Level.RED)


def report_level(level: Level) -> WarningLevel:
    return WarningLevel(max(level, Level.BLUE).key)


def _in(at: datetime | None, start: datetime, end: datetime) -> bool:
    return at is not None and start <= at < end


def _clock(
    clock: ResponseClock,
    limit: timedelta,
    rows: Sequence[tuple[datetime, datetime, datetime | None]],  # (started, due, met at)
    now: datetime,
) -> ClockStatistics:
    met = missed = pending = 0
    spans: list[timedelta] = []
    for started, due, done in rows:
        if done is not None:
            spans.append(done - started)
            met, missed = (met + 1, missed) if done <= due else (met, missed + 1)
        elif now > due:
            missed += 1
        else:
            pending += 1
    ordered = sorted(spans)
    middle = timedelta(seconds=median(s.total_seconds() for s in ordered)) if ordered else None
    return ClockStatistics(clock, limit, met, missed, pending, middle, ordered[-1] if ordered else None)


def statistics_report(
    policy: RoutingPolicy,
    cases: Sequence[Case],
    tasks: Sequence[Task],
    instructions: Sequence[Instruction],
    start: datetime,
    end: datetime,
    now: datetime,
) -> StatisticsReport:
    by_level = []
    for level in _LEVELS:
        mine = [c for c in cases if max(c.level, Level.BLUE) == level]
        by_level.append(
            LevelCount(
                report_level(level),
                opened=sum(_in(c.created_at, start, end) for c in mine),
                closed=sum(_in(c.closed_at, start, end) for c in mine),
                open_at_end=sum(c.created_at < end and (c.closed_at is None or c.closed_at >= end) for c in mine),
            )
        )
    in_period = [c for c in cases if _in(c.first_alert_at, start, end) or _in(c.created_at, start, end)]
    golden = [
        (c.first_alert_at, c.first_response_due_at, c.first_response_at)
        for c in in_period
        if c.first_response_due_at is not None
    ]
    refute = policy.clocks.refute_within
    rumours = [
        (c.refutation_due_at - refute, c.refutation_due_at, c.refuted_at)
        for c in in_period
        if c.refutation_due_at is not None
    ]
    titles = {c.id: c.title for c in cases}
    overdue = [
        OverdueTask(t.id, t.case_id, t.agency, titles.get(t.case_id, t.description), t.due_at, _supervision(t))
        for t in sorted(tasks, key=lambda t: t.due_at)
        if t.overdue(now)
    ]
    reported = [
        ReportedItem(
            c.id,
            c.title,
            report_level(c.level),
            RUNG_LABELS[c.routed_to],
            c.escalations[-1].at if c.escalations else c.created_at,
            c.acknowledged_at,
        )
        for c in sorted(in_period, key=lambda c: c.created_at)
        if c.routed_to > Rung.OPINION_OFFICE
    ]
    records = [
        InstructionRecord(
            i.case_id, f"{i.leader_role}{i.leader_name}" or i.leader_id, i.issued_at, i.text, len(i.task_ids)
        )
        for i in sorted(instructions, key=lambda i: i.issued_at)
        if _in(i.issued_at, start, end)
    ]
    local_start, local_end = start + policy.calendar.utc_offset, end + policy.calendar.utc_offset
    return StatisticsReport(
        title="涉腐网络舆情联席会议统计",
        period_start=local_start.date(),
        period_end=max(local_start.date(), (local_end - timedelta(microseconds=1)).date()),
        generated_at=now,
        cases_by_level=tuple(by_level),
        clocks=(
            _clock(ResponseClock.GOLDEN_PERIOD, policy.clocks.golden_period, golden, now),
            _clock(ResponseClock.REFUTATION, refute, rumours, now),
        ),
        overdue_tasks=tuple(overdue),
        reported_items=tuple(reported),
        instructions=tuple(records),
        scheme=LevelScheme.THREE_TIER if policy.scheme == "three_tier" else LevelScheme.FOUR_COLOR,
    )


def _supervision(task: Task) -> str:
    sup = task.supervision
    if not sup.reminders:
        return ""
    who = RUNG_LABELS[sup.supervised_by] if sup.supervised_by else ""
    return f"已提醒{sup.reminders}次" + (f", 督办: {who}" if who else "")
