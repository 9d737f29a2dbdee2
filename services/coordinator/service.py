"""The coordinator's API as plain async functions over the store and the core, with need-to-know (不泄露案情).

The office (``opinion_office``, ``discipline_commission``) sees and does everything. A partner agency sees only its
own tasks, the summary of the cases it has tasks on and the meetings it is summoned to; any other case or task
answers ``NotFound`` exactly as a missing one does, and office-only actions answer ``PermissionDenied`` whatever the
resource. Reads of restricted data by the office are audited; every change is audited by the core's ``Change``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from services.coordinator.adapters.sql import CaseFilter, TaskFilter
from services.coordinator.core import cases as case_core
from services.coordinator.core import tasks as task_core
from services.coordinator.core.cases import AlertView, InvalidTransition
from services.coordinator.core.escalation import escalate_case, may_escalate
from services.coordinator.core.model import (
    Attachment,
    Case,
    Change,
    Disposition,
    Level,
    Task,
    TaskStatus,
)
from services.coordinator.core.playbooks import set_disposition
from services.coordinator.core.tasks import Upload
from services.coordinator.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.coordinator.service_base import ApiBase, AuditPage, Viewer, new_id, page_size
from services.coordinator.service_meetings import MeetingApi

__all__ = ["AuditPage", "CaseTaskApi", "CoordinatorApi", "Viewer", "page_size"]


class CaseTaskApi(ApiBase):
    """Cases and tasks."""

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

    async def escalate(
        self, viewer: Viewer, case_id: str, level: Level | None, reason: str, request_id: str = ""
    ) -> Case:
        """Raise the case to ``level`` by hand and re-route it. Once per request id, and once per target level: a
        retry answers the case as it is instead of escalating again (or failing on the now equal level)."""
        if not may_escalate(self._policies.routing, viewer.roles):
            raise PermissionDenied("escalating a case by hand needs a role the routing policy names")
        if level is None:
            raise InvalidArgument.of("level", "required")
        if not reason.strip():
            raise InvalidArgument.of("reason", "required")
        p = self._policies
        now = self._clock()
        async with self._h.store.unit() as unit:
            case = await self._visible_case(unit, viewer, case_id, lock=True)
            if request_id and not await unit.first_time(f"escalate:{case.id}:request:{request_id}", now):
                return case
            # Recorded with the escalation it guards; an equal level reached any other way is not a retry.
            done = f"escalate:{case.id}:wave{case.wave}:{level.key}"
            if level == case.level and not await unit.first_time(done, now):
                return case
            try:
                change = escalate_case(
                    p.routing, p.directory, case, level, reason, viewer.principal, viewer.agency, now
                )
            except InvalidTransition as err:
                raise FailedPrecondition(str(err)) from err  # the transaction, and the keys recorded, roll back
            await unit.first_time(done, now)
            await self._commit(unit, change, now)
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
        case_id = new_id("case")
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
                new_id("t"),
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


class CoordinatorApi(MeetingApi, CaseTaskApi):
    """The whole API: cases and tasks here, meetings, instructions and the audit log in ``service_meetings``."""
