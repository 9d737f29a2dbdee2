"""Reports for the office: the rapid report of a case (numbered, 第N期) and the joint meeting's statistics, built by
the core from the records and rendered by ``reports`` (HTML, or PDF with the CJK fonts). Office only; every report
made is audited (it carries restricted case details)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.coordinator.adapters.sql import TaskFilter
from services.coordinator.core.rapid_report import NoPostsYet, rapid_report
from services.coordinator.core.statistics import statistics_report
from services.coordinator.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, RenderFailed
from services.coordinator.handling import Handling
from services.coordinator.ports import Clock
from services.coordinator.reports import (
    ReportError,
    render_rapid_report_html,
    render_rapid_report_pdf_async,
    render_statistics_html,
    render_statistics_pdf_async,
)
from services.coordinator.service import Viewer

__all__ = ["HTML", "PDF", "Rendered", "Reporting"]

HTML = "text/html; charset=utf-8"
PDF = "application/pdf"
DEFAULT_PERIOD = timedelta(days=90)


@dataclass(frozen=True)
class Rendered:
    title: str
    content_type: str
    content: bytes
    issue_number: int = 0


class Reporting:
    def __init__(self, handling: Handling, clock: Clock) -> None:
        self._h = handling
        self._clock = clock

    async def rapid_report(self, viewer: Viewer, case_id: str, *, pdf: bool) -> Rendered:
        if not viewer.office:
            raise PermissionDenied("rapid reports are for the office and the commission's leaders")
        now = self._clock()
        p = self._h.policies
        async with self._h.store.unit() as unit:
            case = await unit.case(case_id) if case_id else None
            if case is None:
                raise NotFound("case", case_id)
            tasks, _ = await unit.tasks(TaskFilter(case_id=case_id), page_size=500)
            posts = await unit.posts_of_case(case_id)
            issue = await unit.issue_number(case_id, now)
            try:
                report = rapid_report(p.routing, p.directory, case, issue, posts, tasks, now)
            except NoPostsYet as err:
                raise FailedPrecondition(str(err)) from err
            await unit.audit_read(
                viewer.principal,
                viewer.agency,
                "report.rapid",
                f"cases/{case_id}",
                now,
                {"issue_number": issue, "format": "pdf" if pdf else "html"},
            )
        title = f"舆情快报第{issue}期: {case.title}"
        try:
            if pdf:
                return Rendered(title, PDF, await render_rapid_report_pdf_async(report), issue)
            return Rendered(title, HTML, render_rapid_report_html(report).encode("utf-8"), issue)
        except ReportError as err:
            raise RenderFailed(f"cannot render the rapid report: {err}") from err

    async def statistics(self, viewer: Viewer, start: datetime | None, end: datetime | None, *, pdf: bool) -> Rendered:
        if not viewer.office:
            raise PermissionDenied("statistics are for the office and the commission's leaders")
        now = self._clock()
        end = end or now + timedelta(microseconds=1)  # up to and including now
        start = start or end - DEFAULT_PERIOD
        if start >= end:
            raise InvalidArgument.of("period", "start_time must be before end_time")
        async with self._h.store.unit() as unit:
            cases, tasks, instructions = await unit.all_records()
            await unit.audit_read(
                viewer.principal,
                viewer.agency,
                "report.statistics",
                "statistics",
                now,
                {"start": start.isoformat(), "end": end.isoformat()},
            )
        report = statistics_report(self._h.policies.routing, cases, tasks, instructions, start, end, now)
        try:
            if pdf:
                return Rendered(report.title, PDF, await render_statistics_pdf_async(report))
            return Rendered(report.title, HTML, render_statistics_html(report).encode("utf-8"))
        except ReportError as err:
            raise RenderFailed(f"cannot render the statistics: {err}") from err
