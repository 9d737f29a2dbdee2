"""The rapid report (舆情快报, 第N期) of a case for leadership: summary, level and its reasons, timeline, disposition
and next steps. Every claim cites the posts it rests on: the representative posts the grader named for the event
(and for events merged into it). Pure: the records, the issue number and ``now`` are arguments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.coordinator.core.model import Case, Task
from services.coordinator.core.policy import Directory, RoutingPolicy
from services.coordinator.core.statistics import RUNG_LABELS, report_level
from services.coordinator.reports.model import (
    Claim,
    Disposition,
    DispositionKind,
    LevelAssessment,
    LevelScheme,
    RapidReport,
    TimelineEntry,
)

__all__ = ["NoPostsYet", "rapid_report"]


class NoPostsYet(ValueError):
    """The grader has not named any post for the case's event yet: a report could not cite its claims."""


def rapid_report(
    policy: RoutingPolicy,
    directory: Directory,
    case: Case,
    issue_number: int,
    post_ids: Sequence[str],
    tasks: Sequence[Task],
    now: datetime,
) -> RapidReport:
    cited = tuple(dict.fromkeys(p for p in post_ids if p))
    if not cited:
        raise NoPostsYet(f"no posts known for event {case.event_id} yet")
    scheme = LevelScheme.THREE_TIER if policy.scheme == "three_tier" else LevelScheme.FOUR_COLOR
    label = policy.rule(case.level).label or case.level.key
    summary = [Claim(f"网络舆情「{case.title}」, 当前预警等级: {label}", cited)]
    if case.regions:
        summary.append(Claim("涉及地区: " + "、".join(name or code for code, name in case.regions), cited))
    summary.append(Claim("涉腐舆情" if case.corruption_related else "非涉腐舆情(信息通报宣传部)", cited))
    reasons = tuple(Claim(text, cited) for text in case.level_reasons) or (Claim(f"研判等级为{label}", cited),)
    timeline = [TimelineEntry(case.first_alert_at, Claim("首次预警", cited))]
    timeline += [
        TimelineEntry(e.at, Claim(f"报送升级至{RUNG_LABELS[e.to_rung]}({_cause(e.cause)})", cited))
        for e in case.escalations
    ]
    for at, text in (
        (case.acknowledged_at, "责任领导签收"),
        (case.first_response_at, "首次权威信息发布"),
        (case.refuted_at, "辟谣信息发布"),
        (case.reopened_at, f"再次升温, 第{case.wave}轮处置"),
        (case.closed_at, "结案"),
    ):
        if at is not None:
            timeline.append(TimelineEntry(at, Claim(text, cited)))
    timeline.sort(key=lambda entry: entry.at)
    kind = DispositionKind(case.disposition.value) if case.disposition else None
    actions = tuple(f"{_agency(directory, t.agency)}: {t.description}" for t in tasks)
    next_steps = [
        f"{_agency(directory, t.agency)}于{_local(policy, t.due_at)}前完成: {t.description}"
        for t in sorted(tasks, key=lambda t: t.due_at)
        if t.status.value in ("open", "in_progress")
    ]
    if case.first_response_due_at and case.first_response_at is None:
        next_steps.append(f"黄金期内({_local(policy, case.first_response_due_at)}前)发布权威信息")
    if case.refutation_due_at and case.refuted_at is None:
        next_steps.append(f"{_local(policy, case.refutation_due_at)}前发布辟谣信息")
    if case.ack_deadline and case.acknowledged_at is None:
        next_steps.append(f"{RUNG_LABELS[case.routed_to]}于{_local(policy, case.ack_deadline)}前签收")
    return RapidReport(
        issue_number=issue_number,
        issued_on=(now + policy.calendar.utc_offset).date(),
        case_id=case.id,
        title=case.title,
        summary=tuple(summary),
        level=LevelAssessment(report_level(case.level), reasons, scheme),
        timeline=tuple(timeline),
        key_posts=(),
        disposition=Disposition(kind, actions),
        next_steps=tuple(next_steps) or ("持续监测",),
    )


def _cause(cause: str) -> str:
    return {"ack_deadline_missed": "超时未签收", "level_raised": "预警升级", "corruption_marked": "标记涉腐"}.get(
        cause, cause
    )


def _agency(directory: Directory, agency: str) -> str:
    info = directory.agencies.get(agency)
    return info.name if info else agency


def _local(policy: RoutingPolicy, at: datetime) -> str:
    return (at + policy.calendar.utc_offset).strftime("%m月%d日%H:%M")
