"""The coordinator's API as plain async functions over the store and the core, with need-to-know (不泄露案情).

The office (``opinion_office``, ``discipline_commission``) sees and does everything. A partner agency sees only its
own tasks, the summary of the cases it has tasks on and the meetings it is summoned to; any other case or task
answers ``NotFound`` exactly as a missing one does, and office-only actions answer ``PermissionDenied`` whatever the
resource. Reads of restricted data by the office are audited; every change is audited by the core's ``Change``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from qingfeng.storage import read_audit, verify_chain

from services.coordinator.adapters.sql import CaseFilter, TaskFilter, Unit
from services.coordinator.core import cases as case_core
from services.coordinator.core import meetings as meeting_core
from services.coordinator.core import tasks as task_core
from services.coordinator.core.cases import AlertView, InvalidTransition
from services.coordinator.core.model import (
    OFFICE_AGENCIES,
    Attachment,
    Case,
    Change,
    Decision,
    Disposition,
    Instruction,
    Level,
    Meeting,
    Rung,
    Task,
    TaskStatus,
)
from services.coordinator.core.playbooks import set_disposition
from services.coordinator.core.tasks import Upload
from services.coordinator.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.coordinator.handling import Handling
from services.coordinator.ports import Clock

__all__ = ["AuditPage", "CoordinatorApi", "Viewer"]

DEFAULT_PAGE = 50
MAX_PAGE = 500


@dataclass(frozen=True)
class Viewer:
    """The verified caller as the coordinator sees it."""

    principal: str
    agency: str | None

    @property
    def office(self) -> bool:
        return self.agency in OFFICE_AGENCIES


@dataclass(frozen=True)
class AuditPage:
    records: list[Any]
    next_token: str


def page_size(value: int, *, default: int = DEFAULT_PAGE, maximum: int = MAX_PAGE) -> int:
    if value < 0:
        raise InvalidArgument.of("page_size", "must not be negative")
    return min(value or default, maximum)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


class CoordinatorApi:
    def __init__(self, handling: Handling, clock: Clock) -> None:
        self._h = handling
        self._clock = clock

    @property
    def _policies(self) -> Any:
        return self._h.policies

    def _office_only(self, viewer: Viewer) -> None:
        if not viewer.office:
            raise PermissionDenied(f"agency {viewer.agency!r} may not do this (office only)")

    async def _visible_case(self, unit: Unit, viewer: Viewer, case_id: str, *, lock: bool = False) -> Case:
        if not case_id:
            raise InvalidArgument.of("case_id", "required")
        if not viewer.office and (
            viewer.agency is None or case_id not in await unit.case_ids_with_tasks_of(viewer.agency)
        ):
            raise NotFound("case", case_id)
        case = await unit.case(case_id, lock=lock)
        if case is None:
            raise NotFound("case", case_id)
        return case

    async def _visible_task(self, unit: Unit, viewer: Viewer, task_id: str) -> Task:
        task = await unit.task(task_id, lock=True) if task_id else None
        if task is None or (not viewer.office and task.agency != viewer.agency):
            raise NotFound("task", task_id)
        return task

    async def _commit(self, unit: Unit, change: Change, now: datetime) -> None:
        await self._h.commit(unit, change, now)

    # cases ---------------------------------------------------------------------------------------------------------
    async def get_case(self, viewer: Viewer, case_id: str) -> Case:
        now = self._clock()
        async with self._h.store.unit() as unit:
            case = await self._visible_case(unit, viewer, case_id)
            if viewer.office:
                await unit.audit_read(viewer.principal, viewer.agency, "case.read", f"cases/{case_id}", now)
            return case

    async def list_cases(self, viewer: Viewer, f: CaseFilter, size: int, token: str) -> tuple[list[Case], str]:
        now = self._clock()
        async with self._h.store.unit() as unit:
            if not viewer.office:
                f = replace(f, ids=await unit.case_ids_with_tasks_of(viewer.agency) if viewer.agency else frozenset())
            found, next_token = await unit.cases(f, page_size=page_size(size), page_token=token)
            if viewer.office:
                await unit.audit_read(
                    viewer.principal, viewer.agency, "case.list", "cases", now, {"cases": [c.id for c in found]}
                )
            return found, next_token

    async def _case_change(self, viewer: Viewer, case_id: str, act: Any) -> Change:
        self._office_only(viewer)
        now = self._clock()
        async with self._h.store.unit() as unit:
            case = await self._visible_case(unit, viewer, case_id, lock=True)
            try:
                change: Change = act(case, now)
            except InvalidTransition as err:
                raise FailedPrecondition(str(err)) from err
            await self._commit(unit, change, now)
            return change

    async def acknowledge(self, viewer: Viewer, case_id: str, note: str) -> Case:
        change = await self._case_change(
            viewer, case_id, lambda c, now: case_core.acknowledge(c, viewer.principal, viewer.agency, note, now)
        )
        assert change.case is not None
        return change.case

    async def start_verification(self, viewer: Viewer, case_id: str) -> Case:
        change = await self._case_change(
            viewer, case_id, lambda c, now: case_core.begin_verification(c, viewer.principal, viewer.agency, now)
        )
        assert change.case is not None
        return change.case

    async def close(self, viewer: Viewer, case_id: str) -> Case:
        change = await self._case_change(
            viewer, case_id, lambda c, now: case_core.close_case(c, viewer.principal, viewer.agency, now)
        )
        assert change.case is not None
        return change.case

    async def set_disposition(
        self, viewer: Viewer, case_id: str, disposition: Disposition, rationale: str
    ) -> tuple[Case, tuple[Task, ...]]:
        if not rationale.strip():
            raise InvalidArgument.of("rationale", "required")
        p = self._policies
        change = await self._case_change(
            viewer,
            case_id,
            lambda c, now: set_disposition(
                p.routing, p.playbooks, c, disposition, rationale, viewer.principal, viewer.agency, now
            ),
        )
        assert change.case is not None
        return change.case, change.tasks

    async def mark_corruption(self, viewer: Viewer, case_id: str, related: bool, reason: str) -> Case:
        if not reason.strip():
            raise InvalidArgument.of("reason", "required")
        p = self._policies
        change = await self._case_change(
            viewer,
            case_id,
            lambda c, now: case_core.mark_corruption(
                p.routing, p.directory, c, related, reason, viewer.principal, viewer.agency, now
            ),
        )
        assert change.case is not None
        return change.case

    async def create_case(
        self, viewer: Viewer, event_id: str, title: str, level: Level, regions: Sequence[tuple[str, str]]
    ) -> Case:
        self._office_only(viewer)
        if not title.strip():
            raise InvalidArgument.of("title", "required")
        if level < Level.BLUE:
            raise InvalidArgument.of("level", "must be blue, yellow, orange or red")
        now = self._clock()
        case_id = _new_id("case")
        event = event_id or f"manual:{case_id}"
        async with self._h.store.unit() as unit:
            if event_id and await unit.case_id_for_event(await unit.resolve(event_id)):
                raise FailedPrecondition(f"event {event_id} already has a case")
            alert = AlertView(f"manual:{case_id}", event, 0, Level.NONE, level, title, now, tuple(regions), ())
            change = case_core.open_case(self._policies.routing, self._policies.directory, alert, now, case_id=case_id)
            change = replace(
                change,
                audit=tuple(
                    replace(a, actor=viewer.principal, agency=viewer.agency) if a.action == "case.open" else a
                    for a in change.audit
                ),
            )
            await self._commit(unit, change, now)
        assert change.case is not None
        return change.case

    # tasks ---------------------------------------------------------------------------------------------------------
    async def create_task(
        self, viewer: Viewer, case_id: str, agency: str, description: str, due_at: datetime, assignee_unit: str
    ) -> Task:
        self._office_only(viewer)
        if not description.strip():
            raise InvalidArgument.of("task.description", "required")
        now = self._clock()
        async with self._h.store.unit() as unit:
            await self._visible_case(unit, viewer, case_id)
            task = Task(
                _new_id("t"),
                case_id,
                agency,
                description,
                due_at,
                TaskStatus.OPEN,
                now,
                now,
                assignee_unit=assignee_unit,
            )
            await self._commit(unit, task_core.create_task(task, viewer.principal, viewer.agency), now)
        return task

    async def list_tasks(self, viewer: Viewer, f: TaskFilter, size: int, token: str) -> tuple[list[Task], str]:
        if not viewer.office:
            if f.agency is not None and f.agency != viewer.agency:
                return [], ""  # another agency's tasks: nothing, as if there were none
            f = replace(f, agency=viewer.agency or "\x00none")
        async with self._h.store.unit() as unit:
            return await unit.tasks(f, page_size=page_size(size), page_token=token)

    async def update_task(self, viewer: Viewer, task_id: str, changes: dict[str, Any]) -> Task:
        now = self._clock()
        async with self._h.store.unit() as unit:
            task = await self._visible_task(unit, viewer, task_id)
            if not viewer.office and set(changes) - {"status"}:
                raise PermissionDenied("a partner agency may only change the status of its own task")
            try:
                change = task_core.update_task(task, changes, viewer.principal, viewer.agency, now)
            except InvalidTransition as err:
                raise FailedPrecondition(str(err)) from err
            await self._commit(unit, change, now)
            return change.tasks[0]

    async def complete_task(self, viewer: Viewer, task_id: str, result: str) -> Task:
        if not result.strip():
            raise InvalidArgument.of("result", "required")
        now = self._clock()
        async with self._h.store.unit() as unit:
            task = await self._visible_task(unit, viewer, task_id)
            try:
                change = task_core.complete_task(task, result, viewer.principal, viewer.agency, now)
            except InvalidTransition as err:
                raise FailedPrecondition(str(err)) from err
            await self._commit(unit, change, now)
            return change.tasks[0]

    async def report_progress(self, viewer: Viewer, task_id: str, note: str, uploads: Sequence[Upload]) -> Task:
        if not note.strip():
            raise InvalidArgument.of("note", "required")
        now = self._clock()
        async with self._h.store.unit() as unit:
            task = await self._visible_task(unit, viewer, task_id)
            try:
                change, contents = task_core.report_progress(
                    self._policies.routing, task, note, uploads, viewer.principal, viewer.agency, now
                )
            except task_core.TooLarge as err:
                raise InvalidArgument.of("attachments", str(err)) from err
            except InvalidTransition as err:
                raise FailedPrecondition(str(err)) from err
            for digest, content in contents:
                await unit.put_content(digest, content)
            await self._commit(unit, change, now)
            return change.tasks[0]

    async def get_attachment(self, viewer: Viewer, task_id: str, attachment_id: str) -> tuple[Attachment, bytes]:
        async with self._h.store.unit() as unit:
            task = await self._visible_task(unit, viewer, task_id)
            found = next((a for a in task.attachments if a.id == attachment_id), None)
            content = await unit.content(found.sha256) if found else None
            if found is None or content is None:
                raise NotFound("attachment", attachment_id)
            await unit.audit_read(
                viewer.principal,
                viewer.agency,
                "task.attachment_read",
                f"tasks/{task_id}",
                self._clock(),
                {"attachment_id": attachment_id, "sha256": found.sha256},
            )
            return found, content

    # meetings and instructions -------------------------------------------------------------------------------------
    async def convene(
        self,
        viewer: Viewer,
        kind: str,
        title: str,
        case_ids: Sequence[str],
        scheduled_at: datetime | None,
        attendees: Sequence[str],
    ) -> Meeting:
        self._office_only(viewer)
        now = self._clock()
        async with self._h.store.unit() as unit:
            agenda = [await self._visible_case(unit, viewer, c) for c in case_ids]
            if kind == "quarterly" and not agenda:
                agenda = sorted(await unit.open_cases(), key=lambda c: (-int(c.level), c.created_at))
            try:
                change = meeting_core.convene(
                    self._policies.routing,
                    kind,
                    title,
                    agenda,
                    scheduled_at,
                    attendees,
                    viewer.principal,
                    viewer.agency,
                    now,
                    _new_id("m"),
                )
            except InvalidTransition as err:
                raise FailedPrecondition(str(err)) from err
            await self._commit(unit, change, now)
        return change.meetings[0]

    async def list_meetings(self, viewer: Viewer, kind: str | None, case_id: str) -> list[Meeting]:
        async with self._h.store.unit() as unit:
            if case_id and not viewer.office:
                visible = await unit.case_ids_with_tasks_of(viewer.agency) if viewer.agency else frozenset()
                if case_id not in visible:
                    return []
            attendee = None if viewer.office else (viewer.agency or "\x00none")
            return await unit.meetings(kind=kind, case_id=case_id, attendee=attendee)

    async def record_minutes(
        self, viewer: Viewer, meeting_id: str, minutes: str, decisions: Sequence[Decision], present: Sequence[str]
    ) -> Meeting:
        self._office_only(viewer)
        now = self._clock()
        async with self._h.store.unit() as unit:
            meeting = await unit.meeting(meeting_id, lock=True)
            if meeting is None:
                raise NotFound("meeting", meeting_id)
            try:
                change = meeting_core.record_minutes(
                    self._policies.routing, meeting, minutes, decisions, present, viewer.principal, viewer.agency, now
                )
            except InvalidTransition as err:
                raise FailedPrecondition(str(err)) from err
            await self._commit(unit, change, now)
        return change.meetings[0]

    async def add_instruction(
        self,
        viewer: Viewer,
        case_id: str,
        leader: tuple[str, str, str],
        rung: Rung,
        text: str,
        issued_at: datetime | None,
        assign_to: Sequence[str],
        due_at: datetime | None,
    ) -> Instruction:
        self._office_only(viewer)
        if not text.strip():
            raise InvalidArgument.of("text", "required")
        now = self._clock()
        async with self._h.store.unit() as unit:
            case = await self._visible_case(unit, viewer, case_id, lock=True)
            draft = Instruction(
                _new_id("i"),
                case.id,
                leader[0],
                leader[1],
                leader[2],
                rung,
                text,
                issued_at or now,
                now,
                viewer.principal,
            )
            stored, change = meeting_core.add_instruction(
                self._policies.routing, case, draft, assign_to, due_at, viewer.agency
            )
            await unit.add_instruction(stored)
            await self._commit(unit, change, now)
        return stored

    async def list_instructions(self, viewer: Viewer, case_id: str) -> list[Instruction]:
        now = self._clock()
        async with self._h.store.unit() as unit:
            await self._visible_case(unit, viewer, case_id)
            if not viewer.office:
                return []  # instructions are the leaders' words on the case: restricted
            await unit.audit_read(viewer.principal, viewer.agency, "instruction.list", f"cases/{case_id}", now)
            return await unit.instructions(case_id)

    # audit ---------------------------------------------------------------------------------------------------------
    async def audit_records(
        self,
        viewer: Viewer,
        *,
        from_seq: int,
        target: str,
        agency: str | None,
        start: datetime | None,
        end: datetime | None,
        size: int,
        token: str,
    ) -> AuditPage:
        self._office_only(viewer)
        limit = page_size(size, default=100, maximum=1000)
        after = max(from_seq - 1, 0)
        if token:
            if not token.isdigit():
                raise InvalidArgument.of("page_token", "not a token of this list")
            after = int(token)
        found: list[Any] = []
        async with self._h.store.unit() as unit:
            while len(found) < limit:
                chunk = await read_audit(unit.session, after_seq=after, limit=500)
                if not chunk:
                    after = 0
                    break
                for record in chunk:
                    after = record.seq
                    if (
                        (not target or record.target == target)
                        and (agency is None or record.agency == agency)
                        and (start is None or record.at >= start)
                        and (end is None or record.at < end)
                    ):
                        found.append(record)
                        if len(found) == limit:
                            break
        return AuditPage(found, str(after) if len(found) == limit and after else "")

    async def verify_audit(self, viewer: Viewer) -> tuple[bool, int, int]:
        """(valid, records checked, first invalid seq or 0) over the whole chain."""
        self._office_only(viewer)
        async with self._h.store.unit() as unit:
            check = await verify_chain(unit.session)
            total = await unit.audit_count()
        return check.ok, total, check.first_bad_seq or 0
